"""The RL loop (GRPO, PPO, distillation rewards), synchronous or asynchronous: each iteration
takes a batch of scored samples, trains on it and pushes the new weights to every engine.
Synchronous by default
(every batch sampled with the current weights); with `rollout.max_staleness: k > 0` the
batches are generated ahead, at most k weight versions behind (rlsys.loops.rollout_ahead).
The algorithm object decides what the samples become."""

from __future__ import annotations

import time

from rlsys.data.samplers import PromptSampler
from rlsys.distributed.roles import Roles
from rlsys.errors import RunStopped, Unplaceable
from rlsys.loops.checkpointing import RunCheckpoints
from rlsys.loops.context import RunContext
from rlsys.loops.evaluation import HeldOutEvaluation
from rlsys.loops.rl_phases import TrainedButUnsynced, learn
from rlsys.loops.rollout_ahead import batch_source
from rlsys.observability.progress import ProgressDisplay, format_results
from rlsys.observability.trackers import SampleLog, open_trackers


def run(ctx: RunContext) -> dict:
    """Evaluate, iterate (checkpointing, taking scale requests), evaluate, save: the summary."""
    cfg, roles, run_dir, last = ctx.cfg, ctx.roles, ctx.run_dir, ctx.cfg.run.iterations
    started = time.perf_counter()
    sampler = PromptSampler(len(ctx.data.train), cfg.run.seed)
    held_out = HeldOutEvaluation(cfg, roles, ctx.data)
    checkpoints = RunCheckpoints(ctx, sampler)
    first = checkpoints.restore()  # a resumed run: the checkpoint's state and weights on every engine
    resumed = checkpoints.state
    trackers = open_trackers(cfg, run_dir, resumed.get("trackers", {}))
    logs = {name: SampleLog(run_dir / f"{name}.jsonl") for name in ("samples", "data_order", "eval_samples")}
    with ProgressDisplay(last, enabled=cfg.tracking.console, start=first - 1) as progress:
        ctx.announce = progress.phase
        if resumed:
            eval_before = resumed["eval_before"]
            logs["eval_samples"].log(first - 1, [{"when": "resumed", **r}
                                                 for r in held_out.greedy_check(cfg.run.resume_check_prompts)])
        else:
            progress.phase("eval (before)")
            eval_before = held_out.evaluate()
            logs["eval_samples"].log(0, [{"when": "eval", **r} for r in held_out.rows])
            progress.note(f"held-out before: {format_results(eval_before)}")
        evaluation, batches, loop_started = {}, batch_source(ctx, sampler), time.perf_counter()
        batches.start(first, last)
        try:
            for it in range(first, last + 1):
                if ctx.stop_requested:  # asked during start-up or the first evaluation: nothing new to save
                    raise RunStopped(f"stopped by {ctx.stop.signal} before iteration {it}")
                t0 = time.perf_counter()
                with batches.engines:
                    requests = roles.take_requests()  # rollout workers added or removed between iterations
                waited, drawn_from = time.perf_counter(), batches.sampler_state(it - 1)
                try:
                    batch = batches.get(it)  # generated now, or ahead by the producer thread
                except Unplaceable:  # a lost node took the last place a role could run: keep what is done
                    if it > first and not checkpoints.due(it - 1, last):
                        checkpoints.save(it - 1, evaluation, eval_before, restarts(roles, resumed), trackers.ids(),
                                         drawn_from)
                    raise
                waited = time.perf_counter() - waited
                unsynced = None
                try:
                    metrics, shown = learn(ctx, batch, it, batches.engines)
                except TrainedButUnsynced as exc:  # logged and checkpointed below, then the run stops
                    metrics, shown, unsynced = exc.metrics, exc.shown, exc
                metrics["time/batch_wait"] = waited
                batches.trained(it)
                metrics.update(requests)
                logs["samples"].log(it, shown)
                logs["data_order"].log(it, [{"data_index": batch.indices}])
                evaluation = {}
                if it == last or (cfg.run.eval_every and it % cfg.run.eval_every == 0):
                    progress.phase("eval" if it != last else "eval (after)")
                    with batches.engines:
                        evaluation = held_out.evaluate()
                    logs["eval_samples"].log(it, [{"when": "eval", **r} for r in held_out.rows])
                    metrics.update({f"eval/{k}": v for k, v in evaluation.items()})
                with batches.engines:
                    metrics.update(roles.restart_metrics())
                metrics["time/iteration"] = time.perf_counter() - t0
                metrics["time/run"] = time.perf_counter() - loop_started
                roles.observe_iteration(it, metrics)  # the autoscaler's measurements
                trackers.log(it, metrics)
                # SIGTERM or SIGINT, or an engine no node can host: this iteration is checkpointed, then the run stops
                stopping = ctx.stop_requested or unsynced is not None
                if checkpoints.due(it, last) or stopping:  # every rank's state, the sampler and the version, atomically
                    point = checkpoints.save(it, evaluation, eval_before, restarts(roles, resumed), trackers.ids(),
                                             batches.sampler_state(it))
                progress.advance(metrics)
                if unsynced is not None:
                    raise Unplaceable(str(unsynced))
                if stopping:
                    raise RunStopped(f"stopped by {ctx.stop.signal} after iteration {it} (checkpoint {point.name})")
        finally:
            batches.close()
        eval_after = evaluation if first <= last else resumed.get("eval", {})
        progress.note(f"held-out after: {format_results(eval_after)}")
    trackers.close()
    for log in logs.values():
        log.close()
    saved = roles.save_models(run_dir)
    return {"eval_before": eval_before, "eval_after": eval_after, "iterations": last,
            "wall_seconds": time.perf_counter() - started, "final_weight_version": roles.version,
            "restarts": restarts(roles, resumed), "restarts_by_role": roles.restarts_by_role(),
            "restart_events": roles.restart_events, "placement": roles.placement,
            "scale_events": roles.scale_events,
            "resumed_from": str(checkpoints.resumed_from) if checkpoints.resumed_from else None,
            "checkpoints": checkpoints.listing(), "best_checkpoint": checkpoints.best(), **saved}


def restarts(roles: Roles, resumed: dict) -> int:
    """Restarts over the whole run, the segments before a resume included."""
    return resumed.get("restarts", 0) + sum(roles.restarts_by_role().values())
