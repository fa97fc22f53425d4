"""Policy losses on per-token log-probs of completion tokens (flat or [B, T] with a mask)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlsys.algorithms.kl import kl_estimate


@dataclass
class PolicyLossOutput:
    loss: torch.Tensor
    """Sum of per-token losses divided by `normalizer` (a token-mean when it is the token count)."""
    clip_fraction: torch.Tensor
    kl: torch.Tensor
    """Mean per-token KL estimate to the reference (0 when no reference is given)."""
    ratio_mean: torch.Tensor


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum()


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    kl_beta: float = 0.0,
    kl_estimator: Literal["k1", "k3"] = "k3",
    normalizer: float | torch.Tensor | None = None,
) -> PolicyLossOutput:
    """PPO-clip surrogate with an optional KL penalty to a reference, token-mean.

    per token: -min(r * A, clip(r, 1 - eps, 1 + eps) * A) + beta * KL(pi || ref),
    r = exp(logp - old_logp). `advantages` broadcasts against `logp` (one value per
    sequence as [B, 1], or per token as [B, T]). The loss is the masked sum divided by
    `normalizer` (default: the number of masked tokens), which lets data-parallel
    callers normalise by a token count larger than this micro-batch.
    """
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).expand_as(logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    per_token = -torch.minimum(unclipped, clipped)
    n_tokens = mask.sum().clamp(min=1.0)
    kl_mean = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if ref_logp is not None:
        kl = kl_estimate(logp, ref_logp, kl_estimator)
        kl_mean = masked_sum(kl, mask).detach() / n_tokens
        if kl_beta:
            per_token = per_token + kl_beta * kl
    denom = n_tokens if normalizer is None else normalizer
    loss = masked_sum(per_token, mask) / denom
    with torch.no_grad():
        was_clipped = (unclipped > clipped).to(logp.dtype)
        clip_fraction = masked_sum(was_clipped, mask) / n_tokens
        ratio_mean = masked_sum(ratio, mask) / n_tokens
    return PolicyLossOutput(loss=loss, clip_fraction=clip_fraction, kl=kl_mean, ratio_mean=ratio_mean)


def lm_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood: the plain language-modelling loss (L_PT)."""
    mask = mask.to(logprobs.dtype)
    return -(logprobs * mask).sum() / mask.sum().clamp(min=1.0)


def mix_lm_loss(policy_loss: torch.Tensor, lm: torch.Tensor | None, coef: float) -> torch.Tensor:
    """The learner's objective: L_RL + coef * L_PT (L_PT omitted when coef is 0)."""
    return policy_loss if lm is None or coef == 0 else policy_loss + coef * lm
