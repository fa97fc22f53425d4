"""Checks a run makes before and between phases: prompt lengths, on-policy samples, what an
engine reports after a weight sync, and how every rank's statistics are combined."""

import pytest

from rlsys.config import load_config
from rlsys.loops.rl_phases import check_on_policy
from rlsys.errors import DataError
from rlsys.errors import RunError
from rlsys.distributed.weight_push import sync_timeout, verify_engine
from rlsys.transport.weight_sync import checksums_match, pick_probes
from rlsys.observability.rank_stats import merge_rank_stats
from rlsys.preparation import check_prompt_lengths
from rlsys.records import PromptItem, Sample


def _item(n, where):
    return PromptItem("p", list(range(n)), "q", "1", {"where": where})


def test_prompts_too_long_for_the_context_are_named_before_start():
    cfg = load_config(None, ["model.max_model_len=100", "rollout.max_new_tokens=40"])
    check_prompt_lengths(cfg, [_item(60, "a.jsonl:1")], "training")  # 60 + 40 fits exactly
    items = [_item(60, "a.jsonl:1"), _item(61, "a.jsonl:2"), _item(90, "a.jsonl:7")]
    with pytest.raises(DataError, match=r"2 training prompt\(s\) are longer than .* 100 - 40 = 60 tokens: "
                                        r"a.jsonl:2 \(61 tokens\); a.jsonl:7 \(90 tokens\)"):
        check_prompt_lengths(cfg, items, "training")


def _sample(version):
    return Sample(0, [1], [2], "x", [-0.1], "stop", version, 1.0)


def test_off_policy_samples_are_refused():
    check_on_policy([_sample(3), _sample(3)], 3)
    with pytest.raises(RunError, match=r"off-policy samples: weight versions \[2\] while the learner is at 3"):
        check_on_policy([_sample(3), _sample(2)], 3)


def test_asynchronous_samples_may_lag_by_at_most_k_versions():
    got = check_on_policy([_sample(5), _sample(4), _sample(3), _sample(3)], 5, max_staleness=2)
    assert got == {"rollout/staleness_mean": (0 + 1 + 2 + 2) / 4, "rollout/staleness_max": 2.0}
    with pytest.raises(RunError, match=r"weight versions \[2\] .* at most 2 versions behind"):
        check_on_policy([_sample(5), _sample(2)], 5, max_staleness=2)
    with pytest.raises(RunError, match=r"weight versions \[6\]"):  # ahead of the learner: impossible
        check_on_policy([_sample(6)], 5, max_staleness=2)


def test_engine_report_must_carry_the_version_and_the_sent_values():
    sent = {"a.q": (1.0, 4.0), "a.k": (-2.0, 9.0), "b": (0.5, 0.25)}
    good = {"version": 4, "probes": {"a.q+a.k": (-1.0, 13.0), "b": (0.5, 0.25)}}
    verify_engine("rollout-1", good, 4, sent)
    with pytest.raises(RunError, match="rollout-1 reports weights version 3, expected 4"):
        verify_engine("rollout-1", {**good, "version": 3}, 4, sent)
    bad = {"version": 4, "probes": {"a.q+a.k": (-1.0, 13.5)}}
    with pytest.raises(RunError, match=r"rollout-1 holds different values for a.q\+a.k"):
        verify_engine("rollout-1", bad, 4, sent)


def test_checksums_match_tolerates_summation_order_only():
    assert checksums_match((1e-17, 2.0), (0.0, 2.0 * (1 + 1e-12)))
    assert not checksums_match((0.0, 2.0), (0.0, 2.0001))
    assert not checksums_match((0.01, 2.0), (0.0, 2.0))


def test_probes_rotate_over_every_key():
    keys = [f"k{i}" for i in range(7)]
    seen = set()
    for version in range(1, 4):
        picked = pick_probes(keys, version, 3)
        assert len(picked) == 3
        seen |= set(picked)
    assert seen == set(keys)
    assert pick_probes(keys, 1, 0) == [] and pick_probes([], 1, 3) == []


def test_sync_bound_grows_with_the_buckets():
    cfg = load_config(None, ["sync.timeout_s=10", "sync.per_bucket_timeout_s=2"]).sync
    assert sync_timeout(cfg, 1) == 12 and sync_timeout(cfg, 50) == 110


def test_rank_stats_merge_by_hand():
    rank0 = {"train/policy_loss": 0.25, "train/tokens": 30.0, "train/kl": 0.1, "train/grad_norm": 2.0,
             "train/lpt_loss": 3.0, "time/train": 5.0, "train/logprob_mismatch": 0.01,
             "train/mismatch_tokens": 30.0, "train/logprob_mismatch_max": 0.02}
    rank1 = {"train/policy_loss": -0.5, "train/tokens": 10.0, "train/kl": 0.5, "train/grad_norm": 2.0,
             "train/lpt_loss": 1.0, "time/train": 7.0, "train/logprob_mismatch": 0.05,
             "train/mismatch_tokens": 10.0, "train/logprob_mismatch_max": 0.2}
    m = merge_rank_stats([rank0, rank1], lpt_coef=0.5)
    assert m["train/policy_loss"] == pytest.approx(-0.25)
    assert m["train/kl"] == pytest.approx((0.1 * 30 + 0.5 * 10) / 40)
    assert m["train/logprob_mismatch"] == pytest.approx((0.01 * 30 + 0.05 * 10) / 40)
    assert m["train/logprob_mismatch_max"] == 0.2 and m["time/train"] == 7.0
    assert m["train/lpt_loss"] == 2.0 and m["train/loss"] == pytest.approx(-0.25 + 0.5 * 2.0)
    assert m["train/tokens"] == 40.0 and m["train/grad_norm"] == 2.0


def test_role_cpus_add_up_and_a_local_ray_too_small_is_refused():
    from rlsys.config import load_config
    from rlsys.errors import RunError
    from rlsys.distributed.cluster import check_cpus, role_cpus

    cfg = load_config(None, ["algorithm.type=ppo", "critic.num_ranks=2", "critic.micro_batch_size=4",
                             "critic.num_cpus=0.25", "teacher.path=x",
                             "teacher.num_workers=2", "rollout.num_workers=3",
                             "reward.terms=[{name: reward_model, kwargs: {path: y, num_cpus: 0.3}}]"])
    # by hand: rollout 3 x 0.5, learner 1 x 0.5, reward 0.1, critic 2 x 0.25, teacher 2 x 0.5, reward model 0.3
    assert role_cpus(cfg) == {"rollout": 1.5, "learner": 0.5, "reward": 0.1, "critic": 0.5, "teacher": 1.0,
                              "reward_model": 0.3}
    check_cpus(role_cpus(cfg), 3.9, "here")
    with pytest.raises(RunError, match=r"ask for 3.9 CPUs \(rollout 1.5, .*reward_model 0.3\) but the local Ray has 3"):
        check_cpus(role_cpus(cfg), 3, "the local Ray")
