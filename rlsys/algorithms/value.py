"""The critic's loss and how well it explains the returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ValueLossOutput:
    loss: torch.Tensor
    """Token mean of 0.5 * max((V - R)^2, (V_clipped - R)^2)."""
    clip_fraction: torch.Tensor
    """Share of tokens where the clipped error was the larger one."""


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float | None = 0.2, total_tokens: float | None = None
                       ) -> ValueLossOutput:
    """PPO's value loss; V_clipped = V_old + clamp(V - V_old, -clip, clip) keeps one update
    from moving a value far from the one the advantages were computed with. The sum is
    divided by `total_tokens` (the global mini-batch's, for a micro-batch's share) or by this
    batch's real tokens."""
    m = mask.to(values.dtype)
    n = m.sum().clamp(min=1.0)
    denominator = total_tokens if total_tokens is not None else n
    unclipped = (values - returns) ** 2
    if clip is None:
        return ValueLossOutput(0.5 * (unclipped * m).sum() / denominator, torch.zeros((), dtype=values.dtype))
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * (torch.maximum(unclipped, clipped) * m).sum() / denominator
    with torch.no_grad():
        fraction = ((clipped > unclipped).to(values.dtype) * m).sum() / n
    return ValueLossOutput(loss, fraction)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R) over real tokens: 1 for a perfect critic, 0 for one that
    predicts the mean, negative for worse. NaN when the returns do not vary."""
    keep = mask.bool()
    r, v = returns[keep].double(), values[keep].double()
    var_r = r.var(unbiased=False)
    if r.numel() == 0 or var_r == 0:
        return float("nan")
    return float(1.0 - (r - v).var(unbiased=False) / var_r)
