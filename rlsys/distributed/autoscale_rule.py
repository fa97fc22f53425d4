"""When to add or remove a rollout worker, from the phase times a run measured (pure: no Ray;
the rollout autoscaler, rlsys.distributed.autoscaler, applies it).

An iteration's time splits into the rollout side (generation, teacher scores, rewards: only
generation is spread over the rollout workers), the learner side (reference and old-policy
passes, critic, training) and the weight sync. The learner waits on generation for
`wait` seconds: the whole rollout side in the synchronous loop, the measured
`time/batch_wait` with asynchronous rollouts (where the rollout side of the next batch runs
while the learner trains).

With R workers generating for G seconds, R' workers are modelled as G * R / R' (the
planner's data-parallel rule), so the rollout side changes by dP = G * R / R' - G and the
learner's wait becomes
  max(0, wait + dP)                   when the learner waited (its wait absorbs the change),
  max(0, dP - slack)                  when it did not, slack = learner side - rollout side
                                      (generation had that much room before it is waited on).
An iteration is then predicted as T - wait + wait'. One more worker is added when it is
predicted to shorten the iteration by at least `up_gain` of it; one is removed when that is
predicted to lengthen it by at most `down_cost` (up_gain > down_cost: the hysteresis). A
change is judged on the last `window` settled iterations at the current size (none in which a
worker was added, removed, moved or replaced: a new engine's first generation is slow), after
a `cooldown` of iterations that are not judged at all. A
scale-up that did not make the measured iteration at least up_gain / 2 shorter (the workers
share hardware that fewer already filled, or the start cost more than it saved) is undone,
and that size is not tried again.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from rlsys.config.rollout import AutoscaleConfig

ROLLOUT_SIDE = ("time/generation", "time/teacher", "time/reward")
LEARNER_SIDE = ("time/logprobs", "time/critic_values", "time/critic_train", "time/train")


@dataclass(frozen=True)
class IterationTimes:
    """What one iteration measured, in seconds, at `workers` rollout workers."""

    iteration: int
    workers: int
    generation: float
    rollout_side: float
    learner_side: float
    wait: float
    total: float
    tokens_per_s: float = 0.0  # generation's sampled tokens per second, all workers together
    settled: bool = True  # no worker added, removed, moved or replaced in it (no engine warming up)

    @classmethod
    def of(cls, iteration: int, workers: int, metrics: dict[str, float], asynchronous: bool) -> IterationTimes:
        rollout = sum(metrics.get(k, 0.0) for k in ROLLOUT_SIDE)
        learner = sum(metrics.get(k, 0.0) for k in LEARNER_SIDE)
        wait = metrics.get("time/batch_wait", 0.0) if asynchronous else rollout
        return cls(iteration, workers, metrics.get("time/generation", 0.0), rollout, learner, wait,
                   metrics.get("time/iteration", rollout + learner + metrics.get("time/sync", 0.0)),
                   metrics.get("rollout/tokens_per_s", 0.0),
                   not any(metrics.get(k) for k in ("autoscale/change", "rollout/moved", "rollout/restarts_now")))


@dataclass(frozen=True)
class Decision:
    to: int
    reason: str
    predicted_s: float | None = None  # the iteration's predicted seconds at `to`
    ceiling: int | None = None  # the most workers worth having, once a scale-up did not pay
    measured: IterationTimes | None = None  # the mean of the iterations judged

    def changes(self, workers: int) -> bool:
        return self.to != workers


def predicted_wait(t: IterationTimes, workers: int) -> float:
    """The learner's wait on generation with `workers` instead of `t.workers`."""
    change = t.generation * t.workers / workers - t.generation
    if t.wait > 0:
        return max(0.0, t.wait + change)
    return max(0.0, change - max(0.0, t.learner_side - t.rollout_side))


def predicted_total(t: IterationTimes, workers: int) -> float:
    return t.total - t.wait + predicted_wait(t, workers)


def mean_times(rows: list[IterationTimes]) -> IterationTimes:
    mean = lambda name: statistics.fmean(getattr(r, name) for r in rows)  # noqa: E731
    return IterationTimes(rows[-1].iteration, rows[-1].workers, mean("generation"), mean("rollout_side"),
                          mean("learner_side"), mean("wait"), mean("total"), mean("tokens_per_s"))


def decide(history: list[IterationTimes], policy: AutoscaleConfig, last_change: dict | None = None,
           ceiling: int | None = None) -> Decision:
    """The worker count for the next iteration. `history`: every iteration so far, oldest
    first; `last_change`: the last scale event ({"iteration", "from", "to"}) if any;
    `ceiling`: a size found not to help (never exceeded)."""
    now = history[-1]
    workers, top = now.workers, min(policy.max_workers, ceiling or policy.max_workers)
    if workers < policy.min_workers:
        return Decision(policy.min_workers, f"below rollout.autoscale.min_workers={policy.min_workers}")
    if workers > top:
        return Decision(top, f"above the most workers allowed ({top})")
    since = last_change["iteration"] if last_change else 0
    if now.iteration - since <= policy.cooldown and last_change:
        return Decision(workers, f"cool-down after the change at iteration {since}")
    judged = [r for r in history if r.iteration > since + (policy.cooldown if last_change else 0)
              and r.workers == workers and r.settled][-policy.window:]
    if len(judged) < policy.window:
        return Decision(workers, f"measuring {workers} worker(s): {len(judged)} of {policy.window} iterations")
    t = mean_times(judged)
    if last_change and last_change["to"] == workers > last_change["from"] and last_change.get("measured_s"):
        before, smaller = last_change["measured_s"], last_change["from"]  # the iteration at the smaller size
        gain = (before - t.total) / before
        if gain < policy.up_gain / 2:
            return Decision(smaller, f"{workers} workers did not shorten the iteration enough ({before:.2f} s -> "
                            f"{t.total:.2f} s, {-gain:+.0%}; {policy.up_gain / 2:.0%} shorter needed): back to "
                            f"{smaller}, and no more from now on", predicted_total(t, smaller), smaller, t)
    if workers < top:
        faster = predicted_total(t, workers + 1)
        gain = (t.total - faster) / t.total
        if gain >= policy.up_gain:
            return Decision(workers + 1, f"the learner waits {t.wait:.2f} s of {t.total:.2f} s on generation "
                            f"({t.generation:.2f} s): one more worker predicts {faster:.2f} s per iteration "
                            f"({gain:.0%} shorter)", faster, measured=t)
    if workers > policy.min_workers:
        slower = predicted_total(t, workers - 1)
        cost = (slower - t.total) / t.total
        if cost <= policy.down_cost:
            return Decision(workers - 1, f"generation ({t.generation:.2f} s) waits on the learner ({t.learner_side:.2f}"
                            f" s): one fewer worker predicts {slower:.2f} s per iteration ({cost:+.0%})", slower, measured=t)
    held = f" (at most {top}: more did not pay)" if workers == top < policy.max_workers else ""
    return Decision(workers, f"balanced{held}: {t.wait:.2f} s of {t.total:.2f} s waiting on generation", measured=t)
