"""Algorithms by the `type` of `algorithm:` in the config. Adding one is a module with its
config class and object, and a line here; the loop does not change."""

from __future__ import annotations

from typing import Protocol

from rlsys.algorithms.dpo import DPO
from rlsys.algorithms.grpo import GRPO
from rlsys.algorithms.ppo import PPO
from rlsys.config import Config
from rlsys.types import ScoredBatch, TrainItem


class Algorithm(Protocol):
    loss: str
    needs_reference: bool
    needs_critic: bool
    needs_teacher_tokens: bool

    def train_items(self, batch: ScoredBatch) -> tuple[list[TrainItem], dict[str, float]]:
        """Training items for the learner (and critic), and the algorithm's own metrics."""
        ...


ALGORITHMS = {"grpo": GRPO, "ppo": PPO, "dpo": DPO}


def policy_loss_kwargs(cfg: Config) -> dict:
    """The policy loss's settings from the algorithm's config."""
    a = cfg.algorithm
    if a.type == "dpo":
        return DPO(a).loss_kwargs()
    return {"clip_eps": a.clip_eps, "kl_beta": a.kl_beta, "kl_estimator": a.kl_estimator, "kl_clamp": a.kl_clamp,
            "loss_agg": a.loss_agg}


def build_algorithm(cfg: Config) -> Algorithm:
    return ALGORITHMS[cfg.algorithm.type](cfg.algorithm, cfg.reward)
