"""Build real media files inside tests (PyAV/soundfile), so no binary fixtures live in the repo."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# container, codec for each audio suffix encoded through FFmpeg
PYAV_AUDIO = {
    ".mp3": ("mp3", "mp3"),
    ".m4a": ("ipod", "aac"),
    ".aac": ("adts", "aac"),
    ".webm": ("webm", "libopus"),
    ".mp4": ("mp4", "aac"),
    ".opus": ("ogg", "libopus"),
}
SOUNDFILE_AUDIO = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def write_audio(path: Path, wave: np.ndarray, rate: int) -> Path:
    """Write ``wave`` ((N,) mono or (N, C)) in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in SOUNDFILE_AUDIO:
        import soundfile as sf

        fmt, subtype = SOUNDFILE_AUDIO[suffix]
        sf.write(path, wave, rate, format=fmt, subtype=subtype)
        return path
    import av

    fmt, codec = PYAV_AUDIO[suffix]
    wave = np.asarray(wave, dtype=np.float32)
    planes = wave[None, :] if wave.ndim == 1 else wave.T  # (C, N)
    out_rate = 48_000 if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000) else rate
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = _layout(planes.shape[0])
        _encode_audio(container, stream, planes, rate)
    return path


def _layout(channels: int) -> str:
    """FFmpeg's layout for a channel count: mono, stereo, 5.1 for 6, 7.1 for 8."""
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[channels]


def _encode_audio(container, stream, planes: np.ndarray, rate: int) -> None:
    import av

    layout = _layout(planes.shape[0])
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=stream.codec_context.sample_rate)
    step = 1024
    for start in range(0, planes.shape[1], step):
        # packed input (one plane): PyAV's planar from_ndarray fails from 8 channels on
        packed = np.ascontiguousarray(planes[:, start : start + step].T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
        frame.sample_rate = rate
        frame.pts = None
        for out in resampler.resample(frame):
            for packet in stream.encode(out):
                container.mux(packet)
    for out in resampler.resample(None):
        for packet in stream.encode(out):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_video(path: Path, image: np.ndarray, wave: np.ndarray, rate: int, fps: int = 10,
                with_audio: bool = True) -> Path:
    """An H.264/AAC MP4 showing ``image`` (still, (H, W, 3) uint8) for as long as ``wave`` lasts
    (``with_audio=False``: the video track only)."""
    import av

    seconds = wave.size / rate
    height, width = (s - s % 2 for s in image.shape[:2])
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if with_audio:
            audio_stream = container.add_stream("aac", rate=rate)
            audio_stream.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if with_audio:
            _encode_audio(container, audio_stream, wave[None, :].astype(np.float32), rate)
    return path
