"""The top-k / top-p filter vLLM samples through, applied to the learner's logits.

With `rollout.top_k` or `rollout.top_p < 1` vLLM samples from softmax(logits / T) restricted
to the kept tokens and renormalised, and reports those (processed) log-probs. The learner
must measure the same distribution, or every PPO ratio starts at the kept mass Z <= 1 (not
1), TIS weights are capped at Z and the mismatch metrics report the truncation as noise.

vLLM's order and tie rule (vllm/v1/sample/ops/topk_topp_sampler.py): temperature first, then
top-k keeps every token whose logit is at least the k-th largest (ties at the k-th value are
kept), then top-p over what top-k kept drops the smallest tokens while the mass of those
dropped stays at most 1 - p, always keeping the largest one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingFilter:
    top_k: int = 0
    """Keep the k most likely tokens (0: all)."""
    top_p: float = 1.0
    """Keep the smallest set of most likely tokens whose mass reaches p (1: all)."""

    @property
    def active(self) -> bool:
        return self.top_k > 0 or self.top_p < 1.0


@torch.no_grad()
def kept_tokens(logits: torch.Tensor, keep: SamplingFilter) -> torch.Tensor:
    """[N, V] bool: the tokens vLLM may sample from each row of (temperature-scaled) logits."""
    kept = torch.ones_like(logits, dtype=torch.bool)
    if 0 < keep.top_k < logits.shape[-1]:
        kth = logits.topk(keep.top_k, dim=-1).values[:, -1:]
        kept &= logits >= kth
    if keep.top_p < 1.0:
        masked = logits.masked_fill(~kept, float("-inf"))
        ordered, order = masked.sort(dim=-1)  # ascending, as vLLM
        mass_below = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = mass_below <= 1.0 - keep.top_p
        drop[:, -1] = False
        kept &= ~torch.zeros_like(drop).scatter(-1, order, drop)
    return kept
