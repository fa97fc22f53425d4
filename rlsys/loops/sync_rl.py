"""Synchronous on-policy RL (GRPO, PPO, distillation rewards): every iteration samples with
the current weights, trains on those samples, and pushes the new weights to every engine
before the next one samples. The algorithm object decides what the samples become."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlsys.data.samplers import PromptSampler
from rlsys.observability.iteration_metrics import PhaseTimer, iteration_metrics, shown_samples
from rlsys.observability.progress import ProgressDisplay
from rlsys.observability.trackers import SampleLog, open_trackers
from rlsys.types import ScoredBatch
from rlsys.workers.rollout import group_temperatures


def iteration(ctl, sampler: PromptSampler, it: int) -> tuple[dict[str, float], list[dict]]:
    cfg, algo, timer = ctl.cfg, ctl.algorithm, PhaseTimer()
    teacher, distill, values, critic, stats, sync = None, {}, None, {}, {}, {}
    items = [ctl.data.train[i] for i in sampler.next(cfg.rollout.prompts_per_iteration)]
    temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
    with timer("generation"):  # a group of samples per prompt from the rollout pool
        samples = ctl.generate(items, temps, cfg.rollout.max_new_tokens)
    ctl.check_on_policy(samples)
    if ctl.teachers:
        with timer("teacher"):  # the teacher's per-token log-probs of every sample
            teacher = ctl.teacher_scores(items, samples, by_token=ctl.data.teacher_same_vocab)
        distill = ctl.distill_metrics(teacher, samples, timer.seconds["time/teacher"])
    with timer("reward"):  # rule, model, teacher and user rewards of every sample
        rewards, parts = ctl.rewards(items, samples, teacher)
    with timer("logprobs"):  # old-policy (and reference) log-probs on every learner rank
        old, ref, scored = ctl.learners.score(samples, algo.needs_reference, cfg.run.timeout("train"))
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
    return metrics, shown_samples(items, samples, rewards, 2 * cfg.rollout.group_size)


def run(ctl, run_dir: Path) -> dict:
    """Evaluate, iterate, evaluate, save: the summary of the run."""
    cfg = ctl.cfg
    started = time.perf_counter()
    trackers = open_trackers(cfg, run_dir)
    sample_log = SampleLog(run_dir / "samples.jsonl")
    sampler = PromptSampler(len(ctl.data.train), cfg.run.seed)
    with ProgressDisplay(cfg.run.iterations, enabled=cfg.tracking.console) as progress:
        progress.phase("eval (before)")
        eval_before = ctl.evaluate()
        progress.note(f"held-out before: {json.dumps(eval_before)}")
        for it in range(1, cfg.run.iterations + 1):
            t0 = time.perf_counter()
            metrics, shown = iteration(ctl, sampler, it)
            sample_log.log(it, shown)
            if cfg.run.eval_every and it % cfg.run.eval_every == 0 and it != cfg.run.iterations:
                metrics.update({f"eval/{k}": v for k, v in ctl.evaluate().items()})
            metrics["time/iteration"] = time.perf_counter() - t0
            trackers.log(it, metrics)
            progress.advance(metrics)
        progress.phase("eval (after)")
        eval_after = ctl.evaluate()
        progress.note(f"held-out after: {json.dumps(eval_after)}")
    trackers.close()
    sample_log.close()
    saved = ctl.save(run_dir)
    return {"eval_before": eval_before, "eval_after": eval_after, "iterations": cfg.run.iterations,
            "wall_seconds": time.perf_counter() - started, "final_weight_version": ctl.version, **saved}
