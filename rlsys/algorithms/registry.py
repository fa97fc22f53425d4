"""Algorithms by the `type` of `algorithm:` in the config. Adding one is a module with its
config class and object, and a line here; the loop does not change."""

from __future__ import annotations

from typing import Protocol

from rlsys.algorithms.dpo import DPO
from rlsys.algorithms.grpo import GRPO
from rlsys.algorithms.ppo import PPO
from rlsys.algorithms.tis import OldPolicy
from rlsys.algorithms.settings import RunSettings
from rlsys.records import ScoredBatch, TrainItem


class Algorithm(Protocol):
    loss: str
    needs_reference: bool
    needs_critic: bool
    needs_teacher_tokens: bool

    def train_items(self, batch: ScoredBatch) -> tuple[list[TrainItem], dict[str, float]]:
        """Training items for the learner (and critic), and the algorithm's own metrics."""
        ...


ALGORITHMS = {"grpo": GRPO, "ppo": PPO, "dpo": DPO}


def policy_loss_kwargs(cfg: RunSettings) -> dict:
    """The policy loss's settings from the algorithm's config."""
    a = cfg.algorithm
    if a.type == "dpo":
        return DPO(a).loss_kwargs()
    return {"clip_eps": a.clip_eps, "kl_beta": a.kl_beta, "kl_estimator": a.kl_estimator, "kl_clamp": a.kl_clamp,
            "loss_agg": a.loss_agg}


def one_step_per_batch(cfg: RunSettings) -> bool:
    """Whether the learner takes exactly one optimiser step per rollout batch."""
    return cfg.learner.epochs == 1 and cfg.learner.mini_batch_size == cfg.batch_size


def old_policy_source(cfg: RunSettings) -> str:
    """Where the PPO ratio's denominator comes from: `current` (the training pass's own
    log-probs, exact when there is one optimiser step per batch: no separate pass), `learner`
    (a pass before the updates) or `sampler` (vLLM's sampling log-probs)."""
    a = cfg.algorithm
    if a.old_policy == "sampler":
        return "sampler"
    # PPO reads the old log-probs before training (the reward's KL term, the items).
    if a.old_policy == "auto" and a.type != "ppo" and one_step_per_batch(cfg):
        return "current"
    return "learner"


def old_policy(cfg: RunSettings) -> OldPolicy | None:
    """The ratio's denominator and the truncated-importance-sampling cap in force (2 by default
    when rollouts run ahead of the learner; no correction against the sampler itself); None
    for preference optimisation, which has no ratio to a sampling policy."""
    a = cfg.algorithm
    if not hasattr(a, "old_policy"):
        return None
    source = old_policy_source(cfg)
    cap = a.tis_cap if a.tis_cap is not None else (2.0 if cfg.rollout.max_staleness > 0 else None)
    return OldPolicy(source, None if source == "sampler" else cap)


def build_algorithm(cfg: RunSettings) -> Algorithm:
    if cfg.algorithm.type == "grpo":  # its batch may shrink, by whole mini-batches
        return GRPO(cfg.algorithm, cfg.reward, cfg.learner.mini_batch_size)
    return ALGORITHMS[cfg.algorithm.type](cfg.algorithm, cfg.reward)
