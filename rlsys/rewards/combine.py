"""Combiners of named reward parts into one reward per sample: `linear` (a weighted sum) and
`squash` (each part standardised over the batch, then a tanh of the weighted sum)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def linear(parts: dict[str, Sequence[float]], weights: dict[str, float]) -> list[float]:
    """sum_i w_i * reward_i, per sample."""
    n = len(next(iter(parts.values()))) if parts else 0
    total = [0.0] * n
    for name, values in parts.items():
        w = weights.get(name, 0.0)
        total = [a + w * float(v) for a, v in zip(total, values)]
    return total


def batch_z_scores(values: Sequence[float]) -> list[float]:
    """(x - mean) / population std over the batch, in float64; all 0 when every value is equal."""
    import torch

    x = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if len(x) < 2 or bool((x == x[0]).all()):
        return [0.0] * len(x)
    return ((x - x.mean()) / x.std(unbiased=False)).tolist()


def squash(parts: dict[str, Sequence[float]], weights: dict[str, float], temperature: float = 1.0) -> list[float]:
    """tanh(sum_i w_i * z_i / temperature), z_i each reward standardised over the batch.

    Rewards on different scales (a teacher log-likelihood of -40 next to a 0/1 correctness)
    then weigh as configured, and the tanh bounds how much one outlier counts.
    """
    normalised = {name: batch_z_scores(values) for name, values in parts.items()}
    return [math.tanh(v / temperature) for v in linear(normalised, weights)]
