import pytest
import torch

from rlsys.algorithms.advantages import grpo_advantages


def test_group_normalised_by_hand():
    # group 1: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(1/3)
    # group 2: rewards 2, 2, 2, 2 -> all zero advantage
    adv = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0]), group_size=4, eps=0.0)
    s = (1 / 3) ** 0.5
    expected = torch.tensor([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0])
    assert torch.allclose(adv, expected, atol=1e-6)


def test_std_off_only_centres():
    adv = grpo_advantages(torch.tensor([3.0, 1.0, 0.0, 2.0]), group_size=2, std_normalize=False)
    assert adv.tolist() == [1.0, -1.0, -1.0, 1.0]


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="divisible by group_size=3"):
        grpo_advantages(torch.zeros(4), group_size=3)
