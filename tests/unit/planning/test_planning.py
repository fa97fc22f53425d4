"""The sizing model of `rlsys plan` on a workload small enough to work out by hand."""

import pytest

from rlsys.models.flops import ModelShape
from rlsys.planning.model import Profile, Split, Workload, best_split, iteration_seconds, phase_seconds, splits

SHAPE = ModelShape(linear_params=1000, head_params=100, layers=2, attention_width=10)
# 2 prompts of 3 tokens, 8 completions of 2: tokens 2*3 + 8*2 = 22, scored 16,
# attention pairs 2*(1+2+3) + 8*((3+1) + (3+2)) = 84;
# forward FLOPs 2*1000*22 + 2*100*16 + 4*10*2*84 = 53920, training 3x that.
W = Workload(prompts=2, samples=8, prompt_tokens=3, completion_tokens=2, policy=SHAPE, policy_params=1100,
             reference=True, weight_bytes=4400)
# rates that make each phase a round number on one device: generation 1 s, reference 1 s,
# train 4 s, sync 1 s, plus 0.5 s overhead
P = Profile("hand", gen_tokens_per_s=16, gen_params=1100, train_flops_per_s=3 * 53920 / 4,
            score_flops_per_s=53920, sync_bytes_per_s=4400, overhead_s=0.5)


def test_phase_seconds_by_hand():
    got = phase_seconds(W, P, Split(1, 1))
    assert got == pytest.approx({"generation": 1.0, "train": 4.0, "sync": 1.0, "reference": 1.0})
    assert iteration_seconds(got, P, asynchronous=False, shared_device=True) == pytest.approx(7.5)
    # decoding is bound by reading the weights: an engine on a model half the size is twice as fast
    bigger = Profile(**{**P.__dict__, "gen_params": 2200})
    assert phase_seconds(W, bigger, Split(1, 1))["generation"] == pytest.approx(0.5)


def test_lora_and_dropped_groups_shrink_the_train_phase_by_hand():
    # frozen weights: the forward, the input gradients (one more forward's worth) and attention's
    # second backward product (4*10*2*84 = 6720): 2*53920 + 6720 = 114560 FLOPs; half the samples
    # train: 57280 at 3*53920/4 FLOP/s
    w = Workload(**{**W.__dict__, "frozen_weights": True, "trained_fraction": 0.5})
    assert phase_seconds(w, P, Split(1, 1))["train"] == pytest.approx(57280 / (3 * 53920 / 4))


def test_best_split_balances_the_two_sides():
    assert {(s.rollout, s.learner) for s in splits(3, False, False)} == {(1, 2), (2, 1)}
    # every way to give 4 roles at least one of 64 devices: C(63, 3), each summing to 64
    many = splits(64, True, True)
    assert len(many) == 63 * 62 * 61 // 6 == len(set(many))
    assert all(min(s.rollout, s.learner, s.teacher, s.critic) >= 1 and
               s.rollout + s.learner + s.teacher + s.critic == 64 for s in many)
    split, seconds, _ = best_split(W, P, 3, asynchronous=False)
    assert (split.rollout, split.learner) == (1, 2)
    assert seconds == pytest.approx(1.0 + 0.5 + 2.0 + 1.0 + 0.5)  # generation, reference and train halved
    split, seconds, _ = best_split(W, P, 3, asynchronous=True)
    assert (split.rollout, split.learner) == (1, 2)
    assert seconds == pytest.approx(max(1.0, 0.5 + 2.0) + 1.0 + 0.5)  # the slower pipeline stage, then the sync
    # one device: every role shares it, so running ahead buys nothing
    assert best_split(W, P, 1, asynchronous=True)[1] == pytest.approx(7.5)
