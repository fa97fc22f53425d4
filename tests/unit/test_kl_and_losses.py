import math

import pytest
import torch

from rlsys.algorithms.kl import kl_estimate
from rlsys.algorithms.losses import grpo_loss


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    d = [0.5, -1.0]
    assert torch.allclose(kl_estimate(logp, ref, "k1"), torch.tensor(d))
    k3 = [math.exp(-x) - 1 + x for x in d]
    assert torch.allclose(kl_estimate(logp, ref, "k3"), torch.tensor(k3))
    assert (kl_estimate(logp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate(logp, ref, "k2")


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
    # clipped terms: row1 tok1 (1.5 -> 1.2) and row2 tok2 (0.7 -> 0.8 gives -1.6 < -1.4)
    assert out.clip_fraction.item() == pytest.approx(2 / 5)
    assert out.ratio_mean.item() == pytest.approx((1.5 + 1.0 + 0.5 + 1.1 + 0.7) / 5, abs=1e-6)


def test_grpo_loss_kl_term_and_normalizer():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])
    mask = torch.ones(1, 2)
    base = grpo_loss(logp, logp.detach(), torch.zeros(1, 1), mask, ref, kl_beta=0.0)
    with_kl = grpo_loss(logp, logp.detach(), torch.zeros(1, 1), mask, ref, kl_beta=0.1, kl_estimator="k1")
    assert base.loss.item() == pytest.approx(0.0)
    assert with_kl.loss.item() == pytest.approx(0.1 * (0.5 - 1.0) / 2)
    assert with_kl.kl.item() == pytest.approx(-0.25)
    halved = grpo_loss(logp, logp.detach(), torch.zeros(1, 1), mask, ref, kl_beta=0.1, kl_estimator="k1", normalizer=4.0)
    assert halved.loss.item() == pytest.approx(with_kl.loss.item() / 2)


def test_grpo_loss_gradient_pushes_up_positive_advantage():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    out = grpo_loss(logp, logp.detach(), torch.tensor([[1.0]]), torch.ones(1, 2))
    out.loss.backward()
    assert (logp.grad < 0).all()  # descending the loss raises the log-probs
