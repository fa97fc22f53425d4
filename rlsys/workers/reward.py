"""RewardWorker: scores completions with the configured reward terms (a Ray actor in runs)."""

from __future__ import annotations

from rlsys.config import RewardTerm
from rlsys.rewards.registry import RewardSet


class RewardWorker:
    def __init__(self, terms: list[RewardTerm]) -> None:
        self.rewards = RewardSet(terms)

    def score(self, prompts: list[str], completions: list[str], answers: list[str]) -> tuple[list[float], dict[str, list[float]]]:
        return self.rewards.score(prompts, completions, answers)
