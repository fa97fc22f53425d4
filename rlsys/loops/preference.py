"""Preference training (DPO) on the same learner ranks and engines as RL. Offline: optimiser
steps over validated pairs. Online: round after round, sample a group per prompt, pair the
best and worst answer by reward, take DPO steps on those pairs, and push the new weights
(under LoRA only the adapter) to the engines before the next round samples.

Reference log-probs are computed once per pair, before the pair's first update."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from rlsys.algorithms.dpo import best_worst_pairs
from rlsys.data.samplers import PromptSampler
from rlsys.loops.preference_outputs import answer_prompts, generation_prompts, write_generations, write_training_stats
from rlsys.observability.iteration_metrics import PhaseTimer
from rlsys.observability.progress import ProgressDisplay
from rlsys.observability.trackers import open_trackers
from rlsys.training.preference import pair_metrics
from rlsys.types import PairItem
from rlsys.workers.rollout import group_temperatures


def step(ctl, batch: list[PairItem]) -> tuple[dict[str, float], list[list[float]]]:
    """One optimiser step on one global mini-batch of pairs: its metrics and per-pair rows."""
    out = ctl.learners.train_pairs(batch, ctl.cfg.run.timeout("train"))
    metrics = {**pair_metrics(out["pairs"], "train"), "train/lr": out["lr"], "time/train": out["seconds"]}
    if out["grad_norm"] is not None:
        metrics["train/grad_norm"] = out["grad_norm"]
    return metrics, out["pairs"]


def epochs_of_steps(ctl, items: list[PairItem], rng: random.Random):
    """`algorithm.epochs` shuffled passes in global mini-batches (a remainder smaller than one
    mini-batch waits for the next pass)."""
    mini = ctl.cfg.learner.mini_batch_size
    for _ in range(ctl.cfg.algorithm.epochs):
        order = list(range(len(items)))
        rng.shuffle(order)
        for start in range(0, len(order) - mini + 1, mini):
            yield [items[i] for i in order[start : start + mini]]


def evaluate(ctl, heldout: list[PairItem], with_task: bool) -> dict[str, float]:
    """Held-out preference metrics (learner) and greedy task accuracy (engines, current weights)."""
    out = pair_metrics(ctl.learners.evaluate_pairs(heldout, ctl.cfg.run.timeout("eval")), "heldout") if heldout else {}
    if with_task and ctl.cfg.algorithm.task_eval:
        out.update({f"task/{k}": v for k, v in ctl.evaluate().items()})
    return out


def offline(ctl, trackers, progress, heldout: list[PairItem]) -> list[float]:
    cfg, losses = ctl.cfg, []
    items = ctl.data.pairs.train
    for n, batch in enumerate(epochs_of_steps(ctl, items, random.Random(cfg.run.seed)), start=1):
        metrics, _ = step(ctl, batch)  # one DPO optimiser step over the learner ranks
        if cfg.algorithm.eval_every_steps and n % cfg.algorithm.eval_every_steps == 0:
            metrics.update(evaluate(ctl, heldout, with_task=False))  # held-out pairs
        losses.append(metrics["train/loss"])
        trackers.log(n, metrics)
        progress.advance(metrics)
    return losses


def online_round(ctl, sampler: PromptSampler) -> tuple[dict[str, float], list[float]]:
    cfg, timer = ctl.cfg, PhaseTimer()
    prompts = [ctl.data.train[i] for i in sampler.next(cfg.rollout.prompts_per_iteration)]
    temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
    with timer("generation"):  # a group of answers per prompt, with the current adapter
        samples = ctl.generate(prompts, temps, cfg.rollout.max_new_tokens)
    ctl.check_on_policy(samples)
    with timer("reward"):  # rule/model rewards of every answer
        rewards, _ = ctl.rewards(prompts, samples, None)
    pairs = [PairItem(samples[b].prompt_ids, samples[b].completion_ids, samples[w].completion_ids)
             for b, w in best_worst_pairs(rewards, cfg.rollout.group_size, cfg.algorithm.pair_min_gap)]
    rows, losses = [], []
    if len(pairs) >= cfg.learner.mini_batch_size:
        with timer("reference"):  # reference log-probs of this round's pairs, once
            ctl.learners.reference_pairs(pairs, cfg.run.timeout("train"))
        with timer("train"):  # DPO steps over the round's pairs
            for batch in epochs_of_steps(ctl, pairs, random.Random(cfg.run.seed + ctl.version)):
                metrics, batch_rows = step(ctl, batch)
                rows += batch_rows
                losses.append(metrics["train/loss"])
    with timer("sync"):  # the new weights (the adapter) to every engine, verified there
        sync = ctl.sync()
    metrics = {"reward/mean": sum(rewards) / len(rewards), "pairs/made": float(len(pairs)),
               "pairs/trained": float(len(rows) // cfg.algorithm.epochs), **pair_metrics(rows, "train"), **timer.seconds,
               **{k: v for k, v in sync.items() if k.startswith("sync/")}}
    return metrics, losses


def run(ctl, run_dir: Path) -> dict:
    """Evaluate, train, sync, evaluate, save: the summary of the run."""
    cfg, started = ctl.cfg, time.perf_counter()
    trackers = open_trackers(cfg, run_dir)
    pairs = ctl.data.pairs
    heldout = pairs.heldout if pairs else []
    gen_prompts = generation_prompts(ctl)
    if pairs:  # once per pair, with the weights the run starts from; held-out pairs apart, batched
        # as their evaluation is, so that before any update the two passes agree to the bit
        ctl.learners.reference_pairs(pairs.train, cfg.run.timeout("train"))
        ctl.learners.reference_pairs(heldout, cfg.run.timeout("train"))
    total = cfg.run.iterations if cfg.algorithm.online else sum(1 for _ in epochs_of_steps(ctl, pairs.train, random.Random(0)))
    with ProgressDisplay(total, enabled=cfg.tracking.console, unit="round" if cfg.algorithm.online else "step") as progress:
        progress.phase("eval (before)")
        before = evaluate(ctl, heldout, with_task=True)
        base_answers = answer_prompts(ctl, gen_prompts)
        progress.note(f"before: {json.dumps(before)}")
        if cfg.algorithm.online:
            losses, sampler = [], PromptSampler(len(ctl.data.train), cfg.run.seed)
            for r in range(1, cfg.run.iterations + 1):
                metrics, round_losses = online_round(ctl, sampler)
                losses += round_losses
                trackers.log(r, metrics)
                progress.advance(metrics)
        else:
            losses = offline(ctl, trackers, progress, heldout)
            ctl.sync()  # the trained weights to the engines, for the task eval and the generations
        progress.phase("eval (after)")
        after = evaluate(ctl, heldout, with_task=True)
        progress.note(f"after: {json.dumps(after)}")
        write_generations(run_dir / "sample_generations.jsonl", gen_prompts, base_answers,
                          answer_prompts(ctl, gen_prompts))
    trackers.close()
    saved = ctl.save(run_dir)
    summary = {"eval_before": before, "eval_after": after, "steps": len(losses),
               "wall_seconds": time.perf_counter() - started, "final_weight_version": ctl.version, **saved}
    write_training_stats(run_dir / "training_stats.json", ctl, summary, losses)
    return summary
