"""Advantage estimators on per-sequence rewards."""

from __future__ import annotations

import torch


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, std_normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """Group-relative advantages: (r - mean(group)) / (std(group) + eps).

    `rewards` is flat, ordered group by group (G consecutive samples share a prompt).
    The standard deviation is the unbiased sample std, as in DeepSeekMath's GRPO; with
    `std_normalize=False` only the group mean is subtracted (Dr. GRPO).
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be flat with a length divisible by group_size={group_size}, "
            f"got shape {tuple(rewards.shape)}"
        )
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if std_normalize and group_size > 1:
        std = grouped.std(dim=1, keepdim=True)
        # A group whose rewards are all equal carries no signal: 0, not 0/0.
        centred = torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))
    return centred.reshape(-1)
