"""Brevity: a penalty that grows linearly with characters beyond a target length."""

from __future__ import annotations


def brevity(prompts: list[str], completions: list[str], answers: list[str], target_chars: int = 400, scale_chars: int = 400, **_) -> list[float]:
    """0 up to `target_chars`, then -1 per `scale_chars` extra characters, floored at -1."""
    return [-min(1.0, max(0, len(c) - target_chars) / scale_chars) for c in completions]
