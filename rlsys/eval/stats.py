"""Uncertainty of evaluation numbers: normal-approximation intervals for means of per-example
scores, percentile-bootstrap intervals for corpus-level metrics (BLEU, chrF, perplexity), and the
unbiased pass@k estimator."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

Z95 = 1.959963984540054


@dataclass
class Estimate:
    """A metric's value over `n` examples and its 95% interval (None where none applies)."""

    value: float
    n: int
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """`value [low, high]`, three decimals (four significant digits for large values)."""
        def num(x: float) -> str:
            return f"{x:.4g}" if abs(x) >= 1000 else f"{x:.3f}"

        if self.low is None or self.high is None:
            return num(self.value)
        return f"{num(self.value)} [{num(self.low)}, {num(self.high)}]"


def wilson_ci(successes: int, n: int) -> Estimate:
    """A proportion's Wilson score interval: stays inside [0, 1] and is not zero-width at 0 or
    n successes, unlike mean ± 1.96 SE (what small models' rare successes need)."""
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return Estimate(p, n, max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values: Sequence[float]) -> Estimate:
    """Mean with a 95% interval: Wilson's for 0/1 scores (a proportion), else mean ± 1.96
    standard errors (sample standard deviation, n - 1)."""
    n = len(values)
    if n == 0:
        return Estimate(float("nan"), 0)
    mean = sum(values) / n
    if all(v in (0.0, 1.0) for v in values):
        return wilson_ci(int(sum(values)), n)
    if n == 1:
        return Estimate(mean, 1)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = Z95 * math.sqrt(var / n)
    return Estimate(mean, n, mean - half, mean + half)


def bootstrap_ci(rows: Sequence, metric: Callable[[Sequence], float], resamples: int = 200,
                 seed: int = 0) -> Estimate:
    """`metric(rows)` with the 2.5th/97.5th percentiles of the metric over `resamples` resamples
    of the rows drawn with replacement (seeded: the same rows give the same interval)."""
    n = len(rows)
    value = metric(rows)
    if n < 2:
        return Estimate(value, n)
    rng = random.Random(seed)
    stats = sorted(metric([rows[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    low = stats[int(0.025 * (resamples - 1))]
    high = stats[int(math.ceil(0.975 * (resamples - 1)))]
    return Estimate(value, n, low, high)


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (of which
    `correct` are right) is right: 1 - C(n - c, k) / C(n, k) (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)
