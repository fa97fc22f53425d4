"""Where the RL loop's batches come from. `OnPolicyBatches` collects each batch when the loop
asks for it (the synchronous loop: generation, training and sync never overlap).
`AheadBatches` (rollout.max_staleness = k > 0) collects in a producer thread: batch j may
start once the learner has finished iteration j - 1 - k, so its samples are at most k weight
versions old when trained on (the loop checks it). The rollout engines are used by one
caller at a time: the producer holds `engines` while it generates, and the loop holds it to
push weights, evaluate or resize the pool, so a weight sync never overlaps a generation on
the same engine (it waits for the generation in flight to finish, then the next one starts
with the new weights)."""

from __future__ import annotations

import queue
import threading
from contextlib import nullcontext

from rlsys.data.samplers import PromptSampler
from rlsys.errors import RunError
from rlsys.loops.context import RunContext
from rlsys.loops.rl_phases import Collected, collect


class OnPolicyBatches:
    def __init__(self, ctx: RunContext, sampler: PromptSampler) -> None:
        self.ctx, self.sampler = ctx, sampler
        self.engines = nullcontext()

    def start(self, first: int, last: int) -> None:
        pass

    def get(self, it: int) -> Collected:
        return collect(self.ctx, self.sampler, it)

    def trained(self, it: int) -> None:
        pass

    def sampler_state(self, it: int) -> dict:
        return self.sampler.state_dict()

    def close(self) -> None:
        pass


class AheadBatches:
    def __init__(self, ctx: RunContext, sampler: PromptSampler, max_staleness: int, poll_s: float = 1.0) -> None:
        self.ctx, self.sampler, self.k, self.poll_s = ctx, sampler, max_staleness, poll_s
        self.engines = threading.Lock()
        self._progress = threading.Condition()
        self._done = 0  # the last iteration the learner finished (weights pushed)
        self._stop = False
        self._ready: queue.Queue = queue.Queue()
        self._states: dict[int, dict] = {}  # the sampler's state before each batch was drawn
        self._thread: threading.Thread | None = None

    def start(self, first: int, last: int) -> None:
        self._done = first - 1
        self._thread = threading.Thread(target=self._produce, args=(first, last), name="rollout-ahead", daemon=True)
        self._thread.start()

    def _produce(self, first: int, last: int) -> None:
        try:
            for j in range(first, last + 1):
                with self._progress:
                    self._progress.wait_for(lambda: self._stop or self._done >= j - 1 - self.k)
                if self._stop:
                    return
                self._states[j] = self.sampler.state_dict()
                self._ready.put(collect(self.ctx, self.sampler, j, self.engines))
        except BaseException as exc:  # the loop re-raises it where it waits for the batch
            self._ready.put(exc)

    def get(self, it: int) -> Collected:
        while True:
            try:
                got = self._ready.get(timeout=self.poll_s)
                break
            except queue.Empty:
                if self._thread is None or not self._thread.is_alive():
                    try:  # it may have put its last batch (or its error) just before it ended
                        got = self._ready.get_nowait()
                        break
                    except queue.Empty:
                        raise RunError(f"the rollout producer stopped before batch {it}") from None
        if isinstance(got, BaseException):
            raise got
        if got.iteration != it:
            raise RunError(f"the rollout producer delivered batch {got.iteration} where {it} was due")
        return got

    def trained(self, it: int) -> None:
        with self._progress:
            self._done = it
            self._states.pop(it, None)  # a checkpoint after `it` needs batch it + 1's state only
            self._progress.notify_all()

    def sampler_state(self, it: int) -> dict:
        """The sampler as it stood before the first batch not yet trained on: a checkpoint
        after iteration `it` resumes by drawing batch it + 1 again (with the weights then)."""
        return self._states.get(it + 1, self.sampler.state_dict())

    def close(self, timeout_s: float = 600.0) -> None:
        with self._progress:
            self._stop = True
            self._progress.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)


def batch_source(ctx: RunContext, sampler: PromptSampler):
    k = ctx.cfg.rollout.max_staleness
    return AheadBatches(ctx, sampler, k) if k > 0 else OnPolicyBatches(ctx, sampler)
