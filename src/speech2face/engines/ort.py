"""The ONNX Runtime engine: the graphs ``speech2face export onnx`` wrote from the shipped weights
(``assets/onnx``), run without torch. The same graphs run in the browser (``serve/static``).

Each session has one intra-op thread; independent work (clips, chunks of a batch) runs on
``workers`` threads side by side, as ``speech2face.runtime`` explains.
"""

from __future__ import annotations

import functools
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import WeightsError
from ..speaker import PARTIAL_FRAMES, mel_frames, partial_wave
from ..weights import shipped
from .sessions import session

ONNX_DIR = "onnx"
MANIFEST = "manifest.json"


def _chunks(array: np.ndarray, parts: int) -> list[np.ndarray]:
    return [c for c in np.array_split(array, max(1, min(parts, len(array)))) if len(c)]


def _map(fn, items: list, workers: int) -> list:
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:  # ONNX Runtime releases the GIL
        return list(pool.map(fn, items))


UNPACKED = {"shape"}  # the texture map's product is memory-bound (batch ≤ 32 rows of 128): packing its
# 100 MB weight for the CPU's kernels gains nothing (3.8 ms a face either way) and cost 0.1 s of each cold start
WARM_UP_ORDER = ("shape", "draw", "ge2e", "voice")  # the slowest to make first (0.2 s: the texture map's int8 folded)


class OnnxGraphs:
    """The manifest and a session per graph, verified against the manifest. ``warm_up`` makes them
    on a background thread, so that a first reconstruction decodes and listens while the decoder
    (0.2 s) is being made; a graph asked for before it is ready is waited for."""

    def __init__(self, folder: Optional[Path] = None) -> None:
        self.folder = Path(folder) if folder else shipped(ONNX_DIR)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise WeightsError(f"no ONNX graphs in {self.folder} (write them with `speech2face export onnx`)")
        self.manifest = json.loads(path.read_text())
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()

    def _make(self, name: str):
        entry = self.manifest["graphs"][name]
        return session(self.folder / entry["file"], entry["sha256"], prepack=name not in UNPACKED)

    def _future(self, name: str, pool: Optional[ThreadPoolExecutor] = None) -> Future:
        with self._lock:
            if name not in self._pending:
                if pool is None:
                    done = Future()
                    self._pending[name] = done
                else:
                    self._pending[name] = pool.submit(self._make, name)
                    return self._pending[name]
            else:
                return self._pending[name]
        try:
            done.set_result(self._make(name))
        except BaseException as exc:
            done.set_exception(exc)
        return done

    def warm_up(self, names=WARM_UP_ORDER) -> None:
        pool = ThreadPoolExecutor(1, thread_name_prefix="onnx-warm-up")
        for name in names:
            self._future(name, pool)
        pool.shutdown(wait=False)

    def __getitem__(self, name: str):
        return self._future(name).result()


class OnnxVoice:
    def __init__(self, graphs: OnnxGraphs) -> None:
        self.graphs = graphs
        self.center = np.asarray(graphs.manifest["center"], np.float32)  # (128,)

    def _mels(self, wave: np.ndarray) -> np.ndarray:
        """One wave → its partials' mel frames (P, 160, 40)."""
        padded, starts = partial_wave(wave)
        mel = mel_frames(padded)  # (T, 40): numpy; the browser runs the same frames as the "mel" graph
        return np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])

    def partials(self, clips: list[np.ndarray], workers: int = 1) -> list[np.ndarray]:
        mels = _map(self._mels, clips, workers)
        counts = [len(m) for m in mels]
        run = lambda chunk: self.graphs["ge2e"].run(None, {"mels": chunk})[0]  # noqa: E731
        embeds = np.concatenate(_map(run, _chunks(np.concatenate(mels), workers), workers))
        return np.split(embeds, np.cumsum(counts)[:-1])

    def descriptors(self, embeddings: np.ndarray, clips=None) -> np.ndarray:
        (desc,) = self.graphs["voice"].run(None, {"embeddings": np.asarray(embeddings, np.float32)})
        return desc


class OnnxDrawer:
    def __init__(self, graphs: OnnxGraphs) -> None:
        self.graphs = graphs
        self.portrait = bool(graphs.manifest["portrait"])
        self.size = int(graphs.manifest["size"])

    def warm_up(self) -> None:
        """Start making the sessions in the background (the pipeline calls this as a reconstruction begins)."""
        self.graphs.warm_up()

    def _draw(self, descriptors: np.ndarray) -> np.ndarray:
        x, landmarks, texture, look, controls, system, rhs = self.graphs["shape"].run(None, {"descriptors": descriptors})
        coef = np.linalg.solve(system, rhs)  # (M, K + 3, 2): the one step ONNX has no operator for
        feeds = {"x": x, "landmarks": landmarks, "texture": texture, "look": look, "controls": controls, "coef": coef}
        return self.graphs["draw"].run(None, feeds)[0]

    def decode(self, descriptors: np.ndarray, workers: int = 1) -> np.ndarray:
        """(N, D) or (D,) → (N, S, S, 3) uint8, in ``workers`` chunks side by side."""
        desc = np.ascontiguousarray(np.atleast_2d(descriptors), dtype=np.float32)
        return np.concatenate(_map(self._draw, _chunks(desc, workers), workers))


@functools.lru_cache(maxsize=None)
def shipped_graphs() -> OnnxGraphs:
    return OnnxGraphs()
