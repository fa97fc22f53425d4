"""What the algorithm objects read of the run's configuration, as protocols: the maths
depends on these attribute names, not on the schema (`rlsys.config` satisfies them)."""

from __future__ import annotations

from typing import Any, Protocol


class MiniLLMSettings(Protocol):
    coef: float
    gamma: float
    length_normalize: bool


class RewardSettings(Protocol):
    combiner: str
    minillm: MiniLLMSettings


class GRPOSettings(Protocol):
    kl_beta: float
    std_normalize: bool
    drop_uniform_groups: bool


class PPOSettings(Protocol):
    kl_beta: float
    kl_in_reward: float
    gamma: float
    lam: float
    whiten_advantages: bool


class RunSettings(Protocol):
    """The sections the registry reads to choose an algorithm and its old-policy source."""

    algorithm: Any
    reward: Any
    learner: Any
    rollout: Any

    @property
    def batch_size(self) -> int: ...
