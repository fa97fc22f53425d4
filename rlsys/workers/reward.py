"""RewardWorker: scores completions with the configured reward terms (a Ray actor in runs)."""

from __future__ import annotations

from rlsys.config import RewardConfig
from rlsys.rewards.registry import RewardSet


class RewardWorker:
    def __init__(self, cfg: RewardConfig, template: str | None = None, scorers: dict | None = None) -> None:
        """`scorers`: callables of model rewards by term name (e.g. a reward-model actor's proxy)."""
        self.rewards = RewardSet(cfg.terms, cfg.combiner, cfg.squash_temperature, template, scorers)

    def score(self, prompts: list[str], completions: list[str], answers: list[str],
              **fields) -> tuple[list[float], dict[str, list[float]]]:
        """`fields` reach every reward function, e.g. `teacher_logprobs` for teacher rewards."""
        return self.rewards.score(prompts, completions, answers, **fields)
