import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from rlsys.algorithms.kl import kl_estimate
from rlsys.algorithms.losses import aggregate, grpo_loss


def test_kl_estimators_are_unbiased_against_torch_distributions():
    """E_{x~p}[k(x)] = KL(p || q) exactly, for k1 and k3: checked by summing over every
    outcome of random categoricals, against torch.distributions' KL."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        p = torch.softmax(torch.randn(6, generator=gen, dtype=torch.float64), 0)
        q = torch.softmax(torch.randn(6, generator=gen, dtype=torch.float64), 0)
        want = float(kl_divergence(Categorical(probs=p), Categorical(probs=q)))
        for est in ("k1", "k3"):
            got = float((p * kl_estimate(p.log(), q.log(), est, clamp=None)).sum())
            assert got == pytest.approx(want, rel=1e-10, abs=1e-12), est
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate(p.log(), q.log(), "k2")


def test_k3_is_non_negative_and_its_gradient_inside_the_bound():
    d = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], dtype=torch.float64, requires_grad=True)
    kl = kl_estimate(d, torch.zeros_like(d), "k3", clamp=10.0)
    assert (kl >= 0).all()
    kl.sum().backward()
    # Inside the bound the gradient is d/dd (e^-d - 1 + d) = 1 - e^-d, written out by hand.
    want = [1 - math.exp(2.0), 1 - math.exp(0.5), 0.0, 1 - math.exp(-0.7), 1 - math.exp(-3.0)]
    assert d.grad.tolist() == pytest.approx(want, rel=1e-12)


def test_k3_beyond_the_bound_is_clamped_with_zero_gradient_never_reversed():
    # e^{2.6} - 1 - 2.6 = 9.86 < 10 < e^{2.7} - 1 - 2.7 = 11.18: the bound lies between.
    d = torch.tensor([-2.6, -2.7, -25.0, -40.0, -200.0, 12.0], dtype=torch.float64, requires_grad=True)
    kl = kl_estimate(d, torch.zeros_like(d), "k3", clamp=10.0)
    assert kl[0].item() == pytest.approx(math.exp(2.6) - 1 - 2.6)
    assert kl[1:].tolist() == [10.0] * 5
    kl.sum().backward()
    assert d.grad[0].item() == pytest.approx(1 - math.exp(2.6))  # just inside: the true gradient
    assert d.grad[1:].tolist() == [0.0] * 5  # beyond: zero, finite; the old clamp gave +1 (reversed)
    assert torch.isfinite(d.grad).all()


def test_grpo_loss_clip_and_token_mean_by_hand():
    # Two sequences, three token slots, the last slot of row 2 is padding.
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5], [1.1, 0.7, 9.0]]))  # old log-probs are 0 -> ratio = exp(logp)
    old = torch.zeros(2, 3)
    adv = torch.tensor([[1.0], [-2.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = grpo_loss(logp, old, adv, mask, clip_eps=0.2)
    # row 1 (A=+1): min(r, clip(r)) = 1.2, 1.0, 0.5 ; row 2 (A=-2): min(-2r, -2clip(r)) = -2.2, -1.6
    per_token = [-1.2, -1.0, -0.5, 2.2, 1.6]
    assert out.loss.item() == pytest.approx(sum(per_token) / 5, abs=1e-6)
    assert out.clip_fraction.item() == pytest.approx(2 / 5)
    assert out.ratio_mean.item() == pytest.approx((1.5 + 1.0 + 0.5 + 1.1 + 0.7) / 5, abs=1e-6)
    # GRPO paper: mean over sequences of each sequence's token mean.
    seq = grpo_loss(logp, old, adv, mask, clip_eps=0.2, loss_agg="seq_mean_token_mean")
    assert seq.loss.item() == pytest.approx(((-1.2 - 1.0 - 0.5) / 3 + (2.2 + 1.6) / 2) / 2, abs=1e-6)
    # Dr. GRPO: token sum over (sequences x max new tokens = 2 x 4).
    dr = grpo_loss(logp, old, adv, mask, clip_eps=0.2, loss_agg="seq_mean_token_sum_norm", max_tokens=4)
    assert dr.loss.item() == pytest.approx(sum(per_token) / 8, abs=1e-6)


def test_micro_batch_shares_add_up_to_the_whole_batch_loss():
    """Split a batch into micro-batches (as ranks and accumulation do): the shares computed
    with the global totals sum to the loss of the whole batch, for every aggregation."""
    gen = torch.Generator().manual_seed(1)
    per_token = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    lengths = [5, 1, 3, 2, 4, 5]
    mask = (torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]).double()
    rows = [per_token[i, :n].tolist() for i, n in enumerate(lengths)]
    whole = {
        "token_mean": sum(map(sum, rows)) / sum(lengths),
        "seq_mean_token_mean": sum(sum(r) / len(r) for r in rows) / len(rows),
        "seq_mean_token_sum_norm": sum(map(sum, rows)) / (len(rows) * 7),
    }
    for mode, want in whole.items():
        shares = [aggregate(per_token[a:b], mask[a:b], mode, float(sum(lengths)), 6.0, 7).item()
                  for a, b in ((0, 1), (1, 4), (4, 6))]
        assert sum(shares) == pytest.approx(want, rel=1e-12), mode
        assert aggregate(per_token, mask, mode, max_tokens=7).item() == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="needs max_tokens"):
        aggregate(per_token, mask, "seq_mean_token_sum_norm")


def test_grpo_loss_kl_term():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])
    mask = torch.ones(1, 2)
    base = grpo_loss(logp, logp.detach(), torch.zeros(1, 1), mask, ref, kl_beta=0.0)
    with_kl = grpo_loss(logp, logp.detach(), torch.zeros(1, 1), mask, ref, kl_beta=0.1, kl_estimator="k1")
    assert base.loss.item() == pytest.approx(0.0)
    assert with_kl.loss.item() == pytest.approx(0.1 * (0.5 - 1.0) / 2)
    assert with_kl.kl.item() == pytest.approx(-0.25)


def test_grpo_loss_gradient_pushes_up_positive_advantage():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    out = grpo_loss(logp, logp.detach(), torch.tensor([[1.0]]), torch.ones(1, 2))
    out.loss.backward()
    assert (logp.grad < 0).all()  # descending the loss raises the log-probs
