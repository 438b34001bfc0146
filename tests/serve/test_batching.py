"""The server's request batching, on its own (no model): who joins a batch, who is dropped, and
what reaches /metrics."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("prometheus_client")

from speech2face.serve.batching import Batcher, ClientGone, Expired, Job  # noqa: E402
from speech2face.serve.metrics import Metrics, refusal_reason  # noqa: E402


def _job(data: bytes, duration: float = 6.0, variations: int = 1, gone: bool = False, deadline: float = 60.0) -> Job:
    async def left() -> bool:
        return gone

    return Job(data, duration, variations, time.monotonic() + deadline, left)


def _run(coro):
    return asyncio.run(coro)


def test_requests_arriving_together_share_one_batch_and_get_their_own_answers():
    seen: list[list[bytes]] = []

    def run_batch(jobs):
        seen.append([j.data for j in jobs])
        return [j.data.upper() for j in jobs]

    async def main():
        metrics = Metrics()
        batcher = Batcher(run_batch, metrics, max_batch=16, max_wait=0.05)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit(_job(f"clip{i}".encode())) for i in range(5)))
        await batcher.stop()
        return answers, metrics

    answers, metrics = _run(main())
    assert answers == [f"CLIP{i}".encode() for i in range(5)]
    assert seen == [[f"clip{i}".encode() for i in range(5)]]
    assert metrics.registry.get_sample_value("speech2face_batch_size_count") == 1
    assert metrics.registry.get_sample_value("speech2face_batch_size_sum") == 5


def test_batches_hold_one_clip_length_and_a_bounded_size():
    seen: list[tuple[float, int]] = []

    def run_batch(jobs):
        assert len({j.key for j in jobs}) == 1
        seen.append((jobs[0].duration, len(jobs)))
        return [j.data for j in jobs]

    async def main():
        batcher = Batcher(run_batch, Metrics(), max_batch=3, max_wait=0.05)
        batcher.start()
        jobs = [_job(b"a", 6.0), _job(b"b", 3.0), _job(b"c", 6.0), _job(b"d", 6.0), _job(b"e", 6.0), _job(b"f", 3.0)]
        answers = await asyncio.gather(*(batcher.submit(j) for j in jobs))
        await batcher.stop()
        return answers

    assert _run(main()) == [b"a", b"b", b"c", b"d", b"e", b"f"]
    assert sorted(seen) == [(3.0, 2), (6.0, 1), (6.0, 3)]


def test_gone_and_expired_requests_are_dropped_not_run():
    ran: list[bytes] = []

    def run_batch(jobs):
        ran.extend(j.data for j in jobs)
        return [j.data for j in jobs]

    async def main():
        metrics = Metrics()
        batcher = Batcher(run_batch, metrics, max_wait=0.02)
        batcher.start()
        results = await asyncio.gather(batcher.submit(_job(b"kept")), batcher.submit(_job(b"left", gone=True)),
                                       batcher.submit(_job(b"late", deadline=-1.0)), return_exceptions=True)
        await batcher.stop()
        return results, metrics

    (kept, left, late), metrics = _run(main())
    assert kept == b"kept" and isinstance(left, ClientGone) and isinstance(late, Expired)
    assert ran == [b"kept"]
    assert metrics.registry.get_sample_value("speech2face_dropped_total", {"reason": "client disconnected"}) == 1
    assert metrics.registry.get_sample_value("speech2face_dropped_total", {"reason": "time limit"}) == 1


def test_a_failing_batch_answers_each_of_its_requests_with_the_error():
    def run_batch(jobs):
        raise RuntimeError("broken")

    async def main():
        batcher = Batcher(run_batch, Metrics(), max_wait=0.02)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(_job(b"x")) for _ in range(3)), return_exceptions=True)
        await batcher.stop()
        return results

    assert all(isinstance(r, RuntimeError) for r in _run(main()))


@pytest.mark.parametrize("message, reason", [
    ("no speech found in the audio", "no speech"), ("the audio is silent", "silent"),
    ("upload larger than 20 MB", "too large"), ("the file is empty", "empty"),
    ("cannot identify the image: not an image", "unreadable"), ("query parameter 'x': bad", "bad request"),
])
def test_refusal_reasons_are_short_fixed_labels(message, reason):
    assert refusal_reason(422, message) == reason
