"""Policy losses on per-token log-probs of completion tokens ([B, T] with a mask), and how
per-token losses are averaged into one number.

Loss aggregation (`loss_agg`), over a whole optimiser mini-batch on every learner rank:
- `token_mean`: sum_i sum_t l_it / sum_i |y_i|. Every token weighs the same, so long
  completions are not down-weighted (DAPO; TRL's "dapo" loss). The default.
- `seq_mean_token_mean`: (1/N) sum_i (1/|y_i|) sum_t l_it, the GRPO paper's form: every
  sequence weighs the same, tokens of long ones less.
- `seq_mean_token_sum_norm`: sum_i sum_t l_it / (N * L_max), Dr. GRPO: a constant
  denominator (L_max = rollout.max_new_tokens), no length bias from the normaliser.
The totals (tokens, sequences) are of the global mini-batch, so K ranks compute exactly
the loss one rank would on the same batch; `aggregate` returns one micro-batch's share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from rlsys.algorithms.kl import KL_CLAMP, kl_estimate

LossAgg = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


@dataclass
class PolicyLossOutput:
    loss: torch.Tensor
    """This micro-batch's share of the aggregated mini-batch loss (see `aggregate`)."""
    clip_fraction: torch.Tensor
    kl: torch.Tensor
    """Mean per-token KL estimate to the reference (0 when no reference is given)."""
    ratio_mean: torch.Tensor
    n_tokens: int
    approx_kl: torch.Tensor | float = 0.0
    """Mean per-token KL(pi_old || pi) estimate, (r - 1) - log r: how far this step moved the policy."""


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum()


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: LossAgg = "token_mean",
    total_tokens: float | None = None,
    total_sequences: float | None = None,
    max_tokens: int | None = None,
) -> torch.Tensor:
    """This micro-batch's share of the mini-batch loss; the totals default to this batch's own
    (a micro-batch that is the whole mini-batch)."""
    mask = mask.to(per_token.dtype)
    tokens = total_tokens if total_tokens is not None else float(mask.sum().clamp(min=1.0))
    sequences = total_sequences if total_sequences is not None else float(per_token.shape[0])
    if mode == "token_mean":
        return masked_sum(per_token, mask) / tokens
    if mode == "seq_mean_token_mean":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_seq.sum() / sequences
    if mode == "seq_mean_token_sum_norm":
        if not max_tokens:
            raise ValueError("loss_agg=seq_mean_token_sum_norm needs max_tokens (rollout.max_new_tokens)")
        return masked_sum(per_token, mask) / (sequences * max_tokens)
    raise ValueError(f"unknown loss_agg {mode!r}; use token_mean, seq_mean_token_mean or seq_mean_token_sum_norm")


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    kl_beta: float = 0.0,
    kl_estimator: Literal["k1", "k3"] = "k3",
    kl_clamp: float | None = KL_CLAMP,
    loss_agg: LossAgg = "token_mean",
    total_tokens: float | None = None,
    total_sequences: float | None = None,
    max_tokens: int | None = None,
    is_weights: torch.Tensor | None = None,
) -> PolicyLossOutput:
    """PPO-clip surrogate with an optional KL penalty to a reference.

    per token: -min(r * A, clip(r, 1 - eps, 1 + eps) * A) + beta * KL(pi || ref),
    r = exp(logp - old_logp). `advantages` broadcasts against `logp` (one value per
    sequence as [B, 1], or per token as [B, T]). The per-token losses are averaged by
    `aggregate` with `loss_agg` over the global totals given. `is_weights` ([B, T], no
    gradient) multiplies each token's surrogate term: truncated importance sampling between
    the sampler and the old policy (rlsys.algorithms.tis); the KL term is not reweighted.
    """
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).expand_as(logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if is_weights is not None:
        per_token = per_token * is_weights.to(per_token.dtype)
    n_tokens = mask.sum().clamp(min=1.0)
    kl_mean = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if ref_logp is not None:
        kl = kl_estimate(logp, ref_logp, kl_estimator, kl_clamp)
        kl_mean = masked_sum(kl, mask).detach() / n_tokens
        if kl_beta:
            per_token = per_token + kl_beta * kl
    loss = aggregate(per_token, mask, loss_agg, total_tokens, total_sequences, max_tokens)
    with torch.no_grad():
        was_clipped = (unclipped > clipped).to(logp.dtype)
        clip_fraction = masked_sum(was_clipped, mask) / n_tokens
        ratio_mean = masked_sum(ratio, mask) / n_tokens
        approx_kl = masked_sum((ratio - 1.0) - (logp - old_logp), mask) / n_tokens
    return PolicyLossOutput(loss=loss, clip_fraction=clip_fraction, kl=kl_mean, ratio_mean=ratio_mean,
                            n_tokens=int(mask.sum()), approx_kl=approx_kl)


LOSSES = {"ppo_clip": grpo_loss}
"""Policy losses by the name an algorithm gives (`Algorithm.loss`)."""


def lm_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood: the plain language-modelling loss (L_PT)."""
    mask = mask.to(logprobs.dtype)
    return -(logprobs * mask).sum() / mask.sum().clamp(min=1.0)


def mix_lm_loss(policy_loss: torch.Tensor, lm: torch.Tensor | None, coef: float) -> torch.Tensor:
    """The learner's objective: L_RL + coef * L_PT (L_PT omitted when coef is 0)."""
    return policy_loss if lm is None or coef == 0 else policy_loss + coef * lm
