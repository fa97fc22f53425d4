"""The `reward` section: named reward terms, their weights and how they combine."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rlsys.config.base import Section
from rlsys.config.distill import MiniLLMConfig

TEACHER_REWARDS = ("teacher_loglik",)


class RewardTerm(Section):
    """One reward term: a reward function by name, its weight and its keyword arguments."""

    name: str
    """A registered reward (`correctness`, `format`, `reasoning`, `brevity`, `teacher_loglik`,
    `language_fidelity`, `reward_model`) or a dotted path `package.module:function` /
    `package.module.function` to a user callable."""
    weight: float = 1.0
    """The term's weight in the combination (linear: weight x reward; squash: weight x the
    batch-standardised reward)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments the reward function is called with (`reward_model`: its actor's
    settings, e.g. `path`)."""


def _default_rewards() -> list[RewardTerm]:
    return [
        RewardTerm(name="correctness", weight=1.0),
        RewardTerm(name="format", weight=0.5),
        RewardTerm(name="reasoning", weight=0.1),
    ]


class RewardConfig(Section):
    """The rewards: named terms, scored by a reward worker, and how they combine into one reward
    per completion."""

    terms: list[RewardTerm] = Field(default_factory=_default_rewards)
    """The reward terms (each name at most once); the combiner joins their values."""
    combiner: Literal["linear", "squash", "minillm"] = "linear"
    """linear: sum of weight x reward. squash: tanh of the weighted sum of batch-standardised
    rewards. minillm: linear sequence rewards plus per-token rewards log p_T - log p_S
    (needs a teacher with the student's vocabulary)."""
    squash_temperature: float = Field(1.0, gt=0.0)
    """squash: the weighted sum is divided by this inside the tanh (larger: further from -1 and 1)."""
    minillm: MiniLLMConfig = Field(default_factory=MiniLLMConfig)
    """The per-token term of the `minillm` combiner."""
    num_cpus: float = Field(0.1, ge=0.0)
    """CPUs Ray reserves for the reward worker."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) the reward worker asks for, e.g.
    `{reward_node: 1}`: the reward worker runs only on nodes that offer them (`ray start
    --resources='{"reward_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    max_restarts: int = Field(3, ge=0)
    """Restart a reward worker (or reward-model actor) that dies this many times; its
    unfinished call is re-run. Counted in the metrics (`reward/restarts`) and the summary."""
