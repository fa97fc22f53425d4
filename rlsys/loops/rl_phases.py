"""One RL iteration in two halves: `collect` (a batch of samples, the teacher's scores and
the rewards: what the rollout side produces) and `learn` (the old-policy and reference
log-probs, the critic, the policy update and the weight sync: what the learner side does).
The synchronous loop runs them back to back; with asynchronous rollouts `collect` runs
ahead in a producer thread (rlsys.loops.rollout_ahead)."""

from __future__ import annotations

import dataclasses
import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from rlsys.data.samplers import PromptSampler, request_seed
from rlsys.observability.iteration_metrics import PhaseTimer, iteration_metrics, shown_samples
from rlsys.types import PromptItem, Sample, ScoredBatch
from rlsys.workers.rollout import group_temperatures


@dataclass
class Collected:
    """One iteration's samples with everything scored before the learner sees them."""

    iteration: int
    indices: list[int]
    items: list[PromptItem]
    samples: list[Sample]
    rewards: list[float]
    parts: dict[str, list[float]]
    teacher: list[list[float]] | None = None
    distill: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def collect(ctl, sampler: PromptSampler, it: int,
            engines: AbstractContextManager | None = None) -> Collected:
    """Iteration `it`'s prompts, samples, teacher scores and rewards; `engines` is held while
    the rollout engines generate (the asynchronous loop's guard against a concurrent sync)."""
    cfg, timer = ctl.cfg, PhaseTimer()
    teacher, distill = None, {}
    indices = sampler.next(cfg.rollout.prompts_per_iteration)
    items = [ctl.data.train[i] for i in indices]
    temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
    with engines or nullcontext(), timer("generation"):  # a group of samples per prompt, seeded per prompt
        samples = ctl.generate(items, temps, cfg.rollout.max_new_tokens,
                               seeds=[request_seed(cfg.run.seed, it, i) for i in indices])
    if ctl.teachers:
        with timer("teacher"):  # the teacher's per-token log-probs of every sample
            teacher = ctl.teacher_scores(items, samples, by_token=ctl.data.teacher_same_vocab)
        distill = ctl.distill_metrics(teacher, samples, timer.seconds["time/teacher"])
    with timer("reward"):  # rule, model, teacher and user rewards of every sample
        rewards, parts = ctl.rewards(items, samples, teacher)
    return Collected(it, indices, items, samples, rewards, parts, teacher, distill, timer.seconds)


def learn(ctl, batch: Collected, it: int,
          engines: AbstractContextManager | None = None) -> tuple[dict[str, float], list[dict]]:
    """Train on `batch` (its samples checked to be recent enough) and push the new weights to
    every engine, holding `engines` for the push: the metrics and the samples to log."""
    cfg, algo, timer = ctl.cfg, ctl.algorithm, PhaseTimer()
    values, critic, stats, sync = None, {}, {}, {}
    staleness = ctl.check_on_policy(batch.samples)
    old, ref, scored = ctl.old_and_reference(batch.samples, timer)
    if ctl.critics:
        with timer("critic_values"):  # the critic's value of every completion token
            values = ctl.critics.values(batch.samples, cfg.run.timeout("train"))
    # the algorithm turns the scored samples into training items (advantages, returns)
    scored_batch = ScoredBatch(batch.samples, batch.rewards, cfg.rollout.group_size, batch.teacher, old, ref, values)
    train_items, algo_metrics = algo.train_items(scored_batch)
    if cfg.tracking.dump_batches:  # what the learner is given, for inspection (tracking.dump_batches)
        dump_batch(Path(cfg.run.dir) / "batches" / f"iter-{it:06d}.jsonl", batch, train_items)
    if ctl.critics:  # clipped value-loss updates on every critic rank
        critic = ctl.critics.train(train_items, cfg.run.timeout("train"))
    if not ctl.policy_frozen(it):
        # policy updates on every learner rank, then the new weights to every engine, verified there
        stats = ctl.learners.train(train_items, cfg.lpt.coef, cfg.run.timeout("train"))
        with engines or nullcontext():
            sync = ctl.sync()
    metrics = iteration_metrics(batch.samples, batch.rewards, batch.parts, cfg.rollout.group_size,
                                {**batch.seconds, **timer.seconds}, batch.distill, scored, algo_metrics,
                                critic, stats, sync, staleness)
    shown = shown_samples(batch.items, batch.samples, batch.rewards, 2 * cfg.rollout.group_size, batch.indices)
    return metrics, shown


def dump_batch(path: Path, batch: Collected, items: list) -> None:
    """One JSON row per training item, with its sample's reward, version and prompt index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for sample, reward, item in zip(batch.samples, batch.rewards, items):
            row = {"prompt_index": sample.prompt_index, "weight_version": sample.weight_version, "reward": reward,
                   **dataclasses.asdict(item)}
            fh.write(json.dumps(row) + "\n")
