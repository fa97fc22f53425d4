"""Correctness of the final answer against the reference."""

from __future__ import annotations

from rlsys.rewards.answers import answers_match, extract_answer


def correctness(prompts: list[str], completions: list[str], answers: list[str], strict: bool = False, **_) -> list[float]:
    return [float(answers_match(extract_answer(c, strict=strict), a)) for c, a in zip(completions, answers)]
