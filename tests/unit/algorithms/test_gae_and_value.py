"""GAE, reward placement, the clipped value loss and explained variance, against brute-force
loops written from the definitions and against numbers computed by hand."""

import random
import statistics

import pytest
import torch

from rlsys.algorithms.gae import gae, kl_penalized_rewards, rewards_at_last_token, whiten_tokens
from rlsys.algorithms.value import clipped_value_loss, explained_variance


def _batch(seed=0, lengths=(5, 3, 1, 0)):
    gen = random.Random(seed)
    width = max(lengths)
    rewards = [[gen.uniform(-1, 1) for _ in range(n)] for n in lengths]
    values = [[gen.uniform(-1, 1) for _ in range(n)] for n in lengths]
    pad = lambda rows: torch.tensor([r + [0.0] * (width - len(r)) for r in rows], dtype=torch.float64)  # noqa: E731
    mask = torch.tensor([[t < n for t in range(width)] for n in lengths])
    # Garbage on the padding: it must not leak into any result.
    return rewards, values, pad(rewards) + (~mask) * 7.0, pad(values) - (~mask) * 5.0, mask


def test_lam_one_is_discounted_reward_to_go_minus_value():
    rewards, values, r, v, mask = _batch()
    gamma = 0.9
    adv, ret = gae(r, v, mask, gamma, lam=1.0)
    for i, (rs, vs) in enumerate(zip(rewards, values)):
        for t in range(len(rs)):
            to_go = sum(gamma ** (k - t) * rs[k] for k in range(t, len(rs)))
            assert adv[i, t].item() == pytest.approx(to_go - vs[t], abs=1e-12)
            assert ret[i, t].item() == pytest.approx(to_go, abs=1e-12)
    assert adv[~mask].abs().max().item() == 0.0 and ret[~mask].abs().max().item() == 0.0


def test_lam_zero_is_the_one_step_td_error():
    rewards, values, r, v, mask = _batch(seed=1)
    gamma = 0.7
    adv, _ = gae(r, v, mask, gamma, lam=0.0)
    for i, (rs, vs) in enumerate(zip(rewards, values)):
        for t in range(len(rs)):
            next_v = vs[t + 1] if t + 1 < len(rs) else 0.0
            assert adv[i, t].item() == pytest.approx(rs[t] + gamma * next_v - vs[t], abs=1e-12)


def test_general_lambda_matches_the_weighted_sum_of_td_errors():
    rewards, values, r, v, mask = _batch(seed=2, lengths=(6, 4))
    gamma, lam = 0.95, 0.8
    adv, _ = gae(r, v, mask, gamma, lam)
    for i, (rs, vs) in enumerate(zip(rewards, values)):
        deltas = [rs[t] + gamma * (vs[t + 1] if t + 1 < len(rs) else 0.0) - vs[t] for t in range(len(rs))]
        for t in range(len(rs)):
            want = sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, len(rs)))
            assert adv[i, t].item() == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        gae(r, v, mask, 1.1, 0.9)


def test_reward_lands_on_the_last_completion_token():
    # A finished sample's ids end in EOS (length 4: the reward on EOS at index 3); a truncated
    # one's last generated token is index 2 of 3; an empty completion gets nothing.
    out = rewards_at_last_token(torch.tensor([1.5, -2.0, 9.0]), torch.tensor([4, 3, 0]), width=5)
    assert out.tolist() == [[0, 0, 0, 1.5, 0], [0, 0, -2.0, 0, 0], [0, 0, 0, 0, 0]]


def test_kl_penalty_in_the_reward_by_hand():
    r = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    logp = torch.tensor([[-1.0, -2.0, -3.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -1.0, -9.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    assert kl_penalized_rewards(r, logp, ref, mask, 0.1)[0].tolist() == pytest.approx([-0.05, 1.1, 0.0])


def test_whitening_over_real_tokens_only():
    adv = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = whiten_tokens(adv, mask)
    real = [1.0, 2.0, 3.0, 4.0]
    mean, std = statistics.fmean(real), statistics.pstdev(real)
    assert out[mask].tolist() == pytest.approx([(x - mean) / (std + 1e-8) for x in real], rel=1e-9)
    assert out[~mask].tolist() == [0.0, 0.0]
    assert whiten_tokens(torch.full((2, 2), 1.6), torch.ones(2, 2, dtype=torch.bool)).abs().max() == 0


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.5, 9.0]])
    old = torch.tensor([[0.5, 0.5, 0.0]])
    returns = torch.tensor([[0.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    out = clipped_value_loss(values, old, returns, mask, clip=0.2)
    # token 1: V=1.0, V_clip=0.7: max(1.0, 0.49) = 1.0 (unclipped larger); token 2: V=0.5=V_clip: 0.25 each.
    assert out.loss.item() == pytest.approx(0.5 * (1.0 + 0.25) / 2)
    assert out.clip_fraction.item() == 0.0
    # Moving away from the return beyond the clip: V=0.1, old 0.5 -> V_clip 0.3, R=1: max(0.81, 0.49).
    out = clipped_value_loss(torch.tensor([[0.1]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]), torch.ones(1, 1))
    assert out.loss.item() == pytest.approx(0.5 * 0.81) and out.clip_fraction.item() == 0.0
    # Overshooting past the return: V=2.0, old 0.5 -> V_clip 0.7, R=1.5: clipped error 0.64 > 0.25.
    out = clipped_value_loss(torch.tensor([[2.0]]), torch.tensor([[0.5]]), torch.tensor([[1.5]]), torch.ones(1, 1))
    assert out.loss.item() == pytest.approx(0.5 * 0.64) and out.clip_fraction.item() == 1.0


def test_explained_variance_against_statistics():
    gen = random.Random(5)
    r = [gen.uniform(-2, 2) for _ in range(9)]
    v = [x + gen.uniform(-0.5, 0.5) for x in r]
    mask = torch.tensor([[True] * 9 + [False]])
    got = explained_variance(torch.tensor([v + [50.0]]), torch.tensor([r + [-50.0]]), mask)
    want = 1 - statistics.pvariance([a - b for a, b in zip(r, v)]) / statistics.pvariance(r)
    assert got == pytest.approx(want, rel=1e-9)
    mean = statistics.fmean(r)
    assert explained_variance(torch.tensor([[mean] * 9]), torch.tensor([r]), torch.ones(1, 9)) == pytest.approx(0.0, abs=1e-12)
