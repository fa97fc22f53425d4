"""PPO's per-token advantages: rewards placed on completion tokens, an optional per-token KL
penalty, and generalised advantage estimation (Schulman et al., 2016).

Tensors are [B, T] over completion tokens with a mask (True for real tokens, right-padded).
A sequence reward lands on the last completion token: the end-of-sequence token of a
finished sample (vLLM's token ids include it), the last generated token of a truncated
one. Both are treated as terminal (no bootstrap from a next state), as OpenRLHF and veRL do
for completions cut at `max_new_tokens`.
"""

from __future__ import annotations

import torch

from rlsys.algorithms.advantages import standardize


def rewards_at_last_token(sequence_rewards: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[B, width] zeros with each sequence's reward at position length - 1 (nothing for an
    empty completion)."""
    out = torch.zeros(len(lengths), width, dtype=torch.float64)
    rows = torch.nonzero(lengths > 0).squeeze(-1)
    out[rows, lengths[rows] - 1] = sequence_rewards.to(torch.float64)[rows]
    return out


def kl_penalized_rewards(rewards: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> torch.Tensor:
    """r_t - beta * (log pi(y_t) - log ref(y_t)) on real tokens (`kl_in_reward`)."""
    return (rewards - beta * (logp - ref_logp)) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (advantages + values), 0 on padding.

    delta_t = r_t + gamma * V_{t+1} - V_t (V after the last real token is 0);
    A_t = delta_t + gamma * lam * A_{t+1}. lam = 1 gives the discounted reward-to-go minus
    V_t, lam = 0 the one-step TD error."""
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma ({gamma}) and lam ({lam}) must lie in [0, 1]")
    m = mask.to(torch.float64)
    r, v = rewards.to(torch.float64) * m, values.to(torch.float64) * m
    advantages = torch.zeros_like(r)
    running = torch.zeros(r.shape[0], dtype=torch.float64)
    for t in range(r.shape[1] - 1, -1, -1):
        next_value = v[:, t + 1] if t + 1 < r.shape[1] else torch.zeros_like(running)
        delta = r[:, t] + gamma * next_value - v[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        advantages[:, t] = running
    return advantages, (advantages + v) * m


def whiten_tokens(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Advantages standardised over every real token of the batch (population std), 0 on
    padding; exactly 0 when they are all equal."""
    keep = mask.bool()
    out = torch.zeros_like(advantages, dtype=torch.float64)
    out[keep] = standardize(advantages[keep], unbiased=False, eps=1e-8)
    return out
