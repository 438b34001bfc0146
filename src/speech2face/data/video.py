"""Cut one time segment out of a video: its audio (mono float32) and a few frames (RGB uint8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError


def video_duration(container) -> float:
    """Seconds, from the container or, failing that, from its longest stream."""
    if container.duration:
        return container.duration / 1_000_000  # av.time_base is microseconds
    spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(spans, default=0.0)


def read_segment(path: Path, start: float, end: float, n_frames: int = 3) -> tuple[np.ndarray, int, list[np.ndarray]]:
    """Audio of ``[start, end)`` seconds and ``n_frames`` frames spread inside it.

    Returns ``(wave (N,), sample_rate, frames [(H, W, 3) uint8, ...])``. Raises InputError for a
    missing or unreadable file, a segment outside the video, or a missing stream.
    """
    import av

    if not path.is_file():
        raise InputError(f"video not found: {path}")
    if not end > start >= 0:
        raise InputError(f"bad time range {start:.2f}-{end:.2f} s")
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise InputError(f"unreadable video {path.name}: {exc}") from None
    with container:
        duration = video_duration(container)
        if duration and end > duration + 0.05:
            raise InputError(f"time range {start:.2f}-{end:.2f} s lies outside the video ({duration:.2f} s long)")
        if not container.streams.audio:
            raise InputError(f"video {path.name} has no audio stream")
        if not container.streams.video:
            raise InputError(f"video {path.name} has no video stream")
        try:
            wave, rate = _decode_audio(container, start, end)
            frames = _decode_frames(container, [start + (end - start) * (i + 1) / (n_frames + 1) for i in range(n_frames)])
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"broken video {path.name}: {exc}") from None
    if wave.size == 0:
        raise InputError(f"no audio inside {start:.2f}-{end:.2f} s of {path.name}")
    if not frames:
        raise InputError(f"no video frames inside {start:.2f}-{end:.2f} s of {path.name}")
    return wave, rate, frames


def _decode_audio(container, start: float, end: float) -> tuple[np.ndarray, int]:
    import av

    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    container.seek(int(start * 1_000_000), any_frame=False, backward=True)  # container time base
    to_float = av.AudioResampler(format="fltp")
    chunks = []
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        t0 = float(frame.pts * frame.time_base)
        if t0 >= end:
            break
        for out in to_float.resample(frame):
            planes = out.to_ndarray().mean(axis=0)  # (n,) mono
            first = max(0, int(round((start - t0) * rate)))
            last = min(planes.size, int(round((end - t0) * rate)))
            if last > first:
                chunks.append(planes[first:last])
            t0 += out.samples / rate
    return (np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)), rate


def _decode_frames(container, times: list[float]) -> list[np.ndarray]:
    stream = container.streams.video[0]
    frames = []
    for t in times:
        container.seek(int(t * 1_000_000), any_frame=False, backward=True)
        for frame in container.decode(stream):
            if frame.pts is not None and float(frame.pts * frame.time_base) + 1e-3 >= t:
                frames.append(frame.to_ndarray(format="rgb24"))
                break
    return frames
