"""Distillation rewards, combiners and the L_PT loss against hand-computed values."""

import math

import pytest
import torch

from rlsys.algorithms.distill import (
    whiten,
    minillm_token_advantages,
    reverse_kl_token_rewards,
    sequence_reverse_kl,
    token_returns,
    truncated_token_rewards,
)
from rlsys.rewards.combine import linear, squash
from rlsys.rewards.teacher import sequence_loglik as teacher_loglik
from rlsys.algorithms.losses import lm_loss, mix_lm_loss
from rlsys.eval.metrics import distill_metrics
from rlsys.rewards.registry import RewardSet
from rlsys.config import RewardTerm


def test_teacher_loglik_sum_mean_and_empty():
    assert teacher_loglik([-1.0, -2.0, -3.0], "sum") == -6.0
    assert teacher_loglik([-1.0, -2.0, -3.0], "mean") == -2.0
    assert teacher_loglik([], "mean") == 0.0 and teacher_loglik([], "sum") == 0.0


def test_reverse_kl_token_rewards_and_length_mismatch():
    assert reverse_kl_token_rewards([-1.0, -0.5], [-0.25, -2.0]) == [-0.75, 1.5]
    with pytest.raises(ValueError, match="tokenizers differ"):
        reverse_kl_token_rewards([-1.0], [-1.0, -2.0])
    assert truncated_token_rewards([-1.0], [-0.25, -2.0, -3.0]) == [-0.75, 0.0, 0.0]
    with pytest.raises(ValueError, match="scored 2 tokens of a 1-token"):
        truncated_token_rewards([-1.0, -1.0], [-1.0])
    assert sequence_reverse_kl(teacher_sum=-6.0, student_sum=-2.0, n_tokens=2) == 2.0


def test_token_returns_discounted_and_length_normalised():
    assert token_returns([1.0, 2.0, 3.0], gamma=0.0) == [1.0, 2.0, 3.0]
    assert token_returns([1.0, 2.0, 3.0], gamma=1.0) == [6.0, 5.0, 3.0]
    assert token_returns([1.0, 2.0, 3.0], gamma=0.5) == [2.75, 3.5, 3.0]
    assert token_returns([1.0, 2.0, 3.0], gamma=0.5, length_normalize=True) == pytest.approx([2.75 / 3, 1.75, 3.0])
    assert token_returns([], gamma=1.0) == []


def test_linear_and_squash_combiners():
    parts = {"a": [1.0, 0.0], "b": [0.0, 2.0]}
    assert linear(parts, {"a": 1.0, "b": 0.5}) == [1.0, 1.0]
    # z(a) = [1, -1], z(b) = [-1, 1]; 1*z(a) + 0.5*z(b) = [0.5, -0.5]
    assert squash(parts, {"a": 1.0, "b": 0.5}) == pytest.approx([math.tanh(0.5), math.tanh(-0.5)])
    assert squash(parts, {"a": 1.0, "b": 0.5}, temperature=2.0) == pytest.approx([math.tanh(0.25), math.tanh(-0.25)])
    # A constant reward carries no information after standardising.
    assert squash({"c": [3.0, 3.0]}, {"c": 1.0}) == [0.0, 0.0]


def test_minillm_token_advantages_hand_computed():
    out = minillm_token_advantages([1.0, -1.0], [[0.0, -2.0], [-1.0]], coef=1.0, gamma=0.0)
    w = 1.0 / math.sqrt(2.0 / 3.0)  # returns [0, -2, -1]: mean -1, population std sqrt(2/3)
    assert out[0] == pytest.approx([1.0 + w, 1.0 - w])
    assert out[1] == pytest.approx([-1.0])
    half = minillm_token_advantages([0.0, 0.0], [[0.0, -2.0], [-1.0]], coef=0.5, gamma=0.0)
    assert half[0] == pytest.approx([0.5 * w, -0.5 * w])


def test_distill_metrics_token_weighted():
    m = distill_metrics([[-1.0, -2.0], [-3.0]], [[-0.5, -1.0], [-1.0]])
    assert m["teacher_logprob_per_token"] == -2.0
    assert m["student_logprob_per_token"] == pytest.approx(-2.5 / 3)
    assert m["reverse_kl"] == pytest.approx(3.5 / 3)


def test_lm_loss_and_its_weighted_mix():
    lp = torch.tensor([[-1.0, -2.0], [-3.0, -9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert float(lm_loss(lp, mask)) == pytest.approx(2.0)
    policy = torch.tensor(0.25)
    assert float(mix_lm_loss(policy, lm_loss(lp, mask), 0.5)) == pytest.approx(0.25 + 0.5 * 2.0)
    assert mix_lm_loss(policy, None, 0.5) is policy
    assert mix_lm_loss(policy, lm_loss(lp, mask), 0.0) is policy


def test_teacher_loglik_reward_term_and_squash_combiner():
    rs = RewardSet([RewardTerm(name="teacher_loglik", weight=1.0, kwargs={"normalize": "sum"}),
                    RewardTerm(name="correctness", weight=0.0)])
    total, parts = rs.score(["p", "p"], ["#### 3", "#### 4"], ["3", "3"], teacher_logprobs=[[-1.0, -1.0], [-0.5]])
    assert total == [-2.0, -0.5]
    assert parts["correctness"] == [1.0, 0.0]
    with pytest.raises(ValueError, match="needs a teacher"):
        rs.score(["p"], ["x"], ["1"])
    sq = RewardSet([RewardTerm(name="teacher_loglik"), RewardTerm(name="correctness")], combiner="squash")
    total, _ = sq.score(["p", "p"], ["#### 3", "#### 4"], ["3", "3"], teacher_logprobs=[[-2.0], [-1.0]])
    # z(teacher) = [-1, 1], z(correct) = [1, -1]: equal weights cancel.
    assert total == pytest.approx([0.0, 0.0])


@pytest.mark.parametrize("value", [1.0 + 0.5 + 0.1, 0.6, -40.1, 0.1 + 0.2])
def test_constant_rewards_standardise_to_exactly_zero(value):
    """Values that are equal but not exactly representable: the float mean is off by an
    ulp, which a naive (x - mean) / std turns into +-1."""
    assert squash({"c": [value] * 7}, {"c": 1.0}) == [0.0] * 7
    # A constant part adds nothing next to a varying one: z(a) = [1, -1] only.
    mixed = squash({"c": [value] * 2, "a": [1.0, 0.0]}, {"c": 1.0, "a": 1.0})
    assert mixed == pytest.approx([math.tanh(1.0), math.tanh(-1.0)], rel=1e-12)
    assert whiten([value] * 5) == [0.0] * 5
    # MiniLLM: constant per-token rewards over the whole batch whiten to 0, leaving A_i.
    out = minillm_token_advantages([0.5, -0.5], [[value, value], [value]], coef=1.0, gamma=0.0)
    assert out == [[0.5, 0.5], [-0.5]]


def test_random_constants_whiten_to_zero():
    import random

    gen = random.Random(3)
    for _ in range(100):
        c = gen.uniform(-100, 100)
        n = gen.randint(2, 40)
        assert set(whiten([c] * n)) == {0.0}
        assert set(squash({"t": [c] * n}, {"t": 2.0})) == {0.0}
