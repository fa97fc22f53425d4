"""Truncated importance sampling weights by hand, and which old policy a config gets."""

import math

import pytest
import torch

from rlsys.algorithms.losses import grpo_loss
from rlsys.algorithms.registry import old_policy, old_policy_source
from rlsys.algorithms.tis import tis_weights
from rlsys.config import Config


def test_tis_weights_by_hand():
    old = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -4.0, 0.0]])
    samp = torch.tensor([[-1.5, -1.0, -0.5], [-0.3, -1.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    got = tis_weights(old, samp, mask, cap=1.5)
    # ratios: e^0.5 = 1.6487 (capped to 1.5), e^-1, 1, 1, e^-3; the padded slot is 0
    want = [[1.5, math.exp(-1.0), 1.0], [1.0, math.exp(-3.0), 0.0]]
    assert torch.allclose(got.weights, torch.tensor(want), atol=1e-6)
    assert got.tokens == 5
    assert got.mean_weight == pytest.approx((1.5 + math.exp(-1) + 1 + 1 + math.exp(-3)) / 5)
    assert got.clip_fraction == pytest.approx(1 / 5)
    k3 = [(math.exp(d) - 1) - d for d in (0.5, -1.0, 0.0, 0.0, -3.0)]
    assert got.mismatch_kl == pytest.approx(sum(k3) / 5)


def test_is_weights_scale_each_tokens_surrogate():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    adv = torch.tensor([[1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    w = torch.tensor([[0.5, 2.0]])
    out = grpo_loss(logp, logp.detach(), adv, mask, is_weights=w)
    out.loss.backward()
    # ratio 1: d/dlogp of -(w * r * A) / 2 tokens = -w * A / 2
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -1.0]]))


def _cfg(**over):
    base = {"rollout": {"prompts_per_iteration": 4, "group_size": 4},
            "learner": {"mini_batch_size": 16, "micro_batch_size": 4}}
    for key, value in over.items():
        section, field = key.split("__")
        base.setdefault(section, {})[field] = value
    return Config.model_validate(base)


def test_old_policy_source_follows_the_step_count():
    assert old_policy_source(_cfg()) == "current"  # one step over the whole batch
    assert old_policy_source(_cfg(learner__mini_batch_size=8)) == "learner"  # two steps
    assert old_policy_source(_cfg(learner__epochs=2)) == "learner"
    assert old_policy_source(_cfg(algorithm__old_policy="learner")) == "learner"
    assert old_policy_source(_cfg(algorithm__old_policy="sampler")) == "sampler"
    assert old_policy(_cfg()).tis_cap is None
    assert old_policy(_cfg(rollout__max_staleness=1)).tis_cap == 2.0
    assert old_policy(_cfg(rollout__max_staleness=1, algorithm__tis_cap=3.0)).tis_cap == 3.0
    # against the sampler itself there is nothing to correct
    assert old_policy(_cfg(rollout__max_staleness=1, algorithm__old_policy="sampler")).tis_cap is None
