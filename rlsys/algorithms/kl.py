"""Per-token KL estimators between the policy and a reference, from log-probs of sampled tokens.

With samples x ~ pi and log-ratio d = log pi(x) - log ref(x) (Schulman, "Approximating KL"):
k1 = d (unbiased, can be negative) and k3 = exp(-d) - 1 + d (unbiased, always >= 0).

k3 grows like exp(-d) where the policy has made a token much less likely than the
reference. Its value is bounded by clamping the estimate itself to [-clamp, clamp] (as
OpenRLHF and veRL do): beyond the bound the gradient is 0, never of the wrong sign. The
exponent is capped too, so the clamped branch never computes inf * 0 = nan.
"""

from __future__ import annotations

from typing import Literal

import torch

KL_CLAMP = 10.0


def kl_estimate(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    estimator: Literal["k1", "k3"] = "k3",
    clamp: float | None = KL_CLAMP,
) -> torch.Tensor:
    d = logp - ref_logp
    if estimator == "k1":
        kl = d
    elif estimator == "k3":
        # With a bound (< e^30), capping the exponent at 30 changes only values that the
        # bound clamps anyway, and keeps them finite.
        exponent = -d if clamp is None else torch.clamp(-d, max=30.0)
        kl = torch.exp(exponent) - 1.0 + d
    else:
        raise ValueError(f"unknown KL estimator {estimator!r}; use 'k1' or 'k3'")
    return kl if clamp is None else torch.clamp(kl, min=-clamp, max=clamp)
