import random
import statistics

import pytest
import torch

from rlsys.algorithms.advantages import grpo_advantages, standardize


def test_group_normalised_by_hand():
    # group 1: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(1/3)
    # group 2: rewards 2, 2, 2, 2 -> all zero advantage
    adv = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0]), group_size=4, eps=0.0)
    s = (1 / 3) ** 0.5
    assert adv.tolist() == pytest.approx([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0], abs=1e-12)


def test_matches_python_statistics_on_uneven_rewards():
    rewards = [1.6, 0.6, 0.1, 1.6, -40.1, -3.25, -40.1, 7.0]
    adv = grpo_advantages(torch.tensor(rewards, dtype=torch.float64), group_size=4, eps=0.0).tolist()
    for g in range(2):
        group = rewards[4 * g : 4 * g + 4]
        mean, std = statistics.fmean(group), statistics.stdev(group)
        assert adv[4 * g : 4 * g + 4] == pytest.approx([(r - mean) / std for r in group], rel=1e-12)


# 1.6 = correctness 1 + format 0.5 + reasoning 0.1; a constant teacher log-likelihood -40.1.
@pytest.mark.parametrize("value", [1.0 + 0.5 + 0.1, 0.6, 0.1 + 0.2, -40.1, 1e-9, 123456.789])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("group_size", [2, 8, 16])
def test_all_equal_groups_give_exactly_zero(value, dtype, group_size):
    adv = grpo_advantages(torch.full((group_size * 3,), value, dtype=dtype), group_size)
    assert adv.abs().max().item() == 0.0


def test_random_constant_groups_next_to_mixed_ones():
    gen = random.Random(0)
    for _ in range(200):
        c = gen.uniform(-50, 50)
        mixed = [gen.uniform(-5, 5) for _ in range(8)]
        adv = grpo_advantages(torch.tensor([c] * 8 + mixed, dtype=torch.float64), 8)
        assert adv[:8].abs().max().item() == 0.0
        assert adv[8:].abs().max().item() > 0.1


def test_std_off_only_centres():
    adv = grpo_advantages(torch.tensor([3.0, 1.0, 0.0, 2.0]), group_size=2, std_normalize=False)
    assert adv.tolist() == [1.0, -1.0, -1.0, 1.0]
    assert grpo_advantages(torch.full((4,), 1.6), 2, std_normalize=False).abs().max().item() == 0.0


def test_standardize_single_value_and_population_std():
    assert standardize(torch.tensor([5.3])).tolist() == [0.0]
    x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]  # population std exactly 2
    assert standardize(torch.tensor(x), unbiased=False, eps=0.0).tolist() == pytest.approx(
        [(v - 5.0) / 2.0 for v in x])


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="divisible by group_size=3"):
        grpo_advantages(torch.zeros(4), group_size=3)
