"""Teacher-based sequence reward: the teacher's log-likelihood of the completion."""

from __future__ import annotations

from collections.abc import Sequence


def sequence_loglik(token_logprobs: Sequence[float], normalize: str = "mean") -> float:
    """Teacher log-likelihood of one completion; an empty completion scores 0 by either rule."""
    total = float(sum(token_logprobs))
    if normalize == "sum":
        return total
    return total / len(token_logprobs) if token_logprobs else 0.0


def teacher_loglik(prompts: list[str], completions: list[str], answers: list[str],
                   teacher_logprobs: list[list[float]] | None = None, normalize: str = "mean", **_) -> list[float]:
    """sum or per-token mean of the teacher's log-probs (`normalize`: "sum" | "mean")."""
    if teacher_logprobs is None:
        raise ValueError("the teacher_loglik reward needs a teacher: set teacher.path")
    if normalize not in ("sum", "mean"):
        raise ValueError(f"teacher_loglik: normalize must be 'sum' or 'mean', not {normalize!r}")
    return [sequence_loglik(lp, normalize) for lp in teacher_logprobs]
