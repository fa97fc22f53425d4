"""A training run from one config: check everything that needs no actor, start the roles,
hand them to the training mode's loop, write the summary. The order of the phases lives in
the loops (`rlsys.loops.rl`, `rlsys.loops.preference`); the roles in `rlsys.distributed.roles`."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rlsys.algorithms.registry import build_algorithm
from rlsys.config import Config, dump_config
from rlsys.data.prepared import Prepared
from rlsys.distributed.roles import Roles
from rlsys.errors import RunError, RunStopped, Unplaceable
from rlsys.loops import preference, rl
from rlsys.loops.context import RunContext
from rlsys.loops.stop_request import StopRequest
from rlsys.observability.console import LOGS, driver_output_held, error_excerpt, logs_line, quiet_driver
from rlsys.preparation import prepare, prepare_run_dir
from rlsys.training.checkpoint_store import read_state, resume_point, set_aside_newer, whole_checkpoints


def train(cfg: Config) -> dict:
    stop = StopRequest(cfg.run.stop_grace_s)
    stop.install()  # SIGTERM / SIGINT: stop resumably, from here on
    recoveries: list[dict] = []
    try:
        while True:
            try:
                return _train(cfg, stop, recoveries)
            except RunError as exc:
                cfg = recover_or_raise(cfg, exc, recoveries)  # the same run again from its newest checkpoint
    finally:
        stop.restore()


def recover_or_raise(cfg: Config, exc: RunError, recoveries: list[dict]) -> Config:
    """The config that continues the failed run from its newest whole checkpoint, with the
    recovery recorded; or `exc` again when `run.max_failures` is spent, no checkpoint exists,
    or the failure is one a restart cannot mend (a role no node can host)."""
    found = whole_checkpoints(Path(cfg.run.dir))
    if isinstance(exc, Unplaceable) or len(recoveries) >= cfg.run.max_failures or not found:
        raise exc
    recoveries.append({"after": str(exc).split("\n")[0], "from": str(found[-1]), "time": time.time()})
    print(f"rlsys: recovery {len(recoveries)} of run.max_failures={cfg.run.max_failures}: the run failed "
          f"({recoveries[-1]['after']}); restarting every role from {found[-1]}", flush=True)
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"resume": str(found[-1])})})


def _train(cfg: Config, stop: StopRequest, recoveries: list[dict] | None = None) -> dict:
    held = None if cfg.tracking.console_level == "verbose" else held_output_file()
    with driver_output_held(held):  # a first use converts the model: its bars and warnings go to the logs
        data = prepare(cfg)  # model paths, data rows, rewards, tokenizers: checked before any actor starts
        resume_from = resume_point(cfg)  # a checkpoint to continue from, checked against this config
        run_dir = prepare_run_dir(cfg, keep=resume_from is not None and Path(cfg.run.dir).resolve()
                                  in resume_from.resolve().parents)
    if resume_from is not None:
        set_aside_newer(run_dir, resume_from)  # checkpoints after it belong to an abandoned timeline
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    logs = quiet_logs(cfg, run_dir, held)  # third-party output to run_dir/logs, unless tracking.console_level=verbose
    print(header(cfg, run_dir, logs), flush=True)
    ctx = run_context(cfg, data, run_dir, resume_from)
    ctx.stop = stop
    try:
        start_roles(ctx)  # rollout engines, reward worker, learner (and critic) ranks, teachers, weight sync
        stop.install()  # again: starting Ray put its own handlers in place
        if recoveries and "roles_back_s" not in recoveries[-1]:
            recoveries[-1]["roles_back_s"] = round(time.time() - recoveries[-1]["time"], 1)
        loop = preference if cfg.algorithm.type == "dpo" else rl
        summary = loop.run(ctx)  # the training mode's loop: evaluate, iterate, checkpoint, save
        summary["recoveries"] = list(recoveries or [])
        write_json_atomic(run_dir / "summary.json", summary)
        plot_run(run_dir)
        if logs is not None:
            print(logs_line(logs), file=sys.stderr, flush=True)
        return summary
    except RunStopped as exc:
        found = whole_checkpoints(run_dir)
        hint = (f"the run continues from {found[-1]}: run the same command again (run.resume=auto)" if found
                else "no checkpoint was written: the same command starts the run afresh")
        raise RunStopped(f"{exc}\nrlsys: {hint}", exc.checkpointed) from exc
    except BaseException as exc:
        if logs is not None:  # the cause may be in a role's own output: show it, not only its file
            print("\n".join(error_excerpt(logs) + [logs_line(logs)]), file=sys.stderr, flush=True)
        if isinstance(exc, RunError) and (found := whole_checkpoints(run_dir)):
            raise RunError(f"{exc}\nrlsys: the run can continue from {found[-1]}: run the same command again "
                           "(run.resume=auto)") from exc
        raise
    finally:
        ctx.roles.stop()


def held_output_file() -> Path:
    fd, path = tempfile.mkstemp(".log", "rlsys-driver-")
    os.close(fd)
    return Path(path)


def quiet_logs(cfg: Config, run_dir: Path, held: Path | None) -> Path | None:
    """The run's `logs/` folder, the driver's third-party logging sent there (after the output
    `held` before the folder existed); None when the terminal gets everything
    (`tracking.console_level: verbose`)."""
    if cfg.tracking.console_level == "verbose":
        return None
    logs = run_dir.resolve() / LOGS
    quiet_driver(logs, held)
    return logs


def header(cfg: Config, run_dir: Path, logs: Path | None) -> str:
    """What runs and where it writes: the first line a run prints."""
    where = f"; logs of vLLM, Ray, DeepSpeed in {logs}" if logs else ""
    if cfg.algorithm.type == "dpo" and not cfg.algorithm.online:
        work = f"{cfg.algorithm.epochs} epoch(s) over the preference pairs"
    else:
        work = (f"{cfg.run.iterations} iterations of {cfg.rollout.prompts_per_iteration} prompts x "
                f"{cfg.rollout.group_size} samples")
    return f"rlsys: {cfg.algorithm.type} on {cfg.model.path} ({cfg.model.dtype}), {work}; run folder {run_dir.resolve()}{where}"


def run_context(cfg: Config, data: Prepared, run_dir: Path, resume_from: Path | None = None) -> RunContext:
    """The algorithm, the learning-rate schedules' length and the (not yet started) roles of a run."""
    algorithm = build_algorithm(cfg)
    schedule = run_schedule(cfg, len(data.pairs.train) if data.pairs else 0, algorithm.needs_critic, resume_from)
    return RunContext(cfg, Roles(cfg), data, algorithm, run_dir, resume_from, schedule)


def start_roles(ctx: RunContext) -> None:
    critic = (ctx.data.critic_path or ctx.data.model_path) if ctx.algorithm.needs_critic else None
    ctx.roles.start(ctx.data.model_path, critic, ctx.data.teacher_path, ctx.schedule)


def run_schedule(cfg: Config, offline_pairs: int, needs_critic: bool, resume_from: Path | None) -> dict[str, int]:
    """Optimiser steps the learning-rate schedules span (learner, critic): what the checkpoint
    a run resumes from saved, unless `run.schedule_iterations` is set."""
    saved = read_state(resume_from).get("schedule_steps") if resume_from else None
    steps = schedule_steps(cfg, offline_pairs, needs_critic)
    if saved and cfg.run.schedule_iterations is None:
        if saved != steps:
            print(f"rlsys: the learning-rate schedule keeps the length it was saved with ({saved} optimiser "
                  f"steps, not {steps}); set run.schedule_iterations to stretch it over the run", flush=True)
        return saved
    return steps


def schedule_steps(cfg: Config, offline_pairs: int, needs_critic: bool) -> dict[str, int]:
    """Optimiser steps over `run.schedule_iterations` (default `run.iterations`) iterations."""
    iterations = cfg.run.schedule_iterations or cfg.run.iterations
    if cfg.algorithm.type == "dpo":
        pairs = cfg.rollout.prompts_per_iteration * iterations if cfg.algorithm.online else offline_pairs
        return {"learner": cfg.algorithm.epochs * max(1, pairs // cfg.learner.mini_batch_size)}
    steps_per_iter = cfg.learner.epochs * (cfg.batch_size // cfg.learner.mini_batch_size)
    policy_iterations = iterations - (cfg.critic.warmup_iterations if needs_critic else 0)
    out = {"learner": steps_per_iter * max(1, policy_iterations)}
    if needs_critic:
        critic = cfg.critic_learner()
        out["critic"] = critic.epochs * (cfg.batch_size // critic.mini_batch_size) * iterations
    return out


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.rename(path)


def plot_run(run_dir: Path) -> None:
    """plots/curves.png of the finished run (`rlsys plot` draws it again, or with other runs)."""
    from rlsys.observability.plots import plot_runs

    try:
        plot_runs([run_dir])
    except Exception as exc:  # a picture never fails a run that trained and saved
        print(f"rlsys: could not draw {run_dir}/plots/curves.png: {exc}", file=sys.stderr)
