"""Truncated importance sampling (TIS) between the sampler and the learner's old policy.

The samples come from vLLM's engine (an older weight version when rollouts run ahead, and
always a different kernel), while the PPO ratio's denominator is the learner's old policy.
Each token's policy-gradient term is weighted by w = min(pi_old / pi_sampler, cap): the
sampler's bias is corrected and the variance stays bounded by `cap` (Yao et al., 2025,
"Your efficient RL framework secretly brings you off-policy RL training").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OldPolicy:
    """How the learner gets the ratio's denominator (see `registry.old_policy_source`) and
    the TIS cap between it and the sampler (None: no correction)."""

    source: str = "learner"
    tis_cap: float | None = None


@dataclass
class TISWeights:
    weights: torch.Tensor  # [B, T], 0 outside the mask
    mean_weight: float
    clip_fraction: float
    """Share of tokens whose ratio exceeded the cap."""
    mismatch_kl: float
    """Mean per-token KL(sampler || old) estimate, k3: (r - 1) - log r with r = pi_old / pi_sampler."""
    tokens: int


@torch.no_grad()
def tis_weights(old_logp: torch.Tensor, sampling_logp: torch.Tensor, mask: torch.Tensor, cap: float) -> TISWeights:
    mask_f = mask.to(torch.float64)
    log_ratio = (old_logp.double() - sampling_logp.double()) * mask_f
    ratio = torch.exp(log_ratio)
    weights = torch.clamp(ratio, max=cap) * mask_f
    n = float(mask_f.sum())
    denom = max(n, 1.0)
    return TISWeights(
        weights=weights.to(old_logp.dtype),
        mean_weight=float(weights.sum()) / denom,
        clip_fraction=float(((ratio > cap).double() * mask_f).sum()) / denom,
        mismatch_kl=float((((ratio - 1.0) - log_ratio) * mask_f).sum()) / denom,
        tokens=int(n),
    )
