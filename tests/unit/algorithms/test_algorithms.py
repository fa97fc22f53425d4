"""Algorithm objects turn a scored batch into training items; the numbers are checked by hand."""

import pytest

from rlsys.algorithms.registry import ALGORITHMS, build_algorithm
from rlsys.config import load_config
from rlsys.records import Sample, ScoredBatch


def _sample(i, n, temperature=0.8):
    return Sample(i // 2, [1, 2], list(range(n)), "x", [-0.5] * n, "stop", 0, temperature)


def test_grpo_items_carry_group_advantages_temperature_and_vllm_logprobs():
    algo = build_algorithm(load_config(None, ["rollout.group_size=2", "algorithm.kl_beta=0"]))
    assert isinstance(algo, ALGORITHMS["grpo"]) and not algo.needs_reference and not algo.needs_critic
    samples = [_sample(i, 2 + i) for i in range(4)]
    items, _ = algo.train_items(ScoredBatch(samples, [1.0, 0.0, 1.6, 1.6], group_size=2))
    # group 1: mean 0.5, unbiased std sqrt(0.5): +-0.5 / 0.7071; group 2: all equal -> 0
    assert [it.advantage for it in items] == pytest.approx([0.5 / (0.5 ** 0.5 + 1e-6), -0.5 / (0.5 ** 0.5 + 1e-6), 0.0, 0.0], rel=1e-12)
    assert items[2].advantage == 0.0 and items[3].advantage == 0.0
    assert all(it.temperature == 0.8 and it.sampling_logprobs == [-0.5] * len(it.completion_ids) for it in items)
    assert all(it.token_advantages is None for it in items)


def test_grpo_with_minillm_adds_whitened_per_token_rewards():
    cfg = load_config(None, ["rollout.group_size=2", "teacher.path=x", "reward.combiner=minillm"])
    algo = build_algorithm(cfg)
    samples = [_sample(0, 2), _sample(1, 1)]
    # per-token rewards log p_T - log p_S: [0.5, -1.5] and [-0.5]; mean -0.5, population std sqrt(2/3)
    items, _ = algo.train_items(ScoredBatch(samples, [1.0, 0.0], 2, teacher_logprobs=[[0.0, -2.0], [-1.0]]))
    a = 0.5 / (0.5 ** 0.5 + 1e-6)  # GRPO divides by std + eps
    w = 1 / (2 / 3) ** 0.5
    assert items[0].token_advantages == pytest.approx([a + w, a - w], rel=1e-6)
    assert items[1].token_advantages == pytest.approx([-a + 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="needs the teacher's per-token log-probs"):
        algo.train_items(ScoredBatch(samples, [1.0, 0.0], 2))


def test_grpo_drops_equal_reward_groups_to_whole_mini_batches():
    cfg = load_config(None, ["rollout.group_size=2", "rollout.prompts_per_iteration=4", "algorithm.kl_beta=0",
                             "algorithm.drop_uniform_groups=true", "learner.mini_batch_size=2",
                             "learner.micro_batch_size=1"])
    samples = [_sample(i, 1 + i) for i in range(8)]
    # groups: (1, 0) mixed, (1, 1) equal, (0, 0) equal, (0, 1) mixed
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    items, metrics = build_algorithm(cfg).train_items(ScoredBatch(samples, rewards, group_size=2))
    assert [len(it.completion_ids) for it in items] == [1, 2, 7, 8]  # samples 0, 1, 6, 7
    a = 0.5 / (0.5 ** 0.5 + 1e-6)
    assert [it.advantage for it in items] == pytest.approx([a, -a, -a, a], rel=1e-12)
    assert metrics == {"train/kept_fraction": 0.5}
    # mini-batches of 3: the 4 mixed samples are topped up with the first 2 equal ones
    cfg = load_config(None, ["rollout.group_size=2", "rollout.prompts_per_iteration=3", "algorithm.kl_beta=0",
                             "algorithm.drop_uniform_groups=true", "learner.mini_batch_size=3",
                             "learner.micro_batch_size=1"])
    items, _ = build_algorithm(cfg).train_items(ScoredBatch(samples, rewards, group_size=2))
    assert [len(it.completion_ids) for it in items] == [1, 2, 3, 4, 7, 8]
    # no group differs: one mini-batch (the first 3 samples) takes the KL step, the rest is dropped
    items, metrics = build_algorithm(cfg).train_items(ScoredBatch(samples[:6], [1.0] * 6, group_size=2))
    assert [len(it.completion_ids) for it in items] == [1, 2, 3] and metrics == {"train/kept_fraction": 0.5}
    assert all(it.advantage == 0.0 for it in items)


def test_dropping_groups_is_refused_with_minillm_token_rewards():
    cfg = load_config(None, ["rollout.group_size=2", "teacher.path=x", "reward.combiner=minillm",
                             "algorithm.drop_uniform_groups=true"])
    with pytest.raises(ValueError, match="drop_uniform_groups cannot go with reward.combiner: minillm"):
        build_algorithm(cfg)


def test_a_dumped_batch_pairs_each_kept_item_with_its_own_sample(tmp_path):
    import json

    from rlsys.loops.rl_phases import Collected, dump_batch

    cfg = load_config(None, ["rollout.group_size=2", "rollout.prompts_per_iteration=4", "algorithm.kl_beta=0",
                             "algorithm.drop_uniform_groups=true", "learner.mini_batch_size=2",
                             "learner.micro_batch_size=1"])
    samples = [_sample(i, 1 + i) for i in range(8)]
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    algo = build_algorithm(cfg)
    batch = ScoredBatch(samples, rewards, group_size=2)
    items, _ = algo.train_items(batch)
    collected = Collected(1, [0, 1, 2, 3], [], samples, rewards, {})
    dump_batch(tmp_path / "b.jsonl", collected, items, algo.kept_samples(batch))
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    # samples 0, 1, 6, 7: prompts 0, 0, 3, 3 with rewards 1, 0, 0, 1
    assert [(r["prompt_index"], r["reward"], len(r["completion_ids"])) for r in rows] == \
        [(0, 1.0, 1), (0, 0.0, 2), (3, 0.0, 7), (3, 1.0, 8)]


def test_the_reference_pass_scores_only_the_samples_that_train():
    """The learner is replaced by a recorder (the pass's own maths is tested with real
    learners in tests/ray); what is checked is which samples go to it and where each
    sample's reference log-probs land."""
    from types import SimpleNamespace

    from rlsys.loops.rl_phases import old_and_reference
    from rlsys.observability.iteration_metrics import PhaseTimer

    cfg = load_config(None, ["rollout.group_size=2", "rollout.prompts_per_iteration=4", "algorithm.kl_beta=0.1",
                             "algorithm.drop_uniform_groups=true", "algorithm.old_policy=sampler",
                             "learner.mini_batch_size=2", "learner.micro_batch_size=1"])
    samples = [_sample(i, 1 + i) for i in range(8)]
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    scored = []

    def learner_logprobs(subset, reference, old):
        scored.extend(len(s.completion_ids) for s in subset)
        return None, [[-float(len(s.completion_ids))] * len(s.completion_ids) for s in subset], {}

    algo = build_algorithm(cfg)
    ctx = SimpleNamespace(cfg=cfg, algorithm=algo, roles=SimpleNamespace(learner_logprobs=learner_logprobs))
    kept = algo.kept_samples(ScoredBatch(samples, rewards, group_size=2))
    old, ref, _ = old_and_reference(ctx, samples, PhaseTimer(), kept)
    assert scored == [1, 2, 7, 8]  # samples 0, 1, 6, 7: the mixed groups
    assert ref == [[-1.0], [-2.0] * 2, None, None, None, None, [-7.0] * 7, [-8.0] * 8]
    assert old == [s.sampling_logprobs for s in samples]
    items, _ = algo.train_items(ScoredBatch(samples, rewards, 2, old_logprobs=old, ref_logprobs=ref))
    assert [it.ref_logprobs for it in items] == [[-1.0], [-2.0] * 2, [-7.0] * 7, [-8.0] * 8]
