"""The teacher service's request batcher: concurrent callers share batches, each gets its
own results back, and the traffic of each kind of caller (training, evaluation) is counted
apart, so that an evaluation overlapping the producer's scoring (asynchronous rollouts)
neither adds to nor resets the training iteration's teacher statistics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class Counters:
    items: int = 0
    batches: int = 0
    busy_seconds: float = 0.0
    max_queue_depth: int = 0


class Batcher:
    """Collects items from concurrent `submit` calls and runs `fn` on batches of them.

    A batch starts when `max_items` are waiting or `max_wait_s` after the first one
    arrived; `fn` runs in one worker thread so the event loop keeps accepting requests.
    """

    def __init__(self, fn: Callable[[list], list], max_items: int, max_wait_s: float) -> None:
        self.fn, self.max_items, self.max_wait_s = fn, max_items, max_wait_s
        self.pending: list[tuple[object, asyncio.Future, str]] = []
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teacher")
        self.arrived: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None
        self.counters: dict[str, Counters] = {}

    def _count(self, tag: str) -> Counters:
        return self.counters.setdefault(tag, Counters())

    async def submit(self, items: list, tag: str = "train") -> list:
        loop = asyncio.get_running_loop()
        if self.worker is None or self.worker.done():
            self.arrived = asyncio.Event()
            self.worker = loop.create_task(self._run())
        futures = [loop.create_future() for _ in items]
        self.pending.extend((item, fut, tag) for item, fut in zip(items, futures))
        count = self._count(tag)
        count.max_queue_depth = max(count.max_queue_depth, len(self.pending))
        self.arrived.set()
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.arrived.wait()
            deadline = loop.time() + self.max_wait_s
            while len(self.pending) < self.max_items and loop.time() < deadline:
                await asyncio.sleep(min(0.002, max(0.0, deadline - loop.time())))
            batch, self.pending = self.pending[: self.max_items], self.pending[self.max_items :]
            if not self.pending:
                self.arrived.clear()
            if not batch:
                continue
            started = time.perf_counter()
            tags = {tag for _, _, tag in batch}
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [item for item, _, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"scorer returned {len(results)} results for {len(batch)} items")
            except Exception as exc:  # every caller of this batch gets the error
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                for tag in tags:  # a shared batch's time is each caller's wait
                    self._count(tag).busy_seconds += time.perf_counter() - started
            for tag in tags:
                count = self._count(tag)
                count.batches += 1
                count.items += sum(t == tag for _, _, t in batch)
            for (_, fut, _), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)

    def take_stats(self, tag: str = "train") -> dict[str, float]:
        """`tag`'s counters since its last call (then reset); other tags' are left alone."""
        count = self.counters.pop(tag, Counters())
        return {
            "teacher/sequences": float(count.items),
            "teacher/batches": float(count.batches),
            "teacher/mean_batch": count.items / max(1, count.batches),
            "teacher/busy_seconds": count.busy_seconds,
            "teacher/queue_depth_max": float(count.max_queue_depth),
            "teacher/queue_depth": float(len(self.pending)),
        }
