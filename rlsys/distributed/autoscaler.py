"""The run's own rollout autoscaler: after each iteration it feeds the measured phase times to
`rlsys.distributed.autoscale_rule.decide`, and applies a change between iterations through the
rollout pool (which rebuilds the weight-sync group and gives a new worker the current
weights). A scale-up first asks Ray for the resources (Ray's autoscaler SDK
`request_resources`, which a KubeRay or cloud autoscaler answers with a node) and waits a
bounded time for a node with room; when none comes the scale-up is abandoned, logged, and
the run goes on at its size. Every change, and every abandoned one, is an event
(`scale_events` in summary.json, metrics under `autoscale/`, a console line)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rlsys.config.rollout import AutoscaleConfig, RolloutConfig
from rlsys.distributed.rollout_pool import RolloutPool
from rlsys.distributed.autoscale_rule import IterationTimes, decide


def worker_bundle(rollout: RolloutConfig) -> dict[str, float]:
    """What one rollout worker asks Ray for."""
    gpus = {"GPU": rollout.num_gpus} if rollout.num_gpus else {}
    return {"CPU": rollout.num_cpus, **gpus, **rollout.resources}


def draining_nodes() -> set[str]:
    """The nodes Ray is draining (a preemption notice, a scale-down): nothing new goes there."""
    from ray._private.state import state

    return set(state.get_draining_nodes())


def room_for(bundle: dict[str, float]) -> bool:
    """Whether some live node that is not being drained has `bundle` free now."""
    import ray
    from ray._private.state import state

    draining = draining_nodes()
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    free = state.available_resources_per_node()
    return any(node in alive and node not in draining and all(res.get(k, 0.0) >= v for k, v in bundle.items())
               for node, res in free.items())


def request_workers(bundle: dict[str, float], workers: int) -> None:
    """Tell Ray's autoscaler the rollout workers' standing demand (replaces the last request)."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[bundle] * workers)


class RolloutAutoscaler:
    def __init__(self, pool: RolloutPool, cfg: AutoscaleConfig, rollout: RolloutConfig, asynchronous: bool,
                 say: Callable[[str], None] = print, poll_s: float = 1.0) -> None:
        self.pool, self.cfg, self.asynchronous, self.say, self.poll_s = pool, cfg, asynchronous, say, poll_s
        self.bundle = worker_bundle(rollout)
        self.history: list[IterationTimes] = []
        self.events: list[dict] = []  # every change and abandoned change of the run
        self.ceiling: int | None = None
        self.last_change: dict | None = None

    def observe(self, iteration: int, metrics: dict[str, float]) -> None:
        """One finished iteration's measured times (at the worker count it ran with)."""
        workers = int(metrics.get("rollout/workers", len(self.pool)))
        self.history.append(IterationTimes.of(iteration, workers, metrics, self.asynchronous))

    def step(self) -> dict[str, float]:
        """Decide on the iterations seen so far and apply the decision (between iterations)."""
        if not self.history:
            return {}
        now, workers = self.history[-1], len(self.pool)
        decision = decide(self.history, self.cfg, self.last_change, self.ceiling)
        out = {"autoscale/wanted": float(decision.to)}
        if not decision.changes(workers):
            return out | {"autoscale/change": 0.0}
        if decision.ceiling is not None:
            self.ceiling = decision.ceiling
        measured = decision.measured or now  # a bound's decision judges nothing
        event = {"iteration": now.iteration, "from": workers, "to": decision.to, "reason": decision.reason,
                 "predicted_s": decision.predicted_s, "measured_s": measured.total,
                 "tokens_per_s": measured.tokens_per_s, "time": time.time()}
        waited = time.monotonic()
        if decision.to > workers and not self._resources_for(decision.to):
            event |= {"abandoned": True, "waited_s": time.monotonic() - waited,
                      "reason": f"{decision.reason}; abandoned: no node had room for another rollout worker "
                                f"({self.bundle}) within {self.cfg.resource_timeout_s:.0f}s"}
            self._record(event)
            request_workers(self.bundle, workers)  # withdraw the demand that was not met
            return out | {"autoscale/change": 0.0, "autoscale/abandoned": 1.0}
        started = time.perf_counter()
        self.pool.scale(decision.to)
        request_workers(self.bundle, decision.to)
        event["seconds"] = time.perf_counter() - started
        self._record(event)
        return out | {"autoscale/change": float(decision.to - workers), "time/autoscale": event["seconds"]}

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the events so far (summary.json lists them all), the last
        change (its cool-down) and the ceiling. The phase times are measured afresh."""
        return {"events": self.events, "last_change": self.last_change, "ceiling": self.ceiling}

    def load_state_dict(self, state: dict) -> None:
        self.events = list(state.get("events", []))  # those of the run before the resume, then this job's
        self.last_change, self.ceiling = state.get("last_change"), state.get("ceiling")

    def _resources_for(self, workers: int) -> bool:
        request_workers(self.bundle, workers)
        deadline = time.monotonic() + self.cfg.resource_timeout_s
        while not room_for(self.bundle):
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s)
        return True

    def _record(self, event: dict) -> None:
        self.events.append(event)
        self.last_change = event  # an abandoned scale-up also waits out the cool-down
        verb = "abandoned" if event.get("abandoned") else "scaled"
        self.say(f"autoscale after iteration {event['iteration']}: {verb} rollout workers {event['from']} -> "
                 f"{event['to']}: {event['reason']}")


def start_autoscaler(pool: RolloutPool, rollout: RolloutConfig, say: Callable[[str], None] = print):
    return None if rollout.autoscale is None else RolloutAutoscaler(pool, rollout.autoscale, rollout,
                                                                     rollout.max_staleness > 0, say)
