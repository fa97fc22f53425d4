"""Run checkpoints on disk: where they live, when one is whole, which to keep, and from
which one (if any) a run continues.

A checkpoint is a folder `checkpoints/iter-NNNNNN` in the run folder holding every
learner and critic rank's DeepSpeed state (`learner/`, `critic/`), the driver's state
(`state.json`: iteration, weight version, prompt sampler, evaluations, tracker ids,
optimiser digests) and the config it ran with. It is written under `.partial` and renamed
when complete, with `state.json` written last; every file is fsynced before the rename.
`state.json` lists every other file with its size, so a folder is whole only when its
`state.json` reads and every file it lists is there at that size: a crash, a full disk or a
lost shard leaves a damaged folder, which is never resumed from (`resume=auto` falls back to
the newest whole one, with a note). Checkpoints are ordered by write order (`written`), not
by iteration: a run resumed from an older checkpoint sets the newer ones aside first.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import yaml

from rlsys.errors import RunError

STATE = "state.json"
PREFIX = "iter-"

# Fields a resumed run may change (with a printed note): they change neither the data
# order nor the batch shape nor the training maths (the learning-rate schedule keeps the
# length saved in the checkpoint unless `run.schedule_iterations` asks for another).
SAFE_CHANGES = (
    "run.iterations", "run.schedule_iterations", "run.eval_every", "run.checkpoint_every", "run.keep_checkpoints", "run.best_by",
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


def checked_state(path: Path) -> tuple[dict | None, str | None]:
    """(state, None) for a whole checkpoint; (None, why it cannot be resumed from) otherwise."""
    if not path.is_dir() or path.name.endswith(".partial"):
        return None, "not a finished checkpoint folder"
    try:
        state = read_state(path)
    except FileNotFoundError:
        return None, f"it has no {STATE}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"its {STATE} does not read ({type(exc).__name__}: {exc})"
    if not isinstance(state, dict) or not {"iteration", "version", "sampler", "digests"} <= set(state):
        return None, f"its {STATE} lacks the run's state (iteration, version, sampler, digests)"
    for name, size in state.get("files", {}).items():
        f = path / name
        if not f.is_file():
            return None, f"{name} is missing"
        if f.stat().st_size != size:
            return None, f"{name} has {f.stat().st_size} bytes where {size} were written"
    return state, None


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from, or None when it is whole."""
    return checked_state(path)[1]


def is_whole(path: Path) -> bool:
    return checkpoint_problem(path) is None


def iteration_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """Every finished `iter-*` folder of the run, whole or damaged, by iteration."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
             and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=iteration_of)


def whole_checkpoints(run_dir: Path) -> list[Path]:
    """The run folder's whole checkpoints, oldest first (in the order they were written)."""
    whole = []
    for p in checkpoint_folders(run_dir):
        state, problem = checked_state(p)
        if problem is None:
            whole.append((state.get("written", 0), iteration_of(p), p))
    return [p for *_, p in sorted(whole)]


def read_state(path: Path) -> dict:
    return json.loads((path / STATE).read_text())


def set_aside_newer(run_dir: Path, point: Path) -> list[Path]:
    """Move the run's checkpoints of iterations after `point` (an abandoned timeline, or damaged
    ones) into `checkpoints/set-aside-<time>/`, so that pruning, `best_by` and a later
    `resume=auto` see only the timeline that continues from `point`. Returns where they went."""
    if point.parent.resolve() != (run_dir / "checkpoints").resolve():
        return []
    newer = [p for p in checkpoint_folders(run_dir) if iteration_of(p) > iteration_of(point)]
    if not newer:
        return []
    aside = run_dir / "checkpoints" / f"set-aside-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir()
    moved = []
    for p in newer:
        p.rename(aside / p.name)
        moved.append(aside / p.name)
    print(f"rlsys: resuming from {point.name}: set aside the newer checkpoints "
          f"{', '.join(p.name for p in newer)} in {aside} (they belong to another timeline)", flush=True)
    return moved


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
            note_damaged(run_dir, None)
            return None
        if cfg.run.overwrite:
            raise RunError(f"run folder {run_dir} has checkpoints (newest: {found[-1].name}) and run.overwrite=true: "
                           "set run.resume=never to start afresh over them, or run.overwrite=false to continue")
        point = found[-1]
        note_damaged(run_dir, point)
    else:
        given = Path(cfg.run.resume)
        if given.name.startswith(PREFIX) and given.is_dir() and (problem := checkpoint_problem(given)):
            raise RunError(f"run.resume: {given} is damaged ({problem}); give an older checkpoint, or the run "
                           "folder to take its newest whole one")
        point = given if is_whole(given) else (whole_checkpoints(given)[-1:] or [None])[0]
        if point is None:
            raise RunError(f"run.resume: {given} is neither a whole checkpoint (a folder with {STATE}) nor a run "
                           "folder that holds one")
    check_resumable(point, cfg)
    return point


def note_damaged(run_dir: Path, point: Path | None) -> None:
    """Say which damaged checkpoints newer than `point` a resume passes over, and why."""
    after = -1 if point is None else iteration_of(point)
    for p in checkpoint_folders(run_dir):
        if iteration_of(p) > after and (problem := checkpoint_problem(p)):
            print(f"rlsys: checkpoint {p.name} is damaged ({problem}); "
                  + (f"resuming from {point.name}, the newest whole one" if point else "no whole checkpoint is left: "
                     "the run starts afresh"), flush=True)


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
        files = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
        written = max((read_state(p).get("written", 0) for p in whole_checkpoints(self.run_dir)), default=0) + 1
        (tmp / STATE).write_text(json.dumps({**state, "written": written, "files": files}, indent=2))
        fsync_tree(tmp)  # the data is on disk before the name says the checkpoint is whole
        final = tmp.with_suffix("")
        if final.exists():  # the same iteration again (a resumed run redoing it)
            shutil.rmtree(final)
        tmp.rename(final)
        fsync_path(final.parent)
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


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file under `root`, then every folder (deepest first), flushed to disk."""
    folders = [root]
    for p in root.rglob("*"):
        if p.is_file():
            fsync_path(p)
        elif p.is_dir():
            folders.append(p)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_path(folder)
