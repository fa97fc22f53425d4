"""Advantage estimators on per-sequence rewards, and the standardisation they share.

A set of values that are all equal carries no signal and must standardise to exactly 0.
Floating-point means of equal values that are not exactly representable (1.6 = 1 + 0.5
+ 0.1, a constant teacher log-likelihood of -40.1) are off by an ulp, so a naive
(x - mean) / (std + eps) turns rounding noise of about 1e-8 into advantages of 0.1 to
0.75. `standardize` therefore tests equality exactly (max == min) and works in float64.
"""

from __future__ import annotations

import torch


def standardize(
    values: torch.Tensor, dim: int = -1, unbiased: bool = True, eps: float = 1e-6, scale: bool = True
) -> torch.Tensor:
    """(x - mean) / (std + eps) along `dim` in float64; exactly 0 where every value along
    `dim` is equal (and for a single value). With `scale=False` only the mean is removed."""
    x = values.to(torch.float64)
    if x.shape[dim] == 0:
        return x
    constant = x.amax(dim=dim, keepdim=True) == x.amin(dim=dim, keepdim=True)
    centred = x - x.mean(dim=dim, keepdim=True)
    if scale and x.shape[dim] > 1:
        std = x.std(dim=dim, keepdim=True, unbiased=unbiased)
        centred = centred / (std + eps)
    return torch.where(constant, torch.zeros_like(centred), centred)


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, std_normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """Group-relative advantages: (r - mean(group)) / (std(group) + eps), float64.

    `rewards` is flat, ordered group by group (G consecutive samples share a prompt).
    The standard deviation is the unbiased sample std, as in DeepSeekMath's GRPO; with
    `std_normalize=False` only the group mean is subtracted (Dr. GRPO). A group whose
    rewards are all equal gets exactly 0.
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be flat with a length divisible by group_size={group_size}, "
            f"got shape {tuple(rewards.shape)}"
        )
    grouped = rewards.view(-1, group_size)
    return standardize(grouped, dim=1, unbiased=True, eps=eps, scale=std_normalize).reshape(-1)


def informative_samples(rewards: list[float], group_size: int, multiple: int) -> list[int]:
    """Indices (in order) of the samples whose group's rewards differ: the only ones a
    group-relative advantage gives a gradient when nothing else (a KL term) does. Topped up
    with samples of equal-reward groups, in order, to a multiple of `multiple` (the learner's
    mini-batch), so that no optimiser step is short. When no group differs, the first
    mini-batch alone: no sample has an advantage, and one step keeps the KL term's pull
    without paying a pass over the whole batch (a task the policy has mastered costs little)."""
    if len(rewards) % group_size or multiple < 1:
        raise ValueError(f"{len(rewards)} rewards do not form groups of {group_size} (or multiple={multiple} < 1)")
    groups = [list(range(g, g + group_size)) for g in range(0, len(rewards), group_size)]
    mixed = [i for g in groups if max(rewards[j] for j in g) != min(rewards[j] for j in g) for i in g]
    if not mixed:
        return list(range(min(multiple, len(rewards))))
    uniform = sorted(set(range(len(rewards))) - set(mixed))
    short = -len(mixed) % multiple
    return sorted(mixed + uniform[:short])
