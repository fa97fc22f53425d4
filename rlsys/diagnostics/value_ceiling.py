"""How much of a batch's return variance a critic that knew each prompt's pass rate could
explain, from extra samples of the same prompts: a yardstick for PPO's `ppo/explained_variance`.

With a sequence reward and gamma = lambda = 1 every token's return is its sample's reward, so
the value of a state can only explain what is already decided there. Before the answer is
written that is mostly the prompt's pass rate under the current policy (a critic that reads
the reply's own steps could know a little more); once the final answer is on the page, a
critic that checks the arithmetic knows the reward. Each group below holds the
`batch` samples a critic is scored on and further draws of the same prompt whose mean reward
stands in for the pass rate (leave the batch out, so the estimate is not fitted to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsys.algorithms.value import explained_variance


@dataclass(frozen=True)
class ScoredSample:
    reward: float
    tokens: int
    """Completion tokens, i.e. states with a value (the state before each token)."""
    tokens_after_answer: int = 0
    """Of those, states whose text already holds the whole final answer."""


@dataclass(frozen=True)
class Ceiling:
    prompt_only_token: float
    """Token-weighted explained variance of V = the prompt's pass rate at every state."""
    prompt_only_sequence: float
    """The same with one value per sample (the first state's)."""
    answer_aware_token: float
    """V = the pass rate before the final answer is written, the sample's own reward after it."""
    share_after_answer: float
    """Share of states that come after the final answer."""


def _explained(pairs: list[tuple[float, float, int]]) -> float:
    """PPO's explained variance over (return, value, states) triples, one entry per state."""
    counts = torch.tensor([w for _, _, w in pairs])
    returns = torch.tensor([r for r, _, _ in pairs], dtype=torch.float64).repeat_interleave(counts)
    values = torch.tensor([v for _, v, _ in pairs], dtype=torch.float64).repeat_interleave(counts)
    return explained_variance(values, returns, torch.ones_like(returns, dtype=torch.bool))


def value_ceiling(groups: list[tuple[list[ScoredSample], list[float]]]) -> Ceiling:
    """`groups`: per prompt, (the batch's samples, rewards of further draws of that prompt)."""
    token, sequence, aware = [], [], []
    states = after = 0
    for batch, draws in groups:
        if not draws:
            raise ValueError("every prompt needs at least one further draw to estimate its pass rate")
        rate = sum(draws) / len(draws)
        for s in batch:
            if s.tokens_after_answer > s.tokens:
                raise ValueError(f"tokens_after_answer ({s.tokens_after_answer}) > tokens ({s.tokens})")
            token.append((s.reward, rate, s.tokens))
            sequence.append((s.reward, rate, 1))
            aware += [(s.reward, rate, s.tokens - s.tokens_after_answer), (s.reward, s.reward, s.tokens_after_answer)]
            states += s.tokens
            after += s.tokens_after_answer
    if not states:
        raise ValueError("no completion tokens to score")
    return Ceiling(_explained(token), _explained(sequence), _explained(aware),
                   after / states)
