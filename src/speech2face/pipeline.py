"""The line from input to face, for the CLI, the web app and Python users.

    import speech2face
    model = speech2face.load_model()                  # shipped weights, checksums verified
    result = model.reconstruct("clip.wav")            # .image (224, 224, 3) uint8, .descriptor (128,)
    result.voice_attributes                           # what the voice tells, with confidences
    model.reconstruct("clip.wav", variations=4).variations    # 4 faces, the most likely first
    face, descriptor = model.renderer.normalize("photo.jpg")   # the face-to-face check

The networks run on ONNX Runtime by default (``engines.ort``: no torch is imported); weights of
one's own, the paper's encoder and GPUs run on torch (``engines.pytorch``, the training extra).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import audio
from .clips import SpeechClips, describe_spans, speech_clips
from .errors import AudioError, InputError
from .faces import CANONICAL_FACE_BOX, PORTRAIT_FACE_BOX, FaceAnalyzer, ImageSource
from .limits import MAX_INPUT_SECONDS, MAX_VARIATIONS
from .runtime import available_cpus
from .speaker import utterance_embeddings
from .voice_attributes import VOICE_ATTRIBUTES_WEIGHTS, VoiceAttributes
from .weights import shipped

DECODER_WEIGHTS = "face_decoder.safetensors"
VOICE_WEIGHTS = "voice_encoder.safetensors"
ENGINES = ("auto", "onnx", "torch")


class FaceRenderer:
    """An engine's face drawer plus the face front end: descriptors or photos → canonical faces."""

    def __init__(self, drawer) -> None:
        self.drawer = drawer

    @property
    def decoder(self):
        """The torch FaceDecoder (torch engine only)."""
        return self.drawer.decoder

    @property
    def face_box(self) -> tuple[float, float, float, float]:
        """Where the face lies in a drawing (left, top, right, bottom as fractions of the side):
        drawings are canonical, so attribute classifiers need no detector."""
        return PORTRAIT_FACE_BOX if self.drawer.portrait else CANONICAL_FACE_BOX

    @functools.cached_property
    def analyzer(self) -> FaceAnalyzer:
        return FaceAnalyzer()

    def decode(self, descriptors: np.ndarray, workers: int = 1) -> np.ndarray:
        """(N, D) or (D,) descriptors → (N, S, S, 3) uint8 canonical faces, ``workers`` chunks side by side."""
        return self.drawer.decode(descriptors, workers=workers)

    def normalize(self, photo: ImageSource) -> tuple[np.ndarray, np.ndarray]:
        """Photo → (canonical face (S, S, 3) uint8, descriptor (D,)): the face-to-face check."""
        descriptor = self.analyzer.descriptor(photo)
        return self.decode(descriptor)[0], descriptor


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

    ``voice`` and ``renderer.drawer`` come from an engine (``speech2face.engines``); independent
    work (files, halves of a batch) is spread over ``workers`` threads, by default the CPUs this
    process may really use."""

    def __init__(self, voice, renderer: FaceRenderer, workers: Optional[int] = None,
                 attributes: Optional[VoiceAttributes] = None, steer: bool = True, engine: str = "onnx") -> None:
        self.voice = voice
        self.renderer = renderer
        self.workers = workers or available_cpus()
        self.attributes = attributes
        self.steer = steer and attributes is not None
        self.engine = engine

    @property
    def center(self) -> np.ndarray:
        """(D,) the mean descriptor the voice's predictions are exaggerated away from."""
        return self.voice.center

    def listen(self, inputs: list[SpeechClips]) -> list[Voice]:
        """Each input's clips → its main voice (the inputs are left as they are).

        The GE2E embeddings of an input's clips that sound like one voice are averaged (on val
        recordings of 12 s this came closest to the true face: centred cosine 0.187, vs 0.177
        averaging descriptors and 0.163 for one window); the others are dropped, with a note."""
        clips = [c for p in inputs for c in p.clips]
        partials = self.voice.partials(clips, workers=self.workers)
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

    def encode(self, inputs: list[SpeechClips], voices: list[Voice]) -> np.ndarray:
        """The descriptors drawn (N, D), exaggerated: of each voice's embedding (speaker variant),
        or the mean of its kept clips' outputs (paper variant, torch engine)."""
        return self.voice.descriptors(np.stack([v.embedding for v in voices]),
                                      [[p.clips[k] for k in v.keep] for p, v in zip(inputs, voices)])

    def read_voices(self, inputs: list[SpeechClips]) -> tuple[list[Voice], np.ndarray, np.ndarray]:
        """Each input's voice, the descriptor its face is drawn from (N, D), steered where asked,
        and its GE2E embedding (N, 256): everything but the drawing."""
        voices = self.listen(inputs)
        descs = self.encode(inputs, voices)  # (N, D)
        embeddings = np.stack([v.embedding for v in voices])  # (N, 256)
        if self.steer:
            descs = self.attributes.steer(descs, embeddings)
        return voices, descs, embeddings

    def voice_descriptor(self, source, *, sample_rate: Optional[int] = None,
                         max_seconds: float = MAX_INPUT_SECONDS) -> np.ndarray:
        """The face descriptor (D,) a voice's face would be drawn from, without drawing it."""
        clips = self.prepare(source, sample_rate, audio.CLIP_SECONDS, audio.check_max_seconds(max_seconds))
        return self.read_voices([clips])[1][0]

    def reconstruct(self, source: Union[str, Path, bytes, np.ndarray], *, sample_rate: Optional[int] = None,
                    duration: float = audio.CLIP_SECONDS, max_seconds: float = MAX_INPUT_SECONDS,
                    variations: int = 1) -> Reconstruction:
        """A file (any format), bytes, or a wave array with its ``sample_rate`` → Reconstruction
        (``variations`` faces, the most likely first). At most ``max_seconds`` are listened to."""
        (result,) = self.reconstruct_each([source], sample_rate=sample_rate, duration=duration,
                                          max_seconds=max_seconds, variations=variations)
        if isinstance(result, InputError):
            raise result
        return result

    def reconstruct_each(self, sources: list, *, sample_rate: Optional[int] = None, duration: float = audio.CLIP_SECONDS,
                         max_seconds: float = MAX_INPUT_SECONDS,
                         variations: int = 1) -> list[Union[Reconstruction, InputError]]:
        """Several inputs at once (batched): a Reconstruction for each, or the InputError that stopped it."""
        variations = check_variations(variations)
        max_seconds = audio.check_max_seconds(max_seconds)
        if hasattr(self.renderer.drawer, "warm_up"):  # the decoder's sessions are made while the audio is decoded
            self.renderer.drawer.warm_up()
        with ThreadPoolExecutor(max_workers=max(1, min(len(sources), self.workers))) as pool:
            prepared = list(pool.map(lambda s: _attempt(self.prepare, s, sample_rate, duration, max_seconds), sources))
        good = [p for p in prepared if isinstance(p, SpeechClips)]
        if not good:
            return prepared
        voices, descs, embeddings = self.read_voices(good)
        told = self.attributes.read(embeddings) if self.attributes else [None] * len(good)
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
            results.append(Reconstruction(image=faces[0], descriptor=desc, spans=voice.spans,
                                          input_seconds=clips.input_seconds, speech_seconds=clips.speech_seconds,
                                          notes=voice.notes, analysed_seconds=clips.analysed_seconds,
                                          voice_attributes=attributes, variations=list(faces)))
        return results

    @staticmethod
    def prepare(source, sample_rate: Optional[int], duration: float,
                max_seconds: float = MAX_INPUT_SECONDS) -> SpeechClips:
        """One input → its speech clips (decoded up to ``max_seconds``, resampled, checked, VAD-selected)."""
        duration = audio.check_duration(duration)
        if hasattr(source, "detach") and hasattr(source, "is_floating_point"):  # a torch tensor, without importing torch
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


def load_model(*, voice_weights: Optional[Union[str, Path]] = None,
               decoder_weights: Optional[Union[str, Path]] = None,
               attributes_weights: Optional[Union[str, Path]] = None, device: Optional[str] = None,
               steer: bool = True, bfloat16: bool = False, engine: str = "auto") -> Speech2Face:
    """The voice encoder, face decoder and voice attributes (default: the weights shipped in the
    package), verified. ``steer``: draw the voice's gender, group and age (see voice_attributes).

    ``engine``: "onnx" runs the graphs exported from the shipped weights on ONNX Runtime (no
    torch); "torch" runs safetensors weights on torch (the training extra), which weights of
    one's own, a CUDA ``device`` and ``bfloat16`` (GE2E's LSTM in bfloat16, for servers with
    bfloat16 units) need; "auto" picks onnx unless one of those asks for torch."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use {', '.join(ENGINES)}")
    own = voice_weights is not None or decoder_weights is not None
    if engine == "auto":
        engine = "torch" if own or bfloat16 or (device not in (None, "cpu")) else "onnx"
    attributes_path = Path(attributes_weights) if attributes_weights else shipped(VOICE_ATTRIBUTES_WEIGHTS)
    attributes = VoiceAttributes.load(attributes_path) if attributes_weights or attributes_path.is_file() else None
    if engine == "onnx":
        if own or bfloat16 or device not in (None, "cpu"):
            raise InputError("the onnx engine runs the shipped weights on the CPU: weights of your own, a GPU "
                             "device or bfloat16 need engine='torch'")
        from .engines.ort import OnnxDrawer, OnnxVoice, shipped_graphs

        graphs = shipped_graphs()
        return Speech2Face(OnnxVoice(graphs), FaceRenderer(OnnxDrawer(graphs)), attributes=attributes, steer=steer,
                           engine="onnx")
    from .extras import require

    require("torch", "the torch engine")
    from .engines.pytorch import load_drawer, load_voice

    voice = load_voice(voice_weights, device, bfloat16)
    return Speech2Face(voice, FaceRenderer(load_drawer(decoder_weights, voice.device)), attributes=attributes,
                       steer=steer, engine="torch")


def load_decoder(path: Optional[Union[str, Path]] = None, device: Optional[str] = None,
                 engine: str = "torch") -> FaceRenderer:
    """The face decoder alone, as a FaceRenderer: for photos → canonical faces (``normalize``), and,
    on the torch engine (training extra; ``.decoder`` is the torch module), for training and
    evaluating decoders. "auto" runs the shipped graphs on ONNX Runtime unless ``path`` or a GPU
    ``device`` asks for torch."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use {', '.join(ENGINES)}")
    if engine == "auto":
        engine = "torch" if path is not None or device not in (None, "cpu") else "onnx"
    if engine == "onnx":
        if path is not None or device not in (None, "cpu"):
            raise InputError("the onnx engine runs the shipped decoder on the CPU: weights of your own or a GPU "
                             "device need engine='torch'")
        from .engines.ort import OnnxDrawer, shipped_graphs

        return FaceRenderer(OnnxDrawer(shipped_graphs()))
    from .extras import require

    require("torch", "the torch engine")
    from .engines.pytorch import load_drawer

    return FaceRenderer(load_drawer(path, device))
