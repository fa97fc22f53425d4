"""Per-token KL estimators between the policy and a reference, from log-probs of sampled tokens.

With samples x ~ pi and log-ratio d = log pi(x) - log ref(x) (Schulman, "Approximating KL"):
k1 = d (unbiased, can be negative) and k3 = exp(-d) - 1 + d (unbiased, always >= 0).
"""

from __future__ import annotations

from typing import Literal

import torch


def kl_estimate(
    logp: torch.Tensor, ref_logp: torch.Tensor, estimator: Literal["k1", "k3"] = "k3"
) -> torch.Tensor:
    d = logp - ref_logp
    if estimator == "k1":
        return d
    if estimator == "k3":
        # Clamp keeps exp finite where the policy has moved far from the reference.
        return torch.exp(torch.clamp(-d, max=20.0)) - 1.0 + d
    raise ValueError(f"unknown KL estimator {estimator!r}; use 'k1' or 'k3'")
