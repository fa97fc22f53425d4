"""Distillation rewards: pure functions on per-token log-probs.

The teacher scores a student's sample; these turn its per-token log-probs (and the
student's own) into rewards:

- `reverse_kl_token_rewards`: MiniLLM's per-token reward log p_T(y_t) - log p_S(y_t), whose
  expectation under the student is minus the reverse KL(S || T) at that step;
- `token_returns`: the discounted return-to-go of per-token rewards (gamma 0: each token's
  own reward, as in on-policy distillation; gamma 1: MiniLLM's long-term return);
- `minillm_token_advantages`: a sequence advantage plus the whitened per-token return.

The sequence rewards and the combiners of named reward parts are in `rlsys.rewards`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlsys.algorithms.advantages import standardize




def reverse_kl_token_rewards(teacher_logprobs: Sequence[float], student_logprobs: Sequence[float]) -> list[float]:
    """log p_T(y_t) - log p_S(y_t) per token. Both must come from the same tokenization."""
    if len(teacher_logprobs) != len(student_logprobs):
        raise ValueError(
            f"per-token rewards need one teacher and one student log-prob per token, got "
            f"{len(teacher_logprobs)} and {len(student_logprobs)}: the tokenizers differ"
        )
    return [float(t) - float(s) for t, s in zip(teacher_logprobs, student_logprobs)]


def truncated_token_rewards(teacher_logprobs: Sequence[float], student_logprobs: Sequence[float]) -> list[float]:
    """`reverse_kl_token_rewards` when the teacher scored only a prefix (it drops the tail of
    a completion that does not fit its context): the unscored tail gets reward 0."""
    n = len(teacher_logprobs)
    if n > len(student_logprobs):
        raise ValueError(f"the teacher scored {n} tokens of a {len(student_logprobs)}-token completion")
    return reverse_kl_token_rewards(teacher_logprobs, student_logprobs[:n]) + [0.0] * (len(student_logprobs) - n)


def sequence_reverse_kl(teacher_sum: float, student_sum: float, n_tokens: int) -> float:
    """Per-token Monte-Carlo estimate of KL(S || T) from one sample of the student:
    (log p_S(y) - log p_T(y)) / |y|. Valid across tokenizers: both sums are of the same text."""
    return (student_sum - teacher_sum) / max(1, n_tokens)


def token_returns(rewards: Sequence[float], gamma: float = 0.0, length_normalize: bool = False) -> list[float]:
    """R_t = sum_{k>=t} gamma^(k-t) r_k; with `length_normalize`, divided by the number of
    terms summed (T - t), MiniLLM's normalisation that keeps long tails from dominating."""
    out = [0.0] * len(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running / (len(rewards) - t) if length_normalize else running
    return out






def _f64(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def whiten(values: Sequence[float]) -> list[float]:
    """Standardised over all values (population std); exactly 0 when they are all equal."""
    return standardize(_f64(values), unbiased=False, eps=0.0).tolist()


def minillm_token_advantages(
    sequence_advantages: Sequence[float],
    token_rewards: Sequence[Sequence[float]],
    coef: float = 1.0,
    gamma: float = 0.0,
    length_normalize: bool = False,
) -> list[list[float]]:
    """A_{i,t} = A_i + coef * whiten(R_{i,t}), the whitening over every token of the batch.

    `sequence_advantages` come from the sequence rewards (GRPO group normalisation);
    `token_rewards` are per-token rewards such as `reverse_kl_token_rewards`.
    """
    returns = [token_returns(r, gamma, length_normalize) for r in token_rewards]
    flat = whiten([v for row in returns for v in row])
    out, k = [], 0
    for adv, row in zip(sequence_advantages, returns):
        out.append([float(adv) + coef * flat[k + t] for t in range(len(row))])
        k += len(row)
    return out
