"""Concurrent reconstruction requests joined into batches: one `reconstruct_each` call (the
batched path the CLI uses) for every request that arrives within a few milliseconds of another.

A request waits in a queue with its deadline. A collector takes the first waiting request and
every other already waiting (up to ``max_batch``); under load — the last batch held more than one
request — it also waits at most ``max_wait`` seconds for more, while an idle server answers a lone
request at once. It drops those whose client has gone or whose deadline has passed, and runs the
rest as one batch in a worker thread while the next batch gathers. Requests in one batch share
their clip length and number of faces (those that do not wait for the next batch).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from .metrics import Metrics


class Expired(Exception):
    """The request's time limit passed before its batch ran."""


class ClientGone(Exception):
    """The client disconnected while its request waited: it was dropped from the queue."""


@dataclass
class Job:
    data: bytes
    duration: float
    variations: int
    deadline: float  # time.monotonic() by which the answer is due
    gone: Callable[[], Awaitable[bool]]  # has the client disconnected?
    read_face: bool = False  # also read the drawn face's gender and age (JSON answers only)
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def key(self) -> tuple[float, int]:
        return self.duration, self.variations


class Batcher:
    """``await batcher.submit(job)`` → that job's answer from ``run_batch(jobs)`` (one per job, in
    order; an exception in that list is raised to its job's caller)."""

    def __init__(self, run_batch: Callable[[list[Job]], list], metrics: Metrics,
                 max_batch: int = 16, max_wait: float = 0.01) -> None:
        self.run_batch, self.metrics = run_batch, metrics
        self.max_batch, self.max_wait = max_batch, max_wait
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def submit(self, job: Job):
        await self.queue.put(job)
        self.metrics.queue_depth.set(self.queue.qsize())
        return await job.future

    async def _collect(self) -> None:
        held: list[Job] = []  # waiting jobs of another clip length / number of faces
        last_size = 1
        while True:
            first = held.pop(0) if held else await self.queue.get()
            loaded = last_size > 1 or not self.queue.empty()
            batch, until = [first], time.monotonic() + (self.max_wait if loaded else 0.0)
            while len(batch) < self.max_batch:
                same = [j for j in held if j.key == first.key]
                for j in same[: self.max_batch - len(batch)]:
                    held.remove(j)
                    batch.append(j)
                if len(batch) >= self.max_batch:
                    break
                if self.queue.empty() and time.monotonic() >= until:
                    break
                try:
                    job = self.queue.get_nowait() if not self.queue.empty() else await asyncio.wait_for(
                        self.queue.get(), until - time.monotonic())
                except asyncio.TimeoutError:
                    break
                (batch if job.key == first.key else held).append(job)
            self.metrics.queue_depth.set(self.queue.qsize() + len(held))
            wanted = [j for j in batch if await self._still_wanted(j)]
            last_size = len(batch)
            await self._run(wanted)

    async def _still_wanted(self, job: Job) -> bool:
        if job.future.done():  # the handler gave up (time limit) or was cancelled
            return False
        if await job.gone():
            self.metrics.dropped.labels(reason="client disconnected").inc()
            job.future.set_exception(ClientGone())
            return False
        if time.monotonic() > job.deadline:
            self.metrics.dropped.labels(reason="time limit").inc()
            job.future.set_exception(Expired())
            return False
        return True

    async def _run(self, batch: list[Job]) -> None:
        if not batch:
            return
        self.metrics.batch_size.observe(len(batch))
        try:
            results = await asyncio.to_thread(self.run_batch, batch)
        except Exception as exc:  # a fault of the batch: each of its requests gets it
            results = [exc] * len(batch)
        for job, result in zip(batch, results):
            if job.future.done():
                continue
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
