"""Preference training (DPO) on the same learner ranks and engines as RL. Offline: optimiser
steps over validated pairs. Online: round after round, sample a group per prompt, pair the
best and worst answer by reward, take DPO steps on those pairs, and push the new weights
(under LoRA only the adapter) to the engines before the next round samples.

Reference log-probs are computed once per pair, before the pair's first update."""

from __future__ import annotations

import random
import time

from rlsys.algorithms.dpo import best_worst_pairs
from rlsys.config import Config
from rlsys.data.samplers import PromptSampler, group_temperatures
from rlsys.distributed.roles import Roles
from rlsys.errors import RunStopped
from rlsys.loops.context import RunContext
from rlsys.loops.evaluation import HeldOutEvaluation
from rlsys.loops.rl_phases import check_on_policy
from rlsys.loops.preference_outputs import answer_prompts, generation_prompts, write_generations, write_training_stats
from rlsys.observability.iteration_metrics import PhaseTimer
from rlsys.observability.progress import ProgressDisplay, format_results
from rlsys.observability.trackers import open_trackers
from rlsys.training.preference import pair_metrics
from rlsys.records import PairItem


def step(roles: Roles, batch: list[PairItem]) -> tuple[dict[str, float], list[list[float]]]:
    """One optimiser step on one global mini-batch of pairs: its metrics and per-pair rows."""
    out = roles.train_pairs(batch)
    metrics = {**pair_metrics(out["pairs"], "train"), "train/lr": out["lr"], "time/train": out["seconds"]}
    if out["grad_norm"] is not None:
        metrics["train/grad_norm"] = out["grad_norm"]
    return metrics, out["pairs"]


def epochs_of_steps(cfg: Config, items: list[PairItem], rng: random.Random):
    """`algorithm.epochs` shuffled passes in global mini-batches (a remainder smaller than one
    mini-batch waits for the next pass)."""
    mini = cfg.learner.mini_batch_size
    for _ in range(cfg.algorithm.epochs):
        order = list(range(len(items)))
        rng.shuffle(order)
        for start in range(0, len(order) - mini + 1, mini):
            yield [items[i] for i in order[start : start + mini]]


def evaluate(ctx: RunContext, heldout: list[PairItem], task: HeldOutEvaluation | None = None) -> dict[str, float]:
    """Held-out preference metrics (learner) and, given `task`, greedy task accuracy (engines,
    current weights)."""
    out = pair_metrics(ctx.roles.evaluate_pairs(heldout), "heldout") if heldout else {}
    if task is not None and ctx.cfg.algorithm.task_eval:
        out.update({f"task/{k}": v for k, v in task.evaluate().items()})
    return out


def offline(ctx: RunContext, trackers, progress, heldout: list[PairItem]) -> list[float]:
    cfg, losses = ctx.cfg, []
    items = ctx.data.pairs.train
    for n, batch in enumerate(epochs_of_steps(cfg, items, random.Random(cfg.run.seed)), start=1):
        stop_if_asked(ctx, f"step {n}")
        metrics, _ = step(ctx.roles, batch)  # one DPO optimiser step over the learner ranks
        if cfg.algorithm.eval_every_steps and n % cfg.algorithm.eval_every_steps == 0:
            metrics.update(evaluate(ctx, heldout))  # held-out pairs
        losses.append(metrics["train/loss"])
        trackers.log(n, metrics)
        progress.advance(metrics)
    return losses


def online_round(ctx: RunContext, sampler: PromptSampler) -> tuple[dict[str, float], list[float]]:
    cfg, roles, timer = ctx.cfg, ctx.roles, PhaseTimer(ctx.announce)
    prompts = [ctx.data.train[i] for i in sampler.next(cfg.rollout.prompts_per_iteration)]
    temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
    with timer("generation"):  # a group of answers per prompt, with the current adapter
        samples = roles.generate(prompts, temps, cfg.rollout.max_new_tokens)
    check_on_policy(samples, roles.version, cfg.rollout.max_staleness)
    with timer("reward"):  # rule/model rewards of every answer
        rewards, _ = roles.rewards(prompts, samples, None)
    pairs = [PairItem(samples[b].prompt_ids, samples[b].completion_ids, samples[w].completion_ids)
             for b, w in best_worst_pairs(rewards, cfg.rollout.group_size, cfg.algorithm.pair_min_gap)]
    rows, losses = [], []
    if len(pairs) >= cfg.learner.mini_batch_size:
        with timer("reference"):  # reference log-probs of this round's pairs, once
            roles.reference_pairs(pairs)
        with timer("train"):  # DPO steps over the round's pairs
            for batch in epochs_of_steps(cfg, pairs, random.Random(cfg.run.seed + roles.version)):
                metrics, batch_rows = step(roles, batch)
                rows += batch_rows
                losses.append(metrics["train/loss"])
    with timer("sync"):  # the new weights (the adapter) to every engine, verified there
        sync = roles.sync()
    metrics = {"reward/mean": sum(rewards) / len(rewards), "pairs/made": float(len(pairs)),
               "pairs/trained": float(len(rows) // cfg.algorithm.epochs), **pair_metrics(rows, "train"), **timer.seconds,
               **{k: v for k, v in sync.items() if k.startswith("sync/")}}
    return metrics, losses


def stop_if_asked(ctx: RunContext, before: str) -> None:
    """Preference runs do not checkpoint: a stop ends them where they are."""
    if ctx.stop_requested:
        raise RunStopped(f"stopped by {ctx.stop.signal} before {before}; preference (DPO) runs keep no checkpoint, "
                         "so running the same command starts afresh", checkpointed=False)


def run(ctx: RunContext) -> dict:
    """Evaluate, train, sync, evaluate, save: the summary of the run."""
    cfg, roles, run_dir, started = ctx.cfg, ctx.roles, ctx.run_dir, time.perf_counter()
    trackers = open_trackers(cfg, run_dir)
    task = HeldOutEvaluation(cfg, roles, ctx.data)
    pairs = ctx.data.pairs
    heldout = pairs.heldout if pairs else []
    gen_prompts = generation_prompts(ctx)
    if pairs:  # once per pair, with the weights the run starts from; held-out pairs apart, batched
        # as their evaluation is, so that before any update the two passes agree to the bit
        roles.reference_pairs(pairs.train)
        roles.reference_pairs(heldout)
    total = cfg.run.iterations if cfg.algorithm.online else sum(1 for _ in epochs_of_steps(cfg, pairs.train, random.Random(0)))
    with ProgressDisplay(total, enabled=cfg.tracking.console, unit="round" if cfg.algorithm.online else "step") as progress:
        ctx.announce = progress.phase
        progress.phase("eval (before)")
        before = evaluate(ctx, heldout, task)
        base_answers = answer_prompts(ctx, gen_prompts)
        progress.note(f"held-out before: {format_results(before)}")
        if cfg.algorithm.online:
            losses, sampler = [], PromptSampler(len(ctx.data.train), cfg.run.seed)
            for r in range(1, cfg.run.iterations + 1):
                stop_if_asked(ctx, f"round {r}")
                metrics, round_losses = online_round(ctx, sampler)
                losses += round_losses
                trackers.log(r, metrics)
                progress.advance(metrics)
        else:
            losses = offline(ctx, trackers, progress, heldout)
            roles.sync()  # the trained weights to the engines, for the task eval and the generations
        progress.phase("eval (after)")
        after = evaluate(ctx, heldout, task)
        progress.note(f"held-out after: {format_results(after)}")
        write_generations(run_dir / "sample_generations.jsonl", gen_prompts, base_answers,
                          answer_prompts(ctx, gen_prompts))
    trackers.close()
    saved = roles.save_models(run_dir)
    summary = {"eval_before": before, "eval_after": after, "steps": len(losses),
               "wall_seconds": time.perf_counter() - started, "final_weight_version": roles.version,
               "placement": roles.placement, **saved}
    write_training_stats(run_dir / "training_stats.json", ctx, summary, losses)
    return summary
