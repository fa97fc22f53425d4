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

from rlsys.algorithms.registry import old_policy_source
from rlsys.algorithms.turns import trajectory_return
from rlsys.data.samplers import PromptSampler, group_temperatures, request_seed
from rlsys.errors import RunError, Unplaceable
from rlsys.eval.metrics import distill_metrics
from rlsys.loops.context import RunContext
from rlsys.observability.episode_metrics import episode_metrics
from rlsys.observability.iteration_metrics import PhaseTimer, iteration_metrics, shown_samples
from rlsys.records import PromptItem, Sample, ScoredBatch, Trajectory


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
    episodes: dict[str, float] = field(default_factory=dict)
    """Multi-turn rollouts: turns, tool calls and errors, environment ids, truncations."""
    trajectories: list[Trajectory] | None = None
    """Multi-turn rollouts: the episodes behind `samples` (for the sample log)."""


def collect(ctx: RunContext, sampler: PromptSampler, it: int,
            engines: AbstractContextManager | None = None) -> Collected:
    """Iteration `it`'s prompts, samples, teacher scores and rewards; `engines` is held while
    the rollout engines generate (the asynchronous loop's guard against a concurrent sync)."""
    # generated ahead (asynchronous rollouts): its phases would garble the display of training's
    cfg, roles = ctx.cfg, ctx.roles
    timer = PhaseTimer(ctx.announce if cfg.rollout.max_staleness == 0 else None)
    teacher, distill = None, {}
    indices = sampler.next(cfg.rollout.prompts_per_iteration)
    items = [ctx.data.train[i] for i in indices]
    temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
    seeds, trajectories = [request_seed(cfg.run.seed, it, i) for i in indices], None
    with engines or nullcontext(), timer("generation"):  # a group of samples (or multi-turn episodes) per prompt
        if roles.episode_runner is not None:
            trajectories = roles.episodes(items, temps, seeds)
            samples = [t.to_sample() for t in trajectories]
        else:
            samples = roles.generate(items, temps, cfg.rollout.max_new_tokens, seeds=seeds)
    if roles.has_teacher:
        with timer("teacher"):  # the teacher's per-token log-probs of every sample
            teacher = roles.teacher_scores(items, samples, by_token=ctx.data.teacher_same_vocab)
        # how far the student is from the teacher on these samples, and the services' throughput
        distill = {**{f"distill/{k}": v for k, v in distill_metrics(teacher, [s.sampling_logprobs
                                                                          for s in samples]).items()},
                   **roles.teacher_stats(timer.seconds["time/teacher"])}
    with timer("reward"):  # rule, model, teacher and user rewards of every sample
        rewards, parts = roles.rewards(items, samples, teacher)
    episodes = {}
    if trajectories is not None:  # the environment's per-turn rewards join the final answer's
        rewards = [trajectory_return(t.turn_rewards, r, cfg.env.turn_return, cfg.env.gamma)
                   for t, r in zip(trajectories, rewards)]
        episodes = episode_metrics(trajectories, roles.episode_runner.restarted)
    return Collected(it, indices, items, samples, rewards, parts, teacher, distill, timer.seconds, episodes,
                     trajectories)


def learn(ctx: RunContext, batch: Collected, it: int,
          engines: AbstractContextManager | None = None) -> tuple[dict[str, float], list[dict]]:
    """Train on `batch` (its samples checked to be recent enough) and push the new weights to
    every engine, holding `engines` for the push: the metrics and the samples to log."""
    cfg, roles, timer = ctx.cfg, ctx.roles, PhaseTimer(ctx.announce)
    values, critic, stats, sync, unsynced = None, {}, {}, {}, None
    staleness = check_on_policy(batch.samples, roles.version, cfg.rollout.max_staleness)
    # the samples that train (GRPO's drop_uniform_groups leaves some out): only they are scored
    kept = getattr(ctx.algorithm, "kept_samples", lambda _: None)(
        ScoredBatch(batch.samples, batch.rewards, cfg.rollout.group_size))
    old, ref, scored = old_and_reference(ctx, batch.samples, timer, kept)
    if roles.has_critic:
        with timer("critic_values"):  # the critic's value of every completion token
            values = roles.critic_values(batch.samples)
    # the algorithm turns the scored samples into training items (advantages, returns)
    scored_batch = ScoredBatch(batch.samples, batch.rewards, cfg.rollout.group_size, batch.teacher, old, ref, values)
    train_items, algo_metrics = ctx.algorithm.train_items(scored_batch)
    if cfg.tracking.dump_batches:  # what the learner is given, for inspection (tracking.dump_batches)
        dump_batch(Path(cfg.run.dir) / "batches" / f"iter-{it:06d}.jsonl", batch, train_items, kept)
    if roles.has_critic:  # clipped value-loss updates on every critic rank
        timer.mark("critic")
        critic = roles.train_critic(train_items)
    if not (roles.has_critic and it <= cfg.critic.warmup_iterations):  # warm-up trains only the critic
        # policy updates on every learner rank, then the new weights to every engine, verified there
        timer.mark("train")
        stats = roles.train_policy(train_items, cfg.lpt.coef)
        timer.mark("sync")
        with engines or nullcontext():
            try:
                sync = roles.sync()
            except Unplaceable as exc:  # trained, but an engine lost its node: the loop saves this iteration
                unsynced = exc
    metrics = iteration_metrics(batch.samples, batch.rewards, batch.parts, cfg.rollout.group_size,
                                {**batch.seconds, **timer.seconds}, batch.distill, batch.episodes, scored, algo_metrics,
                                critic, stats, sync, staleness)
    shown = shown_samples(batch.items, batch.samples, batch.rewards, 2 * cfg.rollout.group_size, batch.indices,
                          batch.trajectories)
    if unsynced is not None:
        roles.version += 1  # the learner's weights are this iteration's; a resume pushes them as such
        raise TrainedButUnsynced(str(unsynced), metrics, shown)
    return metrics, shown


def old_and_reference(ctx: RunContext, samples: list[Sample], timer: PhaseTimer, kept: list[int] | None = None):
    """The ratio's denominator and the reference's log-probs, as far as a pass is needed:
    none when the old policy is the training pass's own (one step per batch) or vLLM's. With
    `kept`, only those samples are scored (the others do not train) and the rest get None."""
    source, needs_ref = old_policy_source(ctx.cfg), ctx.algorithm.needs_reference
    old = [s.sampling_logprobs for s in samples] if source == "sampler" else None
    if source != "learner" and not needs_ref:
        return old, None, {}
    subset = samples if kept is None else [samples[i] for i in kept]
    with timer("logprobs"):  # reference (and old-policy) log-probs of the samples that train, on every learner rank
        learner_old, ref, scored = ctx.roles.learner_logprobs(subset, needs_ref, source == "learner")
    if kept is not None:
        learner_old, ref = (None if lp is None else spread(lp, kept, len(samples)) for lp in (learner_old, ref))
    return (learner_old if source == "learner" else old), ref, scored


def spread(values: list, at: list[int], size: int) -> list:
    """`values` placed at the positions `at` of a list of `size`, None elsewhere."""
    out: list = [None] * size
    for i, v in zip(at, values, strict=True):
        out[i] = v
    return out


def check_on_policy(samples: list[Sample], version: int, max_staleness: int = 0) -> dict[str, float]:
    """Train only on samples of the current weights or, with asynchronous rollouts, at most
    `max_staleness` versions behind them: refuse any other. The staleness seen, as metrics."""
    lags = [version - s.weight_version for s in samples]
    bad = sorted({s.weight_version for s, lag in zip(samples, lags) if not 0 <= lag <= max_staleness})
    if bad:
        allowed = "the current weights" if max_staleness == 0 else f"at most {max_staleness} versions behind"
        raise RunError(f"off-policy samples: weight versions {bad} while the learner is at {version} and "
                       f"rollouts may be {allowed}; an engine did not take the last weight sync")
    return {"rollout/staleness_mean": sum(lags) / max(1, len(lags)), "rollout/staleness_max": float(max(lags, default=0))}


def dump_batch(path: Path, batch: Collected, items: list, kept: list[int] | None = None) -> None:
    """One JSON row per training item, with its sample's reward, version and prompt index
    (`kept`: the samples the items came from, when the algorithm left some out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = list(range(len(batch.samples))) if kept is None else kept
    with path.open("w", encoding="utf-8") as fh:
        for i, item in zip(kept, items):
            sample, reward = batch.samples[i], batch.rewards[i]
            row = {"prompt_index": sample.prompt_index, "weight_version": sample.weight_version, "reward": reward,
                   **dataclasses.asdict(item)}
            fh.write(json.dumps(row) + "\n")


class TrainedButUnsynced(Unplaceable):
    """An iteration trained, whose weights no longer reach every engine (a role lost its node):
    its metrics and samples, for the loop to log and checkpoint before the run stops."""

    def __init__(self, message: str, metrics: dict[str, float], shown: list[dict]) -> None:
        super().__init__(message)
        self.metrics, self.shown = metrics, shown
