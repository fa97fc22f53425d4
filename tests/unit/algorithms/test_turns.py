"""Multi-turn returns and GAE over the model's tokens, against hand-worked numbers and a
brute-force loop that walks each trajectory's model tokens one by one."""

import random

import pytest
import torch

from rlsys.algorithms.turns import masked_gae, trajectory_return, turn_token_rewards


def test_trajectory_return_summed_and_discounted():
    assert trajectory_return([0.5, -0.25], 1.0, "sum") == 1.25
    # turns weigh 1, 0.9; the final reward sits on the last turn: 0.5 - 0.25 * 0.9 + 1.0 * 0.9
    assert trajectory_return([0.5, -0.25], 1.0, "discounted", gamma=0.9) == pytest.approx(1.175)
    assert trajectory_return([], 2.0, "discounted", gamma=0.5) == 2.0
    with pytest.raises(ValueError):
        trajectory_return([1.0], 0.0, "discounted", gamma=1.5)


def test_turn_rewards_sit_on_each_turns_last_sampled_token():
    got = turn_token_rewards([2, 6], [0.25, -1.0], 3.0, width=8)
    assert got.tolist() == [0, 0, 0.25, 0, 0, 0, 2.0, 0]


def _brute_gae(rewards, values, mask, gamma, lam):
    """The textbook recursion on the list of model-token positions, from the last back."""
    adv = [0.0] * len(rewards)
    positions = [t for t, m in enumerate(mask) if m]
    running = 0.0
    for k in range(len(positions) - 1, -1, -1):
        t = positions[k]
        next_v = values[positions[k + 1]] if k + 1 < len(positions) else 0.0
        delta = rewards[t] + gamma * next_v - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    ret = [adv[t] + values[t] if mask[t] else 0.0 for t in range(len(rewards))]
    return adv, ret


def test_gae_by_hand_across_an_environment_turn():
    # model tokens at 0, 1, then environment ids at 2, 3, then model tokens at 4; reward 1 at the end
    mask = torch.tensor([[1, 1, 0, 0, 1]])
    values = torch.tensor([[0.5, 0.25, 9.0, 9.0, 0.75]])  # values on environment ids are ignored
    rewards = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])
    adv, ret = masked_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # lam = gamma = 1: A_t = (sum of later rewards) - V_t over model tokens
    assert adv.tolist() == [[0.5, 0.75, 0.0, 0.0, 0.25]]
    assert ret.tolist() == [[1.0, 1.0, 0.0, 0.0, 1.0]]
    # lam = 0: one-step TD errors; token 1's next state is token 4's (the environment turn skipped)
    adv0, _ = masked_gae(rewards, values, mask, gamma=1.0, lam=0.0)
    assert adv0.tolist() == [[0.25 - 0.5, 0.75 - 0.25, 0.0, 0.0, 1.0 - 0.75]]


def test_gae_matches_the_brute_force_walk_on_random_trajectories():
    rng = random.Random(0)
    B, T = 6, 23
    mask = torch.tensor([[1 if rng.random() < 0.6 else 0 for _ in range(T)] for _ in range(B)])
    mask[0] = 0  # a row with no model token at all
    values = torch.randn(B, T, dtype=torch.float64)
    rewards = torch.randn(B, T, dtype=torch.float64) * mask
    for gamma, lam in [(1.0, 0.95), (0.9, 0.5), (0.99, 1.0)]:
        adv, ret = masked_gae(rewards, values, mask, gamma, lam)
        for b in range(B):
            want_adv, want_ret = _brute_gae(rewards[b].tolist(), values[b].tolist(), mask[b].tolist(), gamma, lam)
            assert adv[b].tolist() == pytest.approx(want_adv, abs=1e-12)
            assert ret[b].tolist() == pytest.approx(want_ret, abs=1e-12)


def test_a_reward_on_an_environment_token_is_refused():
    with pytest.raises(ValueError, match="did not sample"):
        masked_gae(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.tensor([[1, 0]]), 1.0, 1.0)
