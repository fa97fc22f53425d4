"""The teacher service's request batcher: concurrent callers share batches and each gets its
own results back. The scoring function here is plain Python; the service with real models
is tested in tests/ray/test_teacher.py."""

import asyncio

from rlsys.workers.teacher import Batcher


def test_concurrent_requests_are_merged_and_answered_in_order():
    seen = []

    def score(items):
        seen.append(list(items))
        return [x * 10 for x in items]

    async def main():
        b = Batcher(score, max_items=64, max_wait_s=0.05)
        results = await asyncio.gather(*(b.submit([i, i + 100]) for i in range(5)))
        return results, b.take_stats()

    results, stats = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(5)]
    assert len(seen) == 1 and sorted(seen[0]) == sorted([i for j in range(5) for i in (j, j + 100)])
    assert stats["teacher/sequences"] == 10 and stats["teacher/batches"] == 1
    assert stats["teacher/queue_depth_max"] == 10


def test_batches_never_exceed_max_items():
    sizes = []

    def score(items):
        sizes.append(len(items))
        return list(items)

    async def main():
        b = Batcher(score, max_items=3, max_wait_s=0.01)
        return await asyncio.gather(*(b.submit([i, -i]) for i in range(4)))

    results = asyncio.run(main())
    assert results == [[i, -i] for i in range(4)]
    assert max(sizes) <= 3 and sum(sizes) == 8


def test_a_failing_batch_fails_every_caller_of_it():
    def score(items):
        raise RuntimeError("teacher out of memory")

    async def main():
        b = Batcher(score, max_items=8, max_wait_s=0.01)
        return await asyncio.gather(b.submit([1]), b.submit([2]), return_exceptions=True)

    for r in asyncio.run(main()):
        assert isinstance(r, RuntimeError) and "out of memory" in str(r)


def test_evaluation_traffic_is_counted_apart_from_training_traffic():
    """An evaluation scored while the producer's training batch is in flight (asynchronous
    rollouts): the training counters hold the training sequences only, and taking the
    evaluation's counters leaves them untouched."""

    async def main():
        b = Batcher(lambda items: list(items), max_items=64, max_wait_s=0.05)
        await asyncio.gather(b.submit(list(range(6)), "train"), b.submit(list(range(4)), "eval"))
        evaluation = b.take_stats("eval")
        await b.submit([7, 8], "train")
        return evaluation, b.take_stats("train"), b.take_stats("train")

    evaluation, train, again = asyncio.run(main())
    assert evaluation["teacher/sequences"] == 4 and evaluation["teacher/batches"] == 1
    assert train["teacher/sequences"] == 8 and train["teacher/batches"] == 2  # one shared batch, one alone
    assert again["teacher/sequences"] == 0
