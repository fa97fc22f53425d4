"""Ray fan-out in one place: each group holds named actor handles of one role and owns
how work is split among them and how their answers are gathered, so the loop calls one
method per phase. Every call is bounded and names the actor that failed or hung."""

from __future__ import annotations

from rlsys.distributed.calls import wait_all
from rlsys.observability.rank_stats import merge_rank_stats
from rlsys.records import PairItem, TrainItem


class ActorGroup:
    def __init__(self, handles: list, names: list[str], placement=None) -> None:
        self.handles, self.names = list(handles), list(names)
        self.placement = placement  # the placement group the actors were packed into, if any
        self.call_groups: dict[str, str] = {}  # method -> the actor's concurrency group that runs it

    def __len__(self) -> int:
        return len(self.handles)

    def call(self, method: str, *args, what: str, timeout_s: float | None) -> list:
        """`method(*args)` on every actor; their results in order."""
        refs = [self.method(h, method).remote(*args) for h in self.handles]
        return wait_all(refs, self.names, what, timeout_s)

    def call_each(self, method: str, args: list[tuple], what: str, timeout_s: float | None) -> list:
        """`method(*args[i])` on actor i."""
        refs = [self.method(h, method).remote(*a) for h, a in zip(self.handles, args, strict=True)]
        return wait_all(refs, self.names, what, timeout_s)

    def sharded(self, method: str, items: list, *args, what: str, timeout_s: float | None) -> list:
        """`method(items[r::k], *args)` on actor r of k: each actor's result, in rank order."""
        k = len(self)
        return self.call_each(method, [(items[r::k], *args) for r in range(k)], what, timeout_s)

    def first(self, method: str, *args, what: str, timeout_s: float | None, **kwargs):
        """`method(*args, **kwargs)` on the first actor only (rank 0, engine 0, the reward worker)."""
        return wait_all([self.method(self.handles[0], method).remote(*args, **kwargs)], self.names[:1], what,
                        timeout_s)[0]

    def method(self, handle, name: str):
        """`handle.name`, in the concurrency group this group's actors run it in (if any)."""
        call = getattr(handle, name)
        return call.options(concurrency_group=self.call_groups[name]) if name in self.call_groups else call

    def node_ids(self, timeout_s: float | None) -> list[str]:
        """The Ray node each member runs on, in order."""
        return wait_all([h.__ray_call__.remote(node_of_actor) for h in self.handles], self.names, "placement",
                        timeout_s)

    def ray_restarts(self) -> int:
        """How often Ray restarted this group's actors (the GCS actor table; works without a dashboard)."""
        from ray._private import state

        total = 0
        for handle in self.handles:
            try:
                total += int(state.actors(handle._actor_id.hex()).get("NumRestarts", 0))
            except Exception:  # an actor the table no longer holds
                pass
        return total

    def kill(self) -> None:
        import ray

        for handle in self.handles:
            ray.kill(handle)
        if self.placement is not None:  # else its CPUs stay reserved in a cluster that outlives the job
            ray.util.remove_placement_group(self.placement)
            self.placement = None


def interleave(per_rank: list[list]) -> list:
    """Undo `items[r::k]` sharding: element i came from rank i mod k."""
    k, out = len(per_rank), []
    for i in range(sum(len(p) for p in per_rank)):
        out.append(per_rank[i % k][i // k])
    return out


class LearnerGroup(ActorGroup):
    """Data-parallel learner ranks: sample i goes to rank i mod K; statistics of every rank
    are merged (summed, token-weighted or maxed as each metric needs)."""

    def score(self, samples: list, reference: bool, old: bool, timeout_s: float | None
              ) -> tuple[list[list[float]] | None, list[list[float]] | None, dict[str, float]]:
        """Old-policy (when `old`) and reference (when `reference`) log-probs of every sample, in order."""
        per_rank = self.sharded("score", samples, reference, old, what="log-probs", timeout_s=timeout_s)
        ref = interleave([p["ref"] for p in per_rank]) if reference else None
        old_lp = interleave([p["old"] for p in per_rank]) if old else None
        return old_lp, ref, merge_rank_stats([p["stats"] for p in per_rank])

    def train(self, items: list[TrainItem], lpt_coef: float, timeout_s: float | None) -> dict[str, float]:
        per_rank = self.sharded("train_on_batch", items, what="train", timeout_s=timeout_s)
        return merge_rank_stats(per_rank, lpt_coef)

    # Preference pairs (DPO): pair i goes to rank i mod K, as samples do.
    def reference_pairs(self, items: list[PairItem], timeout_s: float | None) -> None:
        """Fill in every pair's reference log-probs (once, before any update)."""
        refs = interleave(self.sharded("reference_pairs", items, what="reference log-probs", timeout_s=timeout_s))
        for item, (chosen, rejected) in zip(items, refs):
            item.ref_chosen, item.ref_rejected = chosen, rejected

    def train_pairs(self, items: list[PairItem], timeout_s: float | None) -> dict:
        """One optimiser step over `items` (one global mini-batch): the pairs' rows of every
        rank, and the step's grad norm, learning rate and slowest rank's seconds."""
        per_rank = self.sharded("train_pairs", items, what="train", timeout_s=timeout_s)
        norms = [n for p in per_rank for n in p["grad_norm"]]
        return {"pairs": [row for p in per_rank for row in p["pairs"]], "lr": per_rank[0]["lr"],
                "grad_norm": sum(norms) / len(norms) if norms else None, "seconds": max(p["seconds"] for p in per_rank)}

    def evaluate_pairs(self, items: list[PairItem], timeout_s: float | None) -> list[list[float]]:
        return interleave(self.sharded("evaluate_pairs", items, what="held-out pairs", timeout_s=timeout_s))


class CriticGroup(ActorGroup):
    """Data-parallel critic ranks, sharded as the learner's."""

    def values(self, samples: list, timeout_s: float | None) -> list[list[float]]:
        return interleave(self.sharded("values", samples, what="critic values", timeout_s=timeout_s))

    def train(self, items: list[TrainItem], timeout_s: float | None) -> dict[str, float]:
        return merge_rank_stats(self.sharded("train_on_batch", items, what="critic train", timeout_s=timeout_s))


class TeacherPool(ActorGroup):
    """Teacher services: requests cut into chunks of `request_size`, dealt round-robin; each
    service merges concurrent chunks into its own batches."""

    def score(self, requests: list, request_size: int, what: str, timeout_s: float | None,
              tag: str = "train") -> list[list[float]]:
        """`tag`: whose traffic (training or evaluation); each is counted apart by the services."""
        chunks = [requests[i : i + request_size] for i in range(0, len(requests), request_size)]
        k = len(self)
        refs = [self.handles[i % k].score.remote(c, tag) for i, c in enumerate(chunks)]
        names = [self.names[i % k] for i in range(len(chunks))]
        return [lp for part in wait_all(refs, names, what, timeout_s) for lp in part]

    def stats(self, seconds: float, timeout_s: float | None) -> dict[str, float]:
        """Throughput, batching and queue depth since the last call, over every service."""
        per_teacher = self.call("take_stats", what="teacher", timeout_s=timeout_s)
        total = {k: sum(s[k] for s in per_teacher) for k in per_teacher[0]}
        return {
            "teacher/sequences_per_s": total["teacher/sequences"] / max(seconds, 1e-9),
            "teacher/mean_batch": total["teacher/sequences"] / max(1.0, total["teacher/batches"]),
            "teacher/queue_depth_max": max(s["teacher/queue_depth_max"] for s in per_teacher),
        }


def node_of_actor(_actor) -> str:
    """Runs inside an actor (`__ray_call__`): the id of its node."""
    import ray

    return ray.get_runtime_context().get_node_id()
