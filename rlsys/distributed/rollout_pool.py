"""The rollout pool: vLLM rollout workers that heal and scale inside a running job.

Each worker sits in a slot (`rollout-<i>`). A worker that dies (its process ended, `ray
kill`) is replaced in its slot, up to `rollout.max_restarts` times per slot; the
replacement joins a weight-sync group rebuilt for the new membership (a new rendezvous,
never the old group), receives the current weights, and only then re-runs the share of
prompts its predecessor had not returned. `scale(n)` adds or removes workers between
iterations the same way. The pool owns the sync group's membership, so every change of
membership goes through `rejoin`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rlsys.config import SyncConfig
from rlsys.distributed.calls import Died, NoAnswer, dead, outcomes
from rlsys.errors import RunError, Unplaceable
from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import init_weight_sync, push_weights
from rlsys.records import PromptItem, Sample


class RolloutPool(ActorGroup):
    def __init__(self, start_worker: Callable[[int], object], size: int, max_restarts: int,
                 start_timeout_s: float, resources: dict[str, float] | None = None) -> None:
        """`resources`: the custom resources each worker asks for (a replacement needs a live
        node that offers them)."""
        self.start_worker, self.max_restarts, self.start_timeout_s = start_worker, max_restarts, start_timeout_s
        self.resources = dict(resources or {})
        self.slots = list(range(size))
        super().__init__([start_worker(i) for i in self.slots], [f"rollout-{i}" for i in self.slots])
        self.restarts = {i: 0 for i in self.slots}
        self.events: list[dict] = []  # not yet taken by the loop
        self.events_seen: list[dict] = []  # every restart and scale of this job
        self.learners = None
        self.world_size = 0  # of the weight-sync group: learner rank 0 and every engine shard
        self.heal_from_last_push = False
        self.version = 0  # the weights every engine holds (0: the model as loaded)

    # ----- membership ---------------------------------------------------------------
    def ready(self, what: str) -> None:
        """Every worker answers; one that died on the way is replaced."""
        while died := dead(self._answers(what)):
            self._replace(died, what)

    def _answers(self, what: str, poll_s: float = 5.0) -> list:
        """Every worker's ping (or `Died`) within the start bound. A worker that waits to be
        placed while no live node offers what it asks for (its node was lost; Ray declares a
        node dead some seconds after its actors) is an `Unplaceable` error, not a long wait."""
        refs, deadline = [h.ping.remote() for h in self.handles], time.monotonic() + self.start_timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                return outcomes(refs, self.names, what, max(0.0, min(poll_s, left)))
            except NoAnswer as exc:
                if not live_node_offers(self.resources):
                    raise Unplaceable(f"{what}: no live node offers what a rollout worker asks for (rollout.resources "
                                      f"{self.resources}): its node was lost. Add a node that offers them (`ray "
                                      "status` lists what each node has), or change rollout.resources") from None
                if left <= poll_s:  # the message names the whole bound, not the last slice of it
                    raise NoAnswer(f"{str(exc).rsplit(' within ', 1)[0]} within {self.start_timeout_s:.0f}s") from None

    def attach(self, learners: ActorGroup, backend: str, sync: SyncConfig, dtype: str,
               heal_from_last_push: bool = False) -> None:
        """Join the learner in a weight-sync group; from here on the pool keeps the group whole.
        `heal_from_last_push` (asynchronous rollouts, where the learner may have trained past
        the engines' version when a worker is replaced): a new worker gets the learner's last
        push again, not its current weights."""
        self.learners, self.backend, self.sync_cfg, self.dtype = learners, backend, sync, dtype
        self.heal_from_last_push = heal_from_last_push
        self.ready("starting vLLM engines")
        self.engine_keys = self.first("weight_keys", what="listing the engine's weights",
                                      timeout_s=self.start_timeout_s)
        self.regroup("joining the weight-sync group")

    def regroup(self, what: str) -> None:
        """A new sync group (new rendezvous, new world size) of learner rank 0 and every worker."""
        while True:
            self.ready(what)
            if self.learners is None:  # sampling only (make-pairs): no weights to sync
                return
            self.world_size, died = init_weight_sync(self.learners, self, self.backend, self.sync_cfg,
                                                     self.start_timeout_s)
            if not died:
                return
            self._replace(died, what)

    def rejoin(self, what: str) -> None:
        """After a change of membership: a new group, then the current weights to every engine
        (a new worker holds the model as loaded)."""
        self.regroup(what)
        if self.version:
            self.push(self.version, what, again=self.heal_from_last_push)

    def push(self, version: int, what: str = "weight sync", again: bool = False) -> dict:
        """The learner's weights to every engine as `version`, verified there (`again`: the
        learner's last push, sent once more). A worker that dies meanwhile is replaced and the
        sync is redone over a rebuilt group."""
        while True:
            stats, died = push_weights(self.learners, self, self.sync_cfg, self.dtype, version, self.engine_keys,
                                       again)
            if not died:
                self.version = version
                return stats
            self._replace(died, what)
            self.regroup(what)

    def scale(self, size: int) -> dict:
        """Grow or shrink to `size` workers between iterations (removed ones are idle then)."""
        import ray

        if size < 1:
            raise RunError(f"rollout workers: cannot scale to {size}; keep at least 1")
        before = len(self)
        while len(self) > size:
            handle = self.handles.pop()
            self.names.pop()
            ray.wait([handle.stop_watch.remote()], timeout=5.0)  # its engine's end is on purpose
            self._kill(handle)
        while len(self) < size:
            slot = max(self.slots) + 1
            self.slots.append(slot)
            self.restarts[slot] = 0
            self.handles.append(self.start_worker(slot))
            self.names.append(f"rollout-{slot}")
        self.slots = self.slots[:size]
        if size != before:
            self.rejoin(f"scaling rollout workers {before} -> {size}")
            self.events.append({"event": "scale", "from": before, "to": size, "time": time.time()})
        return {"rollout/workers": float(len(self)), "sync/world_size": float(self.world_size)}

    def move_off(self, nodes: set[str]) -> list[str]:
        """Between iterations: each worker on one of `nodes` (being drained: Ray places nothing
        new there) ended on purpose and started again in its slot on another node, before its
        node goes. Not a restart (nothing died); an event "move". The workers moved."""
        import ray

        moving = [pos for pos, node in enumerate(self.node_ids(self.start_timeout_s)) if node in nodes] if nodes else []
        if not moving:
            return []
        for pos in moving:
            ray.wait([self.handles[pos].stop_watch.remote()], timeout=5.0)  # its engine's end is on purpose
            self._kill(self.handles[pos])
            self.handles[pos] = self.start_worker(self.slots[pos])
        names = [self.names[pos] for pos in moving]
        self.rejoin(f"moving {', '.join(names)} off draining node(s)")
        self.events.append({"event": "move", "workers": names, "nodes": sorted(nodes), "time": time.time()})
        print(f"rlsys: {', '.join(names)} moved off draining node(s) {', '.join(n[:8] for n in sorted(nodes))}",
              flush=True)
        return names

    def _replace(self, positions: list[int], during: str) -> None:
        for pos in sorted(set(positions)):
            slot, name = self.slots[pos], self.names[pos]
            self.restarts[slot] += 1
            if self.restarts[slot] > self.max_restarts:
                raise RunError(f"{during}: {name} died {self.restarts[slot]} times, more than rollout.max_restarts="
                               f"{self.max_restarts}; see its log in the Ray dashboard (or /tmp/ray/session_latest/logs)")
            self._kill(self.handles[pos])
            self.handles[pos] = self.start_worker(slot)
            self.events.append({"event": "restart", "worker": name, "during": during, "time": time.time()})
            print(f"rlsys: {name} died during {during}; replaced (restart {self.restarts[slot]} of "
                  f"{self.max_restarts})", flush=True)

    @staticmethod
    def _kill(handle) -> None:
        import ray

        try:
            ray.kill(handle)
        except Exception:  # already gone
            pass

    def kill(self) -> None:
        """End every worker, each told first that its engine's end is on purpose."""
        import ray

        ray.wait([h.stop_watch.remote() for h in self.handles], num_returns=len(self.handles), timeout=5.0)
        super().kill()

    def take_events(self) -> list[dict]:
        events, self.events = self.events, []
        self.events_seen += events
        return events

    @property
    def total_restarts(self) -> int:
        return sum(self.restarts.values())

    # ----- work ---------------------------------------------------------------------
    def generate(self, items: list[PromptItem], temperatures: list[float], max_tokens: int, top_p: float,
                 what: str, timeout_s: float | None, seeds: list[int] | None = None,
                 top_k: int = 0) -> list[Sample]:
        """Contiguous chunks of `items`, one per worker; a chunk whose worker died is re-run by
        its replacement (with the same per-request seeds), so no prompt is lost or doubled."""
        n = len(self)
        chunks = [(i * len(items) // n, (i + 1) * len(items) // n) for i in range(n)]

        def call(i: int):
            a, b = chunks[i]
            return self.handles[i].generate.remote([it.prompt_ids for it in items[a:b]], temperatures, max_tokens,
                                                   top_p, a, seeds=seeds[a:b] if seeds is not None else None,
                                                   top_k=top_k)
        done = self._on_every_worker(call, what, timeout_s)
        return [s for i in range(n) for s in done[i]]

    def continue_turns(self, contexts: list[list[int]], max_tokens: list[int], temperatures: list[float],
                       seeds: list[int], stop: list[str], top_p: float, top_k: int, homes: list[int],
                       what: str, timeout_s: float | None) -> list[dict]:
        """One model turn of each episode (`RolloutWorker.continue_turns`), episode i on worker
        `homes[i] % len(self)` (the same worker turn after turn, whose prefix cache holds the
        episode's earlier ids); a worker that died is replaced and its share re-run."""
        n = len(self)
        share = [[j for j, h in enumerate(homes) if h % n == i] for i in range(n)]

        def call(i: int):
            idx = share[i]
            return self.handles[i].continue_turns.remote([contexts[j] for j in idx], [max_tokens[j] for j in idx],
                                                         [temperatures[j] for j in idx], [seeds[j] for j in idx],
                                                         stop, top_p, top_k)
        done = self._on_every_worker(call, what, timeout_s)
        out: list = [None] * len(contexts)
        for i in range(n):
            for j, turn in zip(share[i], done[i]):
                out[j] = turn
        return out

    def _on_every_worker(self, call: Callable[[int], object], what: str, timeout_s: float | None) -> dict[int, list]:
        """`call(i)` for every worker i; a worker that died is replaced, rejoins the sync group
        and takes its call again. Each worker's answer, by position."""
        done: dict[int, list] = {}
        while len(done) < len(self):
            todo = [i for i in range(len(self)) if i not in done]
            results = outcomes([call(i) for i in todo], [self.names[i] for i in todo], what, timeout_s)
            died = [i for i, r in zip(todo, results) if isinstance(r, Died)]
            done.update({i: r for i, r in zip(todo, results) if not isinstance(r, Died)})
            if died:
                self._replace(died, what)
                self.rejoin(what)
        return done

    def score_windows(self, contexts: list[list[int]], targets: list[list[int]],
                      timeout_s: float | None) -> list[list[float]]:
        """Log-probs of `targets` after `contexts` (held-out perplexity), split over the workers."""
        n = len(self)
        cuts = [(i * len(contexts) // n, (i + 1) * len(contexts) // n) for i in range(n)]
        parts = self.call_each("score_windows", [(contexts[a:b], targets[a:b]) for a, b in cuts], "eval", timeout_s)
        return [lps for part in parts for lps in part]


def live_node_offers(resources: dict[str, float]) -> bool:
    """Whether some node Ray still counts alive offers all of `resources` in total (an actor
    asking for them could be placed there once the node has room)."""
    import ray

    if not resources:
        return True
    return any(node["Alive"] and all(node["Resources"].get(k, 0.0) >= v for k, v in resources.items())
               for node in ray.nodes())
