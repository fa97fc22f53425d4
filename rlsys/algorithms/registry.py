"""Algorithms by the `type` of `algorithm:` in the config. Adding one is a module with its
config class and object, and a line here; the loop does not change."""

from __future__ import annotations

from typing import Protocol

from rlsys.algorithms.grpo import GRPO
from rlsys.config import Config
from rlsys.types import ScoredBatch, TrainItem


class Algorithm(Protocol):
    loss: str
    needs_reference: bool
    needs_critic: bool

    def train_items(self, batch: ScoredBatch) -> list[TrainItem]: ...


ALGORITHMS = {"grpo": GRPO}


def build_algorithm(cfg: Config) -> Algorithm:
    return ALGORITHMS[cfg.algorithm.type](cfg.algorithm, cfg.reward)
