"""Task metrics over completions: accuracy (flexible and strict extraction), format rate, length."""

from __future__ import annotations

from rlsys.rewards.answers import answers_match, extract_answer
from rlsys.rewards.format import format_reward


def task_metrics(completions: list[str], answers: list[str], completion_tokens: list[int]) -> dict[str, float]:
    n = max(1, len(completions))
    flexible = sum(answers_match(extract_answer(c), a) for c, a in zip(completions, answers))
    strict = sum(answers_match(extract_answer(c, strict=True), a) for c, a in zip(completions, answers))
    formatted = sum(format_reward([], completions, answers))
    return {
        "accuracy": flexible / n,
        "strict_accuracy": strict / n,
        "format_rate": formatted / n,
        "mean_completion_tokens": sum(completion_tokens) / n,
        "n": float(len(completions)),
    }
