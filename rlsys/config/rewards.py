"""The `reward` section: named reward terms, their weights and how they combine."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rlsys.config.base import Section
from rlsys.config.distill import MiniLLMConfig

TEACHER_REWARDS = ("teacher_loglik",)


class RewardTerm(Section):
    name: str
    """A registered reward (`correctness`, `format`, `reasoning`, `brevity`) or a dotted
    path `package.module:function` / `package.module.function` to a user callable."""
    weight: float = 1.0
    kwargs: dict[str, Any] = Field(default_factory=dict)


def _default_rewards() -> list[RewardTerm]:
    return [
        RewardTerm(name="correctness", weight=1.0),
        RewardTerm(name="format", weight=0.5),
        RewardTerm(name="reasoning", weight=0.1),
    ]


class RewardConfig(Section):
    terms: list[RewardTerm] = Field(default_factory=_default_rewards)
    combiner: Literal["linear", "squash", "minillm"] = "linear"
    """linear: sum of weight x reward. squash: tanh of the weighted sum of batch-standardised
    rewards. minillm: linear sequence rewards plus per-token rewards log p_T - log p_S
    (needs a teacher with the student's vocabulary)."""
    squash_temperature: float = Field(1.0, gt=0.0)
    minillm: MiniLLMConfig = Field(default_factory=MiniLLMConfig)
    num_cpus: float = Field(0.1, ge=0.0)
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) each reward worker asks for, e.g.
    `{reward_node: 1}`: the reward worker run only on nodes that offer them (`ray start
    --resources='{"reward_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    max_restarts: int = Field(3, ge=0)
    """Restart a reward worker (or reward-model actor) that dies this many times; its
    unfinished call is re-run. Counted in the metrics (`reward/restarts`) and the summary."""
