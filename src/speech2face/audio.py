"""Audio front end: any common file → mono 16 kHz → checked, fixed-length clip (the paper
encoder's spectrogram of it is in ``models.voice_encoder``).

Oh et al. (2019) feed the voice encoder 6 s of 16 kHz speech (shorter clips looped) as a complex
STFT (25 ms Hann window, 10 ms hop, 512-point FFT) whose real and imaginary parts are each
compressed by ``sign(x)·|x|^0.3``. Every size below is derived from the constants with units.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np

from .errors import AudioError
from .limits import (CLIP_SECONDS, MAX_CLIP_SECONDS, MAX_INPUT_SECONDS, MAX_SAMPLE_RATE,  # noqa: F401 (CLIP_SECONDS: audio.CLIP_SECONDS)
                     MIN_CLIP_SECONDS, MIN_SAMPLE_RATE)

# --- constants, with units ----------------------------------------------------------------
SAMPLE_RATE = 16_000  # Hz
WINDOW_SECONDS = 0.025  # s, Hann window
HOP_SECONDS = 0.010  # s
N_FFT = 512  # FFT points (window zero-padded to this)
POWER_LAW = 0.3  # exponent of sign(x)·|x|^p compression
MIN_SECONDS = 1.0  # s, shortest input worth looping up to a clip
SILENCE_DBFS = -75.0  # dBFS, loudest 30 ms frame below this → the clip is silent (one 16-bit step is −90)
QUIET_DBFS = -30.0  # dBFS: a loudest frame below this is raised (real clips of ../shared: −28 to −5, median −15)
QUIET_TARGET_DBFS = -15.0  # dBFS, where quiet input's loudest frame is raised to

# --- derived sizes ------------------------------------------------------------------------
WIN_LENGTH = round(WINDOW_SECONDS * SAMPLE_RATE)  # 400 samples
HOP_LENGTH = round(HOP_SECONDS * SAMPLE_RATE)  # 160 samples
N_FREQ = N_FFT // 2 + 1  # 257 bins


def clip_samples(seconds: float = CLIP_SECONDS) -> int:
    """Samples in a clip of ``seconds`` at SAMPLE_RATE (6 s → 96 000)."""
    return round(seconds * SAMPLE_RATE)


def n_frames(seconds: float = CLIP_SECONDS) -> int:
    """STFT frames of a clip without centre padding (6 s → 598, 3 s → 298)."""
    return 1 + (clip_samples(seconds) - WIN_LENGTH) // HOP_LENGTH


AudioSource = Union[str, Path, bytes, BinaryIO]

# Containers libsndfile decodes itself; everything else goes through FFmpeg (PyAV).
_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3"}
FORMATS_EXTRA = "speech2face[formats]"  # PyAV (FFmpeg, ~100 MB) for the containers libsndfile does not read


# --- decoding -----------------------------------------------------------------------------
def decode_audio(source: AudioSource, max_seconds: Optional[float] = MAX_INPUT_SECONDS
                 ) -> tuple[np.ndarray, int, float, list[str]]:
    """Decode a file (path, bytes or binary file object) to mono float32 at its own rate:
    ``(wave (N,), sample_rate, seconds, notes)``. AudioError with a message a user can act on for
    empty, unreadable, truncated or non-audio input. ``seconds``: the whole input's length (the
    samples decoded, or, where decoding stopped at ``max_seconds``, the length the file's header
    gives: it may be far longer); ``notes``: what was wrong but usable (a file cut short of the
    length its header gives)."""
    max_seconds = check_max_seconds(max_seconds)
    data, name, size = _open_source(source)
    if size == 0:
        raise AudioError(f"{name}: the file is empty")
    suffix = Path(name).suffix.lower()
    reasons = []
    decoders = (_read_soundfile, _read_pyav) if suffix in _SOUNDFILE_SUFFIXES else (_read_pyav, _read_soundfile)
    for decode in decoders:
        try:
            wave, rate, header_seconds = decode(data, max_seconds)
            break
        except NoAudioTrack as exc:
            what = "a picture, not audio" if exc.args and exc.args[0] == "picture" else \
                "the file has no audio track (a video without sound?)"
            raise AudioError(f"{name}: {what}") from None
        except Exception as exc:  # both libraries raise a zoo of types; report their reasons together
            reasons.append(_reason(exc))
    else:
        reasons = list(dict.fromkeys(r for r in reasons if r)) or ["unknown format"]
        raise AudioError(f"{name}: not a readable audio file ({'; '.join(reasons)})")
    if wave.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples (truncated or empty stream)")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{name}: the audio holds NaN or infinite samples")
    decoded = wave.size / rate
    stopped_early = wave.size >= int(max_seconds * rate)  # the rest was not decoded: the header knows it
    if stopped_early:
        return wave, rate, max(header_seconds or 0.0, decoded), []
    claimed = _wav_data_seconds(_head(data)) or header_seconds or 0.0  # libsndfile sizes a WAV by its bytes, not its header
    notes = [f"the file is cut short: its header gives {claimed:.1f} s, only {decoded:.1f} s could be read"] \
        if claimed > decoded + TRUNCATION_SLACK_SECONDS else []
    return wave, rate, decoded, notes


TRUNCATION_SLACK_SECONDS = 0.1  # s: a header may round its length; beyond this the file lost its end


def check_max_seconds(max_seconds) -> float:
    """How much of an input to decode, in seconds (None: the default), or an AudioError saying why not."""
    if max_seconds is None:
        return MAX_INPUT_SECONDS
    if (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float, np.integer, np.floating))
            or not np.isfinite(max_seconds) or max_seconds <= 0):
        raise AudioError(f"max_seconds must be a positive, finite number of seconds (or None for "
                         f"{MAX_INPUT_SECONDS:g}), got {max_seconds!r}")
    return float(max_seconds)


def _wav_data_seconds(data: bytes) -> Optional[float]:
    """The length a RIFF/WAVE header's data chunk gives, in seconds; None for other files or odd headers."""
    import struct

    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and pos + 20 <= len(data):
            byte_rate = struct.unpack_from("<I", data, pos + 16)[0]
        elif chunk == b"data":
            return size / byte_rate if byte_rate and size != 0xFFFFFFFF else None  # 0xFFFFFFFF: a stream of unknown length
        pos += 8 + size + (size & 1)
    return None


class NoAudioTrack(Exception):
    """A container that opened but holds no audio stream."""


_PLAIN_REASONS = {  # libsndfile's and FFmpeg's phrasings → what they mean to a user
    "Supported file format but file is malformed": "damaged",
    "End of file": "it ends too early: cut short or damaged",
    "Invalid data found when processing input": "damaged or not audio",
}


def _reason(exc: Exception) -> str:
    """A decoder's reason in words, without its internals (object reprs, errno numbers)."""
    text = str(getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or str(exc)).strip().rstrip(".")
    for phrase, plain in _PLAIN_REASONS.items():
        if text.startswith(phrase):
            return plain
    return text


def _open_source(source: AudioSource) -> tuple[Union[str, bytes], str, int]:
    """(what the decoders open: a path, read as it is decoded, or bytes; its name; its size in bytes).
    A file is never read whole: of a 3 GB recording only what is listened to is decoded."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            from .files import why_not_a_file

            raise AudioError(f"{path}: {why_not_a_file(path)}")
        return str(path), str(path), path.stat().st_size
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>", len(source)
    data = source.read()
    return data, getattr(source, "name", "<stream>"), len(data)


def _readable(data: Union[str, bytes]) -> BinaryIO:
    """A decoder's input as a file object to use in ``with``: the file opened (read as it is
    decoded; never its name, which FFmpeg would read as a URL where it has a colon), or the bytes."""
    return io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb")


def _head(data: Union[str, bytes], size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes (where headers live)."""
    if isinstance(data, bytes):
        return data[:size]
    with open(data, "rb") as f:
        return f.read(size)


def _read_soundfile(data: Union[str, bytes], max_seconds: float) -> tuple[np.ndarray, int, Optional[float]]:
    """(mono wave up to max_seconds, rate, the header's length in s or None)."""
    import soundfile as sf

    with _readable(data) as file, sf.SoundFile(file) as f:
        limit = int(max_seconds * f.samplerate)
        frames = f.frames if 0 < f.frames < limit else limit
        wave = f.read(frames=frames, dtype="float32", always_2d=True)  # (N, C)
        rate = f.samplerate
        header_seconds = f.frames / rate if f.frames > 0 else None
    return mix_down(wave), rate, header_seconds


_PICTURE_FORMATS = {"image2", "gif", "apng", "webp", "ico"}  # FFmpeg demuxers of still images (besides *_pipe)
PYAV_PLANE_LIMIT = 8  # channels from which PyAV's planar frame access crashes (FFmpeg keeps 8 plane pointers)


def _read_pyav(data: Union[str, bytes], max_seconds: float) -> tuple[np.ndarray, int, Optional[float]]:
    """(mono wave up to max_seconds, rate, the container's length in s or None)."""
    try:
        import av
    except ImportError:  # FFmpeg is the formats extra's: the runtime reads WAV, FLAC, Ogg, Opus and MP3 itself
        raise RuntimeError(f"m4a, aac, webm and mp4 need FFmpeg: pip install '{FORMATS_EXTRA}'") from None

    chunks, total = [], 0
    with _readable(data) as file, av.open(file, mode="r") as container:
        if not container.streams.audio:
            picture = container.format.name.endswith("_pipe") or container.format.name in _PICTURE_FORMATS
            raise NoAudioTrack("picture" if picture else "video")
        stream = container.streams.audio[0]
        if container.duration:
            header_seconds = container.duration / av.time_base
        elif stream.duration and stream.time_base:
            header_seconds = float(stream.duration * stream.time_base)
        else:
            header_seconds = None
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise ValueError("audio stream without a sample rate")
        limit = int(max_seconds * rate)
        to_float = av.AudioResampler(format="flt")  # packed float (one plane), channels kept
        for frame in container.decode(stream):
            channels = len(frame.layout.channels)
            # most decoders (Opus, AAC, MP3, Vorbis) already give planar float: no conversion. PyAV
            # reads past a frame's plane pointers from PYAV_PLANE_LIMIT channels on (a SIGSEGV):
            # such frames, and every other format, are converted to one packed plane
            if frame.format.name == "fltp" and channels < PYAV_PLANE_LIMIT:
                planes = frame.to_ndarray()  # (C, n) float32
                chunks.append(mix_down(planes.T))
                total += planes.shape[1]
            else:
                for out in to_float.resample(frame):
                    packed = out.to_ndarray().reshape(-1, channels)  # (1, n·C) interleaved → (n, C)
                    chunks.append(mix_down(packed))
                    total += packed.shape[0]
            if total >= limit:
                break
    wave = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return wave[:limit], rate, header_seconds


# --- arrays from Python callers ---------------------------------------------------------------
MAX_CHANNELS = 8  # a 2-D wave array has a channel axis at most this long
MAX_FLOAT_PEAK = 2.0  # float samples belong in [-1, 1]; far beyond, they are unscaled integer PCM


def check_duration(duration) -> float:
    """The clip length asked for, in seconds, or an AudioError naming what is wrong with it."""
    if (isinstance(duration, bool) or not isinstance(duration, (int, float, np.integer, np.floating))
            or not np.isfinite(duration) or not MIN_CLIP_SECONDS <= duration <= MAX_CLIP_SECONDS):
        raise AudioError(f"duration must be a number of seconds from {MIN_CLIP_SECONDS:g} to {MAX_CLIP_SECONDS:g}, "
                         f"got {duration!r}")
    return float(duration)


def check_sample_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise AudioError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"sample_rate must lie from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, got {sample_rate}")
    return int(sample_rate)


def wave_from_array(array, sample_rate, max_seconds: float = MAX_INPUT_SECONDS) -> np.ndarray:
    """A wave array as numpy users hold it → mono float32 in [-1, 1] at its own rate, at most
    ``max_seconds`` long (the rest is not analysed, as for files).

    Integer PCM is scaled by its type (int16 as ``scipy.io.wavfile.read`` returns it, int32,
    uint8 centred on 128); int64 — what ``np.array`` makes of a list of ints — by the range its
    values use (16- or 32-bit PCM); floats are taken as they are. ``(N,)``, ``(N, channels)`` and
    ``(channels, N)`` are understood; anything else, NaN/inf, or floats far outside [-1, 1]
    is an AudioError that says so.
    """
    sample_rate = check_sample_rate(sample_rate)
    max_seconds = check_max_seconds(max_seconds)
    x = np.asarray(array)
    if x.size == 0:
        raise AudioError(f"the wave array holds no samples (shape {x.shape})")
    if x.dtype.kind == "f":
        wave = x.astype(np.float32)
    elif x.dtype.kind in "iu":
        half, offset = _pcm_scale(x)
        wave = ((x.astype(np.float64) - offset) / half).astype(np.float32)
    else:
        raise AudioError(f"a wave array must hold integer PCM or floating-point samples, not {x.dtype}")
    if wave.ndim == 2:
        channel_axis = int(np.argmin(wave.shape))
        if wave.shape[channel_axis] > MAX_CHANNELS:
            raise AudioError(f"a 2-D wave array must be (samples, channels) or (channels, samples) with at most "
                             f"{MAX_CHANNELS} channels; shape {x.shape} has none")
        wave = mix_down(wave if channel_axis == 1 else wave.T)
    elif wave.ndim != 1:
        raise AudioError(f"a wave array must be 1-D (samples) or 2-D (with a channel axis), got shape {x.shape}")
    wave = wave[:round(max_seconds * sample_rate)]
    if not np.all(np.isfinite(wave)):
        raise AudioError("the audio holds NaN or infinite samples")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if x.dtype.kind == "f" and peak > MAX_FLOAT_PEAK:
        raise AudioError(f"float samples must lie in [-1, 1], these reach {peak:.0f}: integer PCM stored as floats? "
                         "Pass the integer array itself, or divide by its full scale (32768 for 16-bit)")
    return wave


def _pcm_scale(x: np.ndarray) -> tuple[float, float]:
    """(half of full scale, the zero level) of integer PCM: by its type (int16, int32, uint8 centred on
    128), or for 64-bit arrays, which no one records, by the range the values use (16- or 32-bit PCM)."""
    bits = 8 * x.dtype.itemsize
    if bits == 64:
        if x.dtype.kind == "u":
            top = int(x.max())
            bits = 16 if top < 2 ** 16 else 32 if top < 2 ** 32 else 64
        else:
            peak = int(np.abs(x).max())
            bits = 16 if peak <= 2 ** 15 else 32 if peak <= 2 ** 31 else 64
    half = 2.0 ** (bits - 1)
    return half, half if x.dtype.kind == "u" else 0.0


ANTIPHASE_POWER_RATIO = 0.01  # the channels' mean keeps under this share of their power: they cancel


def mix_down(frames: np.ndarray) -> np.ndarray:
    """(N, C) float samples → (N,) mono: the channels' mean, or, where that cancels (channels in
    antiphase, as a miswired stereo pair gives), the loudest channel alone."""
    if frames.shape[1] == 1:
        return frames[:, 0]
    mean = frames.mean(axis=1)
    power = (frames.astype(np.float64) ** 2).mean(axis=0)  # (C,)
    if float((mean.astype(np.float64) ** 2).mean()) < ANTIPHASE_POWER_RATIO * float(power.mean()):
        return frames[:, int(np.argmax(power))]
    return mean


# --- resampling, length, checks -----------------------------------------------------------
def resample(wave: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (libsoxr, 'HQ') of a mono float32 wave."""
    if rate == target:
        return wave.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32)


def fix_length(wave: np.ndarray, n_samples: int, offset: Union[int, str] = "center") -> np.ndarray:
    """Loop a short wave (as the paper does) or crop a long one to exactly ``n_samples``.

    ``offset`` is the crop start in samples, or "start"/"center".
    """
    if wave.size == 0:
        raise AudioError("cannot fix the length of an empty wave")
    if wave.size < n_samples:
        repeats = math.ceil(n_samples / wave.size)
        return np.tile(wave, repeats)[:n_samples]
    spare = wave.size - n_samples
    if offset == "start":
        start = 0
    elif offset == "center":
        start = spare // 2
    else:
        start = int(np.clip(int(offset), 0, spare))
    return wave[start : start + n_samples]


def loudest_frame_dbfs(wave: np.ndarray, frame_seconds: float = 0.03, rate: int = SAMPLE_RATE) -> float:
    """RMS level of the loudest ``frame_seconds`` frame, in dB relative to full scale."""
    frame = max(1, round(frame_seconds * rate))
    usable = wave[: wave.size - wave.size % frame] if wave.size >= frame else np.pad(wave, (0, frame - wave.size))
    rms = np.sqrt(np.mean(usable.reshape(-1, frame).astype(np.float64) ** 2, axis=1))
    return float(20 * np.log10(max(rms.max(), 1e-10)))


def check_speech(wave: np.ndarray, rate: int = SAMPLE_RATE, min_seconds: float = MIN_SECONDS) -> None:
    """Reject input that cannot hold a voice: too short to loop meaningfully, or silent."""
    seconds = wave.size / rate
    if seconds < min_seconds:
        raise AudioError(f"the audio is too short: {seconds:.2f} s, at least {min_seconds:.1f} s is needed")
    level = loudest_frame_dbfs(wave, rate=rate)
    if level < SILENCE_DBFS:
        raise AudioError(f"the audio is silent (loudest frame {level:.0f} dBFS, below {SILENCE_DBFS:.0f} dBFS)")


def raise_quiet(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Quiet speech (a loudest frame under QUIET_DBFS, e.g. a far microphone) made as loud as a typical
    recording, so that the speech detector and the encoders hear it; louder input is left as it is.
    Silence is not raised (check_speech refuses it first)."""
    level = loudest_frame_dbfs(wave, rate=rate)
    if SILENCE_DBFS <= level < QUIET_DBFS:
        return (wave * np.float32(10 ** ((QUIET_TARGET_DBFS - level) / 20))).astype(np.float32)
    return wave
