"""The producer of asynchronous rollouts, its scheduling alone: the collection of a batch is
replaced by a recorder (the real one needs engines: tests/e2e/test_async_rollouts.py runs
it with them). Batch j never starts before iteration j - 1 - k is done, the engines are
never held by a generation and a sync at once, and the loop gets every batch in order."""

import threading
import time

import pytest

from rlsys.data.samplers import PromptSampler
from rlsys.loops import rollout_ahead
from rlsys.loops.rl_phases import Collected


class Recorder:
    def __init__(self, batches):
        self.batches, self.events, self.busy = batches, [], threading.Lock()

    def collect(self, ctx, sampler, it, engines=None):
        with engines:
            assert self.busy.acquire(blocking=False), "the engines were in use"
            self.events.append(("gen", it, self.batches._done))
            time.sleep(0.02)
            self.busy.release()
        return Collected(it, sampler.next(2), [], [], [], {})


@pytest.mark.parametrize("k", [1, 2])
def test_batches_run_at_most_k_ahead_and_never_overlap_a_sync(monkeypatch, k):
    batches = rollout_ahead.AheadBatches(ctx=None, sampler=PromptSampler(10, 0), max_staleness=k, poll_s=0.05)
    rec = Recorder(batches)
    monkeypatch.setattr(rollout_ahead, "collect", rec.collect)
    batches.start(1, 6)
    got = []
    for it in range(1, 7):
        got.append(batches.get(it).iteration)
        time.sleep(0.05)  # training
        with batches.engines:  # the sync
            assert rec.busy.acquire(blocking=False), "a sync overlapped a generation"
            rec.events.append(("sync", it, None))
            rec.busy.release()
        batches.trained(it)
        if it == 3:  # the loop's checkpoint after iteration 3 resumes drawing batch 4: 3 batches of 2 in
            assert batches.sampler_state(3)["position"] == 6
    batches.close()
    assert got == list(range(1, 7))
    for kind, j, done in rec.events:
        if kind == "gen":
            assert done >= j - 1 - k, (j, done)
    gens = [j for kind, j, _ in rec.events if kind == "gen"]
    assert gens == list(range(1, 7))
    # ahead for real: some batch was generated before the previous iteration's sync
    order = [(kind, j) for kind, j, _ in rec.events]
    assert any(order.index(("gen", j)) < order.index(("sync", j - 1)) for j in range(2, 7))


def test_a_producer_error_reaches_the_loop(monkeypatch):
    def broken(*_args, **_kw):
        raise RuntimeError("engine died")

    batches = rollout_ahead.AheadBatches(ctx=None, sampler=PromptSampler(10, 0), max_staleness=1, poll_s=0.05)
    monkeypatch.setattr(rollout_ahead, "collect", broken)
    batches.start(1, 3)
    with pytest.raises(RuntimeError, match="engine died"):
        batches.get(1)
    batches.close()


def test_the_last_batch_is_not_lost_when_the_producer_ends_inside_the_poll_window(monkeypatch):
    """The producer puts its last batch and exits while the loop's poll is timing out: the
    loop must take that batch, not report a producer that stopped."""
    import queue

    class LateQueue(queue.Queue):
        def get(self, block=True, timeout=None):
            if timeout is not None:  # the poll times out as the producer finishes
                producer.join()
                raise queue.Empty
            return super().get(block, timeout)

    batches = rollout_ahead.AheadBatches(ctx=None, sampler=PromptSampler(10, 0), max_staleness=1, poll_s=0.05)
    monkeypatch.setattr(rollout_ahead, "collect", lambda ctx, sampler, it, engines=None:
                        Collected(it, sampler.next(2), [], [], [], {}))
    batches._ready = LateQueue()
    batches.start(1, 1)
    producer = batches._thread
    assert batches.get(1).iteration == 1
    batches.close()
