// speech2face on this device: the graphs `speech2face export onnx` wrote, run by onnxruntime-web,
// and the few steps between them written as the Python runtime writes them (speech2face.clips,
// speech2face.vad, speech2face.speaker, speech2face.pipeline). No audio leaves the page.
//
//   const model = await Speech2FaceWeb.load("models/");
//   const result = await model.reconstruct(await decodeToMono16k(file), 4);   // faces as ImageData
//
// One step differs from Python: where the speech detector hears under 1 s of speech at both its
// thresholds, Python listens once more to the speech band alone (an FFT filter over the whole
// recording); this runtime says "no speech" there instead.
import * as ort from "./vendor/ort.wasm.min.mjs";

ort.env.wasm.wasmPaths = new URL("./vendor/", import.meta.url).href;
ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

export class AudioError extends Error {}

const dbfs = (rms) => 20 * Math.log10(Math.max(rms, 1e-10));

// --- audio: decode, level, length (speech2face.audio) -----------------------------------------
export async function decodeToMono16k(blob, maxSeconds = 30, rate = 16000) {
  const bytes = await blob.arrayBuffer();
  if (bytes.byteLength === 0) throw new AudioError("the file is empty");
  let buffer;
  try {
    buffer = await new OfflineAudioContext(1, 1, rate).decodeAudioData(bytes);  // resampled to 16 kHz
  } catch (err) {
    throw new AudioError("the file could not be read as audio (unreadable, corrupt or not a sound format)");
  }
  const n = Math.min(buffer.length, Math.round(maxSeconds * rate));
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c).subarray(0, n));
  return { wave: mixDown(channels), inputSeconds: buffer.duration, analysedSeconds: n / rate };
}

function mixDown(channels) {  // the channels' mean, or the loudest channel where they cancel (antiphase)
  if (channels.length === 1) return Float32Array.from(channels[0]);
  const n = channels[0].length, mean = new Float32Array(n), power = channels.map(() => 0);
  let meanPower = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    channels.forEach((ch, c) => { s += ch[i]; power[c] += ch[i] * ch[i]; });
    mean[i] = s / channels.length; meanPower += mean[i] * mean[i];
  }
  const avg = power.reduce((a, b) => a + b, 0) / channels.length;
  if (meanPower < 0.01 * avg) return Float32Array.from(channels[power.indexOf(Math.max(...power))]);
  return mean;
}

function loudestFrameDbfs(wave, rate = 16000) {
  const frame = Math.max(1, Math.round(0.03 * rate));
  const frames = Math.max(1, Math.floor(wave.length / frame));
  let best = 0;
  for (let f = 0; f < frames; f++) {
    let s = 0;
    for (let i = f * frame; i < (f + 1) * frame; i++) { const v = i < wave.length ? wave[i] : 0; s += v * v; }
    best = Math.max(best, Math.sqrt(s / frame));
  }
  return dbfs(best);
}

function fixLength(wave, n) {  // loop a short wave up to n samples (the paper's rule), crop a long one centred
  const out = new Float32Array(n);
  if (wave.length >= n) { const start = Math.floor((wave.length - n) / 2); out.set(wave.subarray(start, start + n)); return out; }
  for (let i = 0; i < n; i++) out[i] = wave[i % wave.length];
  return out;
}

// --- where the speech is (speech2face.vad) -----------------------------------------------------
async function speechProbabilities(session, wave) {
  const F = 512, C = 64, count = Math.ceil(wave.length / F), probs = new Float32Array(count);
  let h = new ort.Tensor("float32", new Float32Array(128), [1, 1, 128]), c = h;
  for (let first = 0; first < count; first += 512) {
    const frames = Math.min(512, count - first), block = new Float32Array(frames * (C + F));
    for (let k = 0; k < frames; k++) {
      const at = (first + k) * F;
      for (let j = 0; j < C; j++) { const i = at - C + j; block[k * (C + F) + j] = i >= 0 && i < wave.length && at > 0 ? wave[i] : 0; }
      for (let j = 0; j < F; j++) { const i = at + j; block[k * (C + F) + C + j] = i < wave.length ? wave[i] : 0; }
    }
    const out = await session.run({ input: new ort.Tensor("float32", block, [frames, C + F]), h, c });
    probs.set(out.speech_probs.data, first); h = out.hn; c = out.cn;
  }
  return probs;
}

function segments(probs, n, k, threshold) {  // Silero's hysteresis, as vad.segments_from_probabilities
  const neg = Math.max(0.01, threshold - 0.15), rate = k.sample_rate;
  const minSpeech = rate * k.vad_min_speech_ms / 1000, minSilence = rate * k.vad_min_silence_ms / 1000, pad = rate * k.vad_pad_ms / 1000;
  const spans = []; let start = null, silence = 0;
  for (let i = 0; i < probs.length; i++) {
    const at = 512 * i, p = probs[i];
    if (p >= threshold && silence) silence = 0;
    if (p >= threshold && start === null) { start = at; continue; }
    if (p < neg && start !== null) {
      silence = silence || at;
      if (at - silence < minSilence) continue;
      if (silence - start > minSpeech) spans.push([start, silence]);
      start = null; silence = 0;
    }
  }
  if (start !== null && n - start > minSpeech) spans.push([start, n]);
  spans.forEach((s, i) => {
    if (i === 0) s[0] = Math.trunc(Math.max(0, s[0] - pad));
    if (i < spans.length - 1) {
      const gap = spans[i + 1][0] - s[1];
      if (gap < 2 * pad) { s[1] += Math.floor(gap / 2); spans[i + 1][0] = Math.trunc(Math.max(0, spans[i + 1][0] - Math.floor(gap / 2))); }
      else { s[1] = Math.trunc(Math.min(n, s[1] + pad)); spans[i + 1][0] = Math.trunc(Math.max(0, spans[i + 1][0] - pad)); }
    } else s[1] = Math.trunc(Math.min(n, s[1] + pad));
  });
  return spans.map(([a, b]) => [a / rate, Math.min(b, n) / rate]);
}

const speechIn = (spans, from = 0, to = Infinity) => spans.reduce((t, [a, b]) => t + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0);

// --- linear algebra on small rows ----------------------------------------------------------------
const dot = (a, b) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };
const normalize = (v) => { const n = Math.sqrt(dot(v, v)); return v.map((x) => x / n); };
const meanRows = (rows) => rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);

function solve(a, b, n, m) {  // a (n, n), b (n, m) row-major → a⁻¹ b: Gaussian elimination, partial pivoting
  a = Float64Array.from(a); b = Float64Array.from(b);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r * n + col]) > Math.abs(a[pivot * n + col])) pivot = r;
    if (pivot !== col) {
      for (let j = 0; j < n; j++) [a[col * n + j], a[pivot * n + j]] = [a[pivot * n + j], a[col * n + j]];
      for (let j = 0; j < m; j++) [b[col * m + j], b[pivot * m + j]] = [b[pivot * m + j], b[col * m + j]];
    }
    for (let r = col + 1; r < n; r++) {
      const f = a[r * n + col] / a[col * n + col];
      if (f === 0) continue;
      for (let j = col; j < n; j++) a[r * n + j] -= f * a[col * n + j];
      for (let j = 0; j < m; j++) b[r * m + j] -= f * b[col * m + j];
    }
  }
  for (let col = n - 1; col >= 0; col--) {
    for (let j = 0; j < m; j++) {
      let s = b[col * m + j];
      for (let k = col + 1; k < n; k++) s -= a[col * n + k] * b[k * m + j];
      b[col * m + j] = s / a[col * n + col];
    }
  }
  return Float32Array.from(b);
}

// --- the model -------------------------------------------------------------------------------------
export class Speech2FaceWeb {
  static async load(base = "models/", onProgress = () => {}) {
    const manifest = await (await fetch(new URL("manifest.json", new URL(base, location.href)))).json();
    const sessions = {};
    for (const [name, entry] of Object.entries(manifest.graphs)) {
      onProgress(name);
      const url = new URL(entry.file, new URL(base, location.href));
      sessions[name] = await ort.InferenceSession.create(url.href, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    }
    return new Speech2FaceWeb(manifest, sessions);
  }

  constructor(manifest, sessions) { this.m = manifest; this.k = manifest.constants; this.s = sessions; }

  /** wave: 16 kHz mono Float32Array → the clips to encode (clips.speech_clips). */
  async clips(wave) {
    const k = this.k, rate = k.sample_rate, total = wave.length / rate;
    if (total < k.min_seconds) throw new AudioError(`the audio is too short: ${total.toFixed(2)} s, at least ${k.min_seconds.toFixed(1)} s is needed`);
    let level = loudestFrameDbfs(wave);
    if (level < k.silence_dbfs) throw new AudioError(`the audio is silent (loudest frame ${level.toFixed(0)} dBFS, below ${k.silence_dbfs.toFixed(0)} dBFS)`);
    if (level < k.quiet_dbfs) { const g = Math.fround(10 ** ((k.quiet_target_dbfs - level) / 20)); wave = wave.map((v) => v * g); }
    const probs = await speechProbabilities(this.s.vad, wave);
    let spans = segments(probs, wave.length, k, k.vad_threshold), found = speechIn(spans);
    const notes = [];
    if (found < k.min_speech_seconds) {
      const weak = segments(probs, wave.length, k, k.vad_weak_threshold);
      if (speechIn(weak) < k.min_speech_seconds) {
        const what = found === 0 ? "no speech found" : `too little speech: ${found.toFixed(1)} s found`;
        throw new AudioError(`${what} (at least ${k.min_speech_seconds.toFixed(0)} s of someone talking is needed; noise, music, tones and silence are not used)`);
      }
      spans = weak; found = speechIn(weak);
      notes.push(`the speech is faint or under music or noise: the face may follow the voice less closely`);
    }
    const n = Math.round(k.clip_seconds * rate);
    if (wave.length <= n) return { clips: [fixLength(wave, n)], spans: [[0, total]], found, notes };
    const count = Math.floor(total / k.clip_seconds), first = (total - count * k.clip_seconds) / 2;
    const starts = Array.from({ length: count }, (_, i) => first + i * k.clip_seconds);
    const speech = starts.map((s) => speechIn(spans, s, s + k.clip_seconds));
    let keep = starts.map((_, i) => i).filter((i) => speech[i] >= k.min_window_speech_share * k.clip_seconds);
    if (!keep.length) keep = [speech.indexOf(Math.max(...speech))];
    return {
      clips: keep.map((i) => fixLength(wave.subarray(Math.round(starts[i] * rate), Math.round(starts[i] * rate) + n), n)),
      spans: keep.map((i) => [starts[i], starts[i] + k.clip_seconds]), found, notes,
    };
  }

  /** One clip → its GE2E partial embeddings (P rows of 256): speaker.partial_wave, the mel and GE2E graphs. */
  async partials(clip) {
    const k = this.k;
    let sum = 0;
    for (const v of clip) sum += (v * 32767) ** 2;
    const change = k.target_dbfs - 20 * Math.log10(Math.max(Math.sqrt(sum / clip.length), 1e-10) / 32767);
    const gain = change > 0 ? Math.fround(10 ** (change / 20)) : 1;
    const frames = Math.ceil((clip.length + 1) / k.mel_hop), step = Math.round(k.sample_rate / k.partials_per_second / k.mel_hop);
    const starts = [];
    for (let s = 0; s < Math.max(1, frames - k.partial_frames + step + 1); s += step) starts.push(s);
    const coverage = (clip.length - starts[starts.length - 1] * k.mel_hop) / (k.partial_frames * k.mel_hop);
    if (coverage < k.min_coverage && starts.length > 1) starts.pop();
    const padded = new Float32Array(Math.max(clip.length, (starts[starts.length - 1] + k.partial_frames) * k.mel_hop));
    for (let i = 0; i < clip.length; i++) padded[i] = clip[i] * gain;
    const { mel } = await this.s.mel.run({ wave: new ort.Tensor("float32", padded, [padded.length]) });
    const bands = mel.dims[1], mels = new Float32Array(starts.length * k.partial_frames * bands);
    starts.forEach((s, p) => mels.set(mel.data.subarray(s * bands, (s + k.partial_frames) * bands), p * k.partial_frames * bands));
    const { partials } = await this.s.ge2e.run({ mels: new ort.Tensor("float32", mels, [starts.length, k.partial_frames, bands]) });
    return starts.map((_, p) => Array.from(partials.data.subarray(p * 256, (p + 1) * 256)));
  }

  /** The partials of a clip → null where they sound like one voice, else the larger group's (pipeline.two_voices). */
  twoVoices(parts) {
    let lo = Infinity, pair = [0, 0];
    parts.forEach((a, i) => parts.forEach((b, j) => { const s = dot(a, b); if (s < lo) { lo = s; pair = [i, j]; } }));
    let centers = [parts[pair[0]], parts[pair[1]]], first;
    for (let round = 0; round < 5; round++) {
      first = parts.map((p) => dot(p, centers[0]) >= dot(p, centers[1]));
      const a = first.filter(Boolean).length;
      if (Math.min(a, parts.length - a) < 2) return null;
      centers = [normalize(meanRows(parts.filter((_, i) => first[i]))), normalize(meanRows(parts.filter((_, i) => !first[i])))];
    }
    if (dot(centers[0], centers[1]) >= this.k.two_voices_cosine) return null;
    const main = first.filter(Boolean).length >= parts.length - first.filter(Boolean).length;
    return parts.filter((_, i) => first[i] === main);
  }

  async reconstruct(decoded, variations = 1) {
    const { wave, inputSeconds, analysedSeconds } = decoded;
    const heard = await this.clips(wave);
    const embeddings = [], within = [];
    for (const clip of heard.clips) {
      const parts = await this.partials(clip), main = this.twoVoices(parts);
      within.push(main !== null);
      embeddings.push(normalize(meanRows(main || parts)));
    }
    const sims = embeddings.map((a) => embeddings.map((b) => dot(a, b)));  // pipeline.one_voice
    const agree = sims.map((row) => row.filter((s) => s >= this.k.same_voice_cosine).length);
    const center = agree.indexOf(Math.max(...agree));
    const keep = embeddings.map((_, i) => i).filter((i) => sims[center][i] >= this.k.same_voice_cosine);
    const spans = keep.map((i) => heard.spans[i]), notes = [...heard.notes];
    const text = (ss) => ss.map(([a, b]) => `${a.toFixed(1)}–${b.toFixed(1)} s`).join(", ");
    const split = keep.filter((i) => within[i]).map((i) => heard.spans[i]);
    if (split.length) notes.push(`two voices within ${text(split)}: the face is drawn from the one heard longer there`);
    if (keep.length < embeddings.length) notes.push(`more than one voice: the face is drawn from the voice heard in ${text(spans)}`);
    const embedding = normalize(meanRows(keep.map((i) => embeddings[i])));

    const emb = new ort.Tensor("float32", Float32Array.from(embedding), [1, 256]);
    const { descriptors } = await this.s.voice.run({ embeddings: emb });
    const told = await this.s.attributes.run({ descriptors, embeddings: emb });
    const drawn = [told.steered.data];
    if (variations > 1) {  // voice_attributes.variations: the first draws, scaled by the head's spread, steered
      const F = this.m.residual_factor, z = this.m.variation_draws.slice(0, variations - 1);
      const rows = z.map((zr) => Float32Array.from(told.steered.data, (v, d) => v + dot(F[d], zr)));
      const many = new Float32Array(rows.length * 128); rows.forEach((r, i) => many.set(r, i * 128));
      const repeat = new Float32Array(rows.length * 256); rows.forEach((_, i) => repeat.set(emb.data, i * 256));
      const steered = await this.s.attributes.run({ descriptors: new ort.Tensor("float32", many, [rows.length, 128]),
                                                   embeddings: new ort.Tensor("float32", repeat, [rows.length, 256]) });
      rows.forEach((_, i) => drawn.push(steered.steered.data.subarray(i * 128, (i + 1) * 128)));
    }
    return {
      faces: await this.draw(drawn), descriptor: Array.from(told.steered.data),
      voice: this.attributes(told), spans, notes, inputSeconds, analysedSeconds, speechSeconds: heard.found,
      used: `${text(spans)} of ${inputSeconds.toFixed(1)} s` + (analysedSeconds < inputSeconds - 0.05 ? ` (the first ${analysedSeconds.toFixed(1)} s analysed)` : ""),
    };
  }

  attributes(told) {  // VoiceAttributes.read's dict
    const male = told.male.data[0], [years, low, high] = told.age.data, classes = this.m.classes;
    const post = Array.from(told.posterior.data), top = post.indexOf(Math.max(...post));
    const r = (v, d) => Math.round(v * 10 ** d) / 10 ** d;
    return {
      gender: { male: r(male, 3), female: r(1 - male, 3), most_likely: male >= 0.5 ? "male" : "female" },
      age: { years: r(years, 1), interval_80: [r(low, 1), r(high, 1)] },
      ethnicity: { ...Object.fromEntries(classes.map((c, i) => [c, r(post[i], 3)])), most_likely: classes[top],
                   drawn_as: classes[Number(told.drawn.data[0])] },
    };
  }

  /** Descriptors (rows of 128) → faces as ImageData: the decoder's two graphs, the TPS solved here. */
  async draw(rows) {
    const m = rows.length, desc = new Float32Array(m * 128);
    rows.forEach((r, i) => desc.set(r, i * 128));
    const st = await this.s.shape.run({ descriptors: new ort.Tensor("float32", desc, [m, 128]) });
    const n = st.system.dims[1], coef = new Float32Array(m * n * 2);
    for (let i = 0; i < m; i++) coef.set(solve(st.system.data.subarray(i * n * n, (i + 1) * n * n), st.rhs.data.subarray(i * n * 2, (i + 1) * n * 2), n, 2), i * n * 2);
    const { faces } = await this.s.draw.run({ x: st.x, landmarks: st.landmarks, texture: st.texture, look: st.look,
                                              controls: st.controls, coef: new ort.Tensor("float32", coef, [m, n, 2]) });
    const [, h, w] = faces.dims, out = [];
    for (let i = 0; i < m; i++) {
      const rgba = new Uint8ClampedArray(h * w * 4), src = faces.data.subarray(i * h * w * 3, (i + 1) * h * w * 3);
      for (let p = 0; p < h * w; p++) { rgba[4 * p] = src[3 * p]; rgba[4 * p + 1] = src[3 * p + 1]; rgba[4 * p + 2] = src[3 * p + 2]; rgba[4 * p + 3] = 255; }
      out.push(new ImageData(rgba, w, h));
    }
    return out;
  }
}

/** VoiceAttributes' describe(), for people: 'male voice (97 %), about 37 (80 %: 29–46), ethnicity …'. */
export function describe(a) {
  const pct = (p) => `${Math.round(100 * p)} %`, names = { white: "white", black: "Black", asian: "Asian", indian: "Indian", other: "other" };
  const top = a.gender.most_likely;
  const gender = a.gender[top] >= 0.7 ? `${top} voice (${pct(a.gender[top])})` : `gender uncertain (${top} ${pct(a.gender[top])})`;
  const age = `about ${a.age.years.toFixed(0)} (80 %: ${a.age.interval_80[0].toFixed(0)}–${a.age.interval_80[1].toFixed(0)})`;
  const ranked = Object.entries(a.ethnicity).filter(([c]) => c in names).sort((x, y) => y[1] - x[1]);
  const eth = ranked[0][1] >= 0.8 ? `ethnicity: ${names[ranked[0][0]]} (${pct(ranked[0][1])})`
    : "ethnicity uncertain: " + ranked.slice(0, 3).filter(([, p]) => p >= 0.05).map(([c, p]) => `${names[c]} ${pct(p)}`).join(", ");
  return `${gender}, ${age}, ${eth}`;
}
