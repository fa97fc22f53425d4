"""Direct preference optimisation: the losses (pure functions on sequence log-probs), the
pairing of sampled groups into preference rows, and the algorithm object.

Notation, per pair: pi_c, pi_r are the policy's log-probs of the chosen and rejected
answers (summed over their tokens), ref_c, ref_r the reference's, and

    h = (pi_c - ref_c) - (pi_r - ref_r)

the difference of the implicit rewards divided by beta. For IPO the log-probs are the
per-token means instead of sums (Azar et al. 2023 recommend the length-normalised form).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PreferenceLossOutput:
    losses: torch.Tensor  # [B]
    chosen_rewards: torch.Tensor  # [B] beta * (pi_c - ref_c), detached
    rejected_rewards: torch.Tensor  # [B]


def sigmoid_loss(h: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO (Rafailov et al. 2023), with conservative label smoothing eps (Mitchell 2023):
    -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h). At h = 0: ln 2."""
    return -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


def ipo_loss(h: torch.Tensor, beta: float) -> torch.Tensor:
    """IPO (Azar et al. 2023): (h - 1 / (2 beta))^2, h from per-token mean log-probs.
    At h = 0: 1 / (4 beta^2)."""
    return (h - 1.0 / (2.0 * beta)) ** 2


def hinge_loss(h: torch.Tensor, beta: float) -> torch.Tensor:
    """SLiC hinge (Zhao et al. 2023): max(0, 1 - beta h). At h = 0: 1."""
    return torch.relu(1.0 - beta * h)


def preference_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
                    loss: str, beta: float, label_smoothing: float = 0.0, nll_coef: float = 0.0) -> PreferenceLossOutput:
    """Per-pair losses and implicit rewards from summed log-probs [B] and token counts [B].

    `nll_coef` = alpha adds the chosen answer's per-token negative log-likelihood,
    alpha * (-pi_c / |y_c|) (RPO, Pang et al. 2024), which keeps DPO from lowering the
    likelihood of the chosen answers along with the rejected ones."""
    nll = -policy_chosen / chosen_tokens
    if loss == "ipo":  # per-token means
        policy_chosen, ref_chosen = policy_chosen / chosen_tokens, ref_chosen / chosen_tokens
        policy_rejected, ref_rejected = policy_rejected / rejected_tokens, ref_rejected / rejected_tokens
    chosen = policy_chosen - ref_chosen
    rejected = policy_rejected - ref_rejected
    h = chosen - rejected
    if loss == "sigmoid":
        losses = sigmoid_loss(h, beta, label_smoothing)
    elif loss == "ipo":
        losses = ipo_loss(h, beta)
    elif loss == "hinge":
        losses = hinge_loss(h, beta)
    else:
        raise ValueError(f"unknown preference loss {loss!r}; known: sigmoid, ipo, hinge")
    if nll_coef:
        losses = losses + nll_coef * nll
    return PreferenceLossOutput(losses, beta * chosen.detach(), beta * rejected.detach())


def best_worst_pairs(rewards: list[float], group_size: int, min_gap: float = 0.0) -> list[tuple[int, int]]:
    """(best, worst) sample indices of each group of `group_size` consecutive samples whose
    best and worst rewards differ by more than `min_gap`; the first sample wins a tie for
    best, the last a tie for worst."""
    pairs = []
    for start in range(0, len(rewards) - group_size + 1, group_size):
        group = list(range(start, start + group_size))
        best = max(group, key=lambda i: (rewards[i], -i))
        worst = min(group, key=lambda i: (rewards[i], -i))
        if rewards[best] - rewards[worst] > min_gap:
            pairs.append((best, worst))
    return pairs


class DPO:
    """Trains on preference pairs in `rlsys.loops.preference` (no advantages, no critic)."""

    loss = "dpo"
    needs_critic = False
    needs_reference = True
    needs_teacher_tokens = False
    mode = "preference"

    def __init__(self, cfg, reward_cfg=None) -> None:
        self.cfg = cfg

    def loss_kwargs(self) -> dict:
        return {"loss": self.cfg.loss, "beta": self.cfg.beta, "label_smoothing": self.cfg.label_smoothing,
                "nll_coef": self.cfg.nll_coef}
