"""Synchronous on-policy RL (GRPO, PPO, distillation rewards): every iteration samples with
the current weights, trains on those samples, and pushes the new weights to every engine
before the next one samples. The algorithm object decides what the samples become."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlsys.data.samplers import PromptSampler, request_seed
from rlsys.loops.checkpointing import RunCheckpoints
from rlsys.observability.iteration_metrics import PhaseTimer, iteration_metrics, shown_samples
from rlsys.observability.progress import ProgressDisplay
from rlsys.observability.trackers import SampleLog, open_trackers
from rlsys.types import ScoredBatch
from rlsys.workers.rollout import group_temperatures


def iteration(ctl, sampler: PromptSampler, it: int) -> tuple[dict[str, float], list[dict], list[int]]:
    cfg, algo, timer = ctl.cfg, ctl.algorithm, PhaseTimer()
    teacher, distill, values, critic, stats, sync = None, {}, None, {}, {}, {}
    indices = sampler.next(cfg.rollout.prompts_per_iteration)
    items = [ctl.data.train[i] for i in indices]
    temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
    with timer("generation"):  # a group of samples per prompt from the rollout pool, seeded per prompt
        samples = ctl.generate(items, temps, cfg.rollout.max_new_tokens,
                               seeds=[request_seed(cfg.run.seed, it, i) for i in indices])
    ctl.check_on_policy(samples)
    if ctl.teachers:
        with timer("teacher"):  # the teacher's per-token log-probs of every sample
            teacher = ctl.teacher_scores(items, samples, by_token=ctl.data.teacher_same_vocab)
        distill = ctl.distill_metrics(teacher, samples, timer.seconds["time/teacher"])
    with timer("reward"):  # rule, model, teacher and user rewards of every sample
        rewards, parts = ctl.rewards(items, samples, teacher)
    old, ref, scored = ctl.old_and_reference(samples, timer)
    if ctl.critics:
        with timer("critic_values"):  # the critic's value of every completion token
            values = ctl.critics.values(samples, cfg.run.timeout("train"))
    # the algorithm turns the scored samples into training items (advantages, returns)
    batch = ScoredBatch(samples, rewards, cfg.rollout.group_size, teacher, old, ref, values)
    train_items, algo_metrics = algo.train_items(batch)
    if ctl.critics:  # clipped value-loss updates on every critic rank
        critic = ctl.critics.train(train_items, cfg.run.timeout("train"))
    if not ctl.policy_frozen(it):
        # policy updates on every learner rank, then the new weights to every engine, verified there
        stats = ctl.learners.train(train_items, cfg.lpt.coef, cfg.run.timeout("train"))
        sync = ctl.sync()
    metrics = iteration_metrics(samples, rewards, parts, cfg.rollout.group_size, timer.seconds,
                                distill, scored, algo_metrics, critic, stats, sync)
    return metrics, shown_samples(items, samples, rewards, 2 * cfg.rollout.group_size, indices), indices


def run(ctl, run_dir: Path) -> dict:
    """Evaluate, iterate (checkpointing, taking scale requests), evaluate, save: the summary."""
    cfg, last = ctl.cfg, ctl.cfg.run.iterations
    started = time.perf_counter()
    sampler = PromptSampler(len(ctl.data.train), cfg.run.seed)
    checkpoints = RunCheckpoints(ctl, run_dir, sampler)
    first = checkpoints.restore()  # a resumed run: the checkpoint's state and weights on every engine
    resumed = checkpoints.state
    trackers = open_trackers(cfg, run_dir, resumed.get("trackers", {}))
    logs = {name: SampleLog(run_dir / f"{name}.jsonl") for name in ("samples", "data_order", "eval_samples")}
    with ProgressDisplay(last, enabled=cfg.tracking.console, start=first - 1) as progress:
        if resumed:
            eval_before = resumed["eval_before"]
            logs["eval_samples"].log(first - 1, [{"when": "resumed", **r}
                                                 for r in ctl.greedy_check(cfg.run.resume_check_prompts)])
        else:
            progress.phase("eval (before)")
            eval_before = ctl.evaluate()
            logs["eval_samples"].log(0, [{"when": "eval", **r} for r in ctl.eval_rows])
            progress.note(f"held-out before: {json.dumps(eval_before)}")
        evaluation = {}
        for it in range(first, last + 1):
            t0 = time.perf_counter()
            requests = ctl.take_requests()  # rollout workers added or removed between iterations
            metrics, shown, indices = iteration(ctl, sampler, it)
            metrics.update(requests)
            logs["samples"].log(it, shown)
            logs["data_order"].log(it, [{"data_index": indices}])
            evaluation = {}
            if it == last or (cfg.run.eval_every and it % cfg.run.eval_every == 0):
                progress.phase("eval" if it != last else "eval (after)")
                evaluation = ctl.evaluate()
                logs["eval_samples"].log(it, [{"when": "eval", **r} for r in ctl.eval_rows])
                metrics.update({f"eval/{k}": v for k, v in evaluation.items()})
            metrics.update(ctl.restart_metrics())
            metrics["time/iteration"] = time.perf_counter() - t0
            trackers.log(it, metrics)
            if checkpoints.due(it, last):  # every rank's state, the sampler and the version, atomically
                checkpoints.save(it, evaluation, eval_before, ctl.restarts(resumed), trackers.ids())
            progress.advance(metrics)
        eval_after = evaluation if first <= last else resumed.get("eval", {})
        progress.note(f"held-out after: {json.dumps(eval_after)}")
    trackers.close()
    for log in logs.values():
        log.close()
    saved = ctl.save(run_dir)
    return {"eval_before": eval_before, "eval_after": eval_after, "iterations": last,
            "wall_seconds": time.perf_counter() - started, "final_weight_version": ctl.version,
            "restarts": ctl.restarts(resumed), "restarts_by_role": ctl.restarts_by_role(),
            "restart_events": ctl.rollout.events_seen,
            "resumed_from": str(checkpoints.resumed_from) if checkpoints.resumed_from else None,
            "checkpoints": checkpoints.listing(), "best_checkpoint": checkpoints.best(), **saved}
