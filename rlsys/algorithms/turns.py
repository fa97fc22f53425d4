"""Rewards and advantages over multi-turn trajectories.

A trajectory is one token sequence after its first prompt: the model's sampled turns (loss
mask 1) with template and environment ids between them (loss mask 0). Its rewards come per
turn (an environment's step rewards) and at the end (the reward functions on the final
answer). GRPO needs one number per trajectory; PPO needs a reward per token and GAE that runs
over the model's tokens only: environment tokens are not actions, so they take no value step
and do not cut the chain of TD errors between one model turn and the next.
"""

from __future__ import annotations

from typing import Literal

import torch

from rlsys.algorithms.gae import gae

TurnReturn = Literal["sum", "discounted"]


def trajectory_return(turn_rewards: list[float], final_reward: float, mode: TurnReturn = "sum",
                      gamma: float = 1.0) -> float:
    """One number for a trajectory: its per-turn rewards and the final reward, summed, or
    discounted per turn (turn k's reward weighs gamma**k, the final reward that of the last
    turn)."""
    if mode == "sum":
        return float(sum(turn_rewards) + final_reward)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma ({gamma}) must lie in [0, 1]")
    last = max(len(turn_rewards) - 1, 0)
    return float(sum(r * gamma**k for k, r in enumerate(turn_rewards)) + final_reward * gamma**last)


def turn_token_rewards(turn_ends: list[int], turn_rewards: list[float], final_reward: float,
                       width: int) -> torch.Tensor:
    """[width] per-token rewards over a trajectory's ids: each turn's reward on the last id
    the model sampled in that turn, the final reward added on the last turn's."""
    if len(turn_ends) != len(turn_rewards):
        raise ValueError(f"{len(turn_ends)} turn ends for {len(turn_rewards)} turn rewards")
    out = torch.zeros(width, dtype=torch.float64)
    for end, r in zip(turn_ends, turn_rewards):
        out[end] += r
    if turn_ends:
        out[turn_ends[-1]] += final_reward
    return out


def masked_gae(rewards: torch.Tensor, values: torch.Tensor, loss_mask: torch.Tensor, gamma: float,
               lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over the positions where `loss_mask` is 1, as if the other positions were not there.

    [B, T] tensors. The model's tokens of each row are taken out in order, `gae` runs on them
    (the value after the last of them is 0: the trajectory ends), and the advantages and
    returns are put back; every masked-out position gets 0. A reward on a masked-out
    position is an error, not silently dropped."""
    keep = loss_mask.bool()
    if (rewards.to(torch.float64)[~keep] != 0).any():
        raise ValueError("a reward sits on a token the model did not sample (loss mask 0)")
    counts = keep.sum(dim=1)
    width = int(counts.max()) if counts.numel() else 0
    # each kept position's index among its row's kept positions
    slots = (torch.cumsum(keep.long(), dim=1) - 1).clamp(min=0)
    packed_r = torch.zeros(rewards.shape[0], width, dtype=torch.float64)
    packed_v = torch.zeros_like(packed_r)
    packed_m = torch.arange(width).unsqueeze(0) < counts.unsqueeze(1)
    r_rows, r_cols = torch.nonzero(keep, as_tuple=True)
    packed_r[r_rows, slots[r_rows, r_cols]] = rewards.to(torch.float64)[r_rows, r_cols]
    packed_v[r_rows, slots[r_rows, r_cols]] = values.to(torch.float64)[r_rows, r_cols]
    adv, ret = gae(packed_r, packed_v, packed_m, gamma, lam)
    advantages = torch.zeros(rewards.shape, dtype=torch.float64)
    returns = torch.zeros_like(advantages)
    advantages[r_rows, r_cols] = adv[r_rows, slots[r_rows, r_cols]]
    returns[r_rows, r_cols] = ret[r_rows, slots[r_rows, r_cols]]
    return advantages, returns
