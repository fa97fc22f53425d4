"""Run checkpoints on disk: where they live, when one is whole, which to keep, and from
which one (if any) a run continues.

A checkpoint is a folder `checkpoints/iter-NNNNNN` in the run folder holding every
learner and critic rank's DeepSpeed state (`learner/`, `critic/`), the driver's state
(`state.json`: iteration, weight version, prompt sampler, evaluations, tracker ids,
optimiser digests) and the config it ran with. It is written under `.partial` and renamed
when complete, with `state.json` written last: a folder without `.partial` that has a
`state.json` is whole, anything else is never resumed from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from rlsys.distributed.calls import RunError

STATE = "state.json"
PREFIX = "iter-"

# Fields a resumed run may change (with a printed note): they change neither the data
# order nor the batch shape nor the training maths.
SAFE_CHANGES = (
    "run.iterations", "run.eval_every", "run.checkpoint_every", "run.keep_checkpoints", "run.best_by",
    "run.best_mode", "run.phase_timeout_s", "run.phase_timeouts", "run.resume", "run.overwrite", "run.dir",
    "run.resume_check_prompts", "tracking.", "ray.", "sync.timeout_s", "sync.per_bucket_timeout_s",
    "sync.bucket_mb", "sync.probes", "sync.backend", "rollout.num_workers", "rollout.max_restarts",
    "rollout.num_cpus", "rollout.num_gpus", "rollout.kv_cache_gib", "rollout.enforce_eager",
    "learner.num_cpus", "learner.torch_threads", "teacher.num_workers", "teacher.num_cpus", "teacher.num_gpus",
    "teacher.max_restarts", "eval.",
)
DATA_ORDER = ("data.", "run.seed", "rollout.prompts_per_iteration")
BATCH_SHAPE = ("rollout.group_size", "learner.mini_batch_size", "learner.micro_batch_size", "learner.num_ranks",
               "learner.epochs", "learner.zero_stage", "critic.num_ranks", "critic.mini_batch_size",
               "critic.micro_batch_size", "rollout.max_new_tokens")


def checkpoint_dir(run_dir: Path, iteration: int) -> Path:
    return run_dir / "checkpoints" / f"{PREFIX}{iteration:06d}"


def is_whole(path: Path) -> bool:
    return path.is_dir() and not path.name.endswith(".partial") and (path / STATE).is_file()


def whole_checkpoints(run_dir: Path) -> list[Path]:
    """The run folder's whole checkpoints, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and is_whole(p)]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def read_state(path: Path) -> dict:
    return json.loads((path / STATE).read_text())


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and key not in ("phase_timeouts", "task_kwargs", "kwargs"):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(saved: dict, now: dict) -> tuple[list[str], list[str]]:
    """(refused, noted): the changed fields, each `name: old -> new (why)`."""
    a, b = flatten(saved), flatten(now)
    refused, noted = [], []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        line = f"{key}: {a.get(key)!r} -> {b.get(key)!r}"
        if key.startswith(SAFE_CHANGES):
            noted.append(line)
        elif key.startswith(DATA_ORDER):
            refused.append(f"{line} (would change which prompts come next)")
        elif key.startswith(BATCH_SHAPE):
            refused.append(f"{line} (would change the batch shape the saved optimiser state was built for)")
        else:
            refused.append(f"{line} (would change the training the checkpoint continues)")
    return refused, noted


def resume_point(cfg) -> Path | None:
    """The checkpoint this run continues from, or None; refuses what cannot be resumed."""
    run_dir = Path(cfg.run.dir)
    if cfg.run.resume == "never":
        return None
    if cfg.run.resume == "auto":
        found = whole_checkpoints(run_dir)
        if not found:
            return None
        if cfg.run.overwrite:
            raise RunError(f"run folder {run_dir} has checkpoints (newest: {found[-1].name}) and run.overwrite=true: "
                           "set run.resume=never to start afresh over them, or run.overwrite=false to continue")
        point = found[-1]
    else:
        given = Path(cfg.run.resume)
        point = given if is_whole(given) else (whole_checkpoints(given)[-1:] or [None])[0]
        if point is None:
            raise RunError(f"run.resume: {given} is neither a whole checkpoint (a folder with {STATE}) nor a run "
                           "folder that holds one")
    check_resumable(point, cfg)
    return point


def check_resumable(point: Path, cfg) -> None:
    saved = yaml.safe_load((point / "config.yaml").read_text())
    refused, noted = config_changes(saved, cfg.model_dump(mode="json"))
    if refused:
        raise RunError(f"cannot resume from {point} with this config: " + "; ".join(refused)
                       + ". Put those back as they were, or start a new run (run.resume=never).")
    if noted:
        print(f"rlsys: resuming from {point} with changed settings: " + "; ".join(noted))


class CheckpointStore:
    """Writes whole checkpoints and prunes all but the newest `keep` (and the best)."""

    def __init__(self, run_dir: Path, keep: int, best_by: str | None, best_mode: str) -> None:
        self.run_dir, self.keep, self.best_by, self.best_mode = run_dir, keep, best_by, best_mode
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        for stale in (run_dir / "checkpoints").glob("*.partial"):  # a write that a crash cut short
            shutil.rmtree(stale)

    def begin(self, iteration: int) -> Path:
        tmp = checkpoint_dir(self.run_dir, iteration).with_suffix(".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, tmp: Path, state: dict, config_text: str) -> Path:
        (tmp / "config.yaml").write_text(config_text)
        (tmp / STATE).write_text(json.dumps(state, indent=2))
        final = tmp.with_suffix("")
        if final.exists():  # the same iteration again (a resumed run redoing it)
            shutil.rmtree(final)
        tmp.rename(final)
        self.prune()
        return final

    def best(self) -> Path | None:
        if self.best_by is None:
            return None
        scored = [(read_state(p)["eval"].get(self.best_by.removeprefix("eval/")), p)
                  for p in whole_checkpoints(self.run_dir)]
        scored = [(v, p) for v, p in scored if v is not None]
        if not scored:
            return None
        pick = max if self.best_mode == "max" else min
        return pick(scored, key=lambda vp: vp[0])[1]

    def prune(self) -> None:
        whole = whole_checkpoints(self.run_dir)
        keep = set(whole[-self.keep:]) | ({b} if (b := self.best()) else set())
        for path in whole:
            if path not in keep:
                shutil.rmtree(path)
