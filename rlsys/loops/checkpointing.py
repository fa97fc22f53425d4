"""The loop's side of checkpoints: continue a run from one (weights pushed to every engine
before any sample is drawn), and write them on schedule with everything the run needs to
go on exactly: the iteration, the weight version, the prompt sampler, the evaluations so
far, the tracker ids, and each rank's optimiser digest."""

from __future__ import annotations

import time
from pathlib import Path

from rlsys.training.checkpoint_store import CheckpointStore, read_state, whole_checkpoints
from rlsys.config import dump_config
from rlsys.data.samplers import PromptSampler
from rlsys.loops.context import RunContext
from rlsys.observability.jsonl_logs import keep_log_lines

# Per-iteration logs of the run folder: a resumed run cuts them back to its checkpoint.
ITERATION_LOGS = ("metrics.jsonl", "samples.jsonl", "data_order.jsonl", "eval_samples.jsonl")


def truncate_log(path: Path, last_iteration: int) -> None:
    """Keep the rows of iterations up to `last_iteration` (those after it are redone)."""
    if path.exists():
        keep_log_lines(path, lambda row: row.get("iteration", 0) <= last_iteration)


class RunCheckpoints:
    def __init__(self, ctx: RunContext, sampler: PromptSampler) -> None:
        cfg = ctx.cfg
        self.ctx, self.run_dir, self.sampler = ctx, ctx.run_dir, sampler
        self.every = cfg.run.checkpoint_every
        self.store = self.open_store() if self.every else None  # opened on a stop's checkpoint otherwise
        self.resumed_from = ctx.resume_from
        self.state: dict = {}

    def open_store(self) -> CheckpointStore:
        run = self.ctx.cfg.run
        return CheckpointStore(self.run_dir, run.keep_checkpoints, run.best_by, run.best_mode)

    def restore(self) -> int:
        """Load the checkpoint this run continues from (if any); the first iteration to run."""
        if self.resumed_from is None:
            return 1
        point, roles = self.resumed_from, self.ctx.roles
        self.state = read_state(point)
        roles.load_checkpoint(point, self.state["digests"])
        self.sampler.load_state_dict(self.state["sampler"])
        roles.version = self.state["version"]
        workers = self.state.get("rollout_workers", len(roles.rollout))
        if workers != len(roles.rollout):  # a scaled run resumes at the size it had
            roles.scale_rollout(workers)
        if roles.autoscaler is not None:
            roles.autoscaler.load_state_dict(self.state.get("autoscale", {}))
        roles.sync(version=self.state["version"])  # every engine holds the checkpoint's weights before sampling
        for name in ITERATION_LOGS:
            truncate_log(self.run_dir / name, self.state["iteration"])
        print(f"rlsys: resumed from {point} (iteration {self.state['iteration']}, weights version {roles.version})",
              flush=True)
        return self.state["iteration"] + 1

    def due(self, it: int, last: int) -> bool:
        return bool(self.every) and (it % self.every == 0 or it == last)

    def save(self, it: int, evaluation: dict[str, float], eval_before: dict, restarts: int,
             tracker_ids: dict, sampler_state: dict | None = None) -> Path:
        """`sampler_state`: where the next untrained batch is drawn from (the sampler itself
        may be ahead of the learner with asynchronous rollouts)."""
        roles, started = self.ctx.roles, time.perf_counter()
        self.store = self.store or self.open_store()
        tmp = self.store.begin(it)
        state = {
            "iteration": it, "version": roles.version, "sampler": sampler_state or self.sampler.state_dict(),
            "eval": evaluation, "eval_before": eval_before, "restarts": restarts, "trackers": tracker_ids,
            "digests": roles.save_checkpoint(tmp),
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
            "schedule_steps": self.ctx.schedule,
            "rollout_workers": len(roles.rollout),
            "autoscale": roles.autoscaler.state_dict() if roles.autoscaler is not None else {},
        }
        path = self.store.commit(tmp, state, dump_config(self.ctx.cfg))
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"rlsys: checkpoint {path.name}: {size / 2**20:.1f} MiB in {time.perf_counter() - started:.1f} s",
              flush=True)
        return path

    def best(self) -> str | None:
        best = self.store.best() if self.store else None
        return str(best) if best else None

    def listing(self) -> list[str]:
        return [str(p) for p in whole_checkpoints(self.run_dir)]
