"""PPO as an algorithm object: its training items against advantages computed by a brute-force
loop from the definitions, the KL penalty and MiniLLM terms in the reward, and its config."""

import math
import random

import pytest

from rlsys.algorithms.registry import ALGORITHMS, build_algorithm
from rlsys.config import load_config
from rlsys.errors import ConfigError
from rlsys.records import Sample, ScoredBatch


def _sample(i, n, finish="stop"):
    return Sample(i, [1, 2], list(range(10, 10 + n)), f"c{i}", [-0.5] * n, finish, 0, 1.0)


def _brute_gae(rewards, values, gamma, lam):
    """A_t = sum_k (gamma lam)^(k-t) delta_k, delta_k = r_k + gamma V_{k+1} - V_k (V_T = 0)."""
    n = len(rewards)
    deltas = [rewards[t] + gamma * (values[t + 1] if t + 1 < n else 0.0) - values[t] for t in range(n)]
    adv = [sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, n)) for t in range(n)]
    return adv, [a + v for a, v in zip(adv, values)]


def _whiten(rows):
    flat = [x for r in rows for x in r]
    mean = sum(flat) / len(flat)
    std = math.sqrt(sum((x - mean) ** 2 for x in flat) / len(flat))
    return [[(x - mean) / (std + 1e-8) for x in r] for r in rows]


def _batch(seed=0, lengths=(4, 2, 3, 1)):
    gen = random.Random(seed)
    samples = [_sample(i, n, "stop" if i % 2 else "length") for i, n in enumerate(lengths)]
    values = [[gen.uniform(-1, 1) for _ in range(n)] for n in lengths]
    old = [[gen.uniform(-3, -0.1) for _ in range(n)] for n in lengths]
    ref = [[gen.uniform(-3, -0.1) for _ in range(n)] for n in lengths]
    rewards = [gen.uniform(-1, 2) for _ in lengths]
    return samples, values, old, ref, rewards


def test_ppo_items_match_brute_force_gae_with_whitening_and_kl_in_reward():
    cfg = load_config(None, ["algorithm.type=ppo", "algorithm.gamma=0.9", "algorithm.lam=0.8",
                             "algorithm.kl_in_reward=0.05", "rollout.group_size=1", "rollout.prompts_per_iteration=8"])
    algo = build_algorithm(cfg)
    assert isinstance(algo, ALGORITHMS["ppo"]) and algo.needs_critic and algo.needs_reference
    samples, values, old, ref, rewards = _batch()
    items, metrics = algo.train_items(ScoredBatch(samples, rewards, 1, None, old, ref, values))
    raw, returns = [], []
    for i, s in enumerate(samples):
        n = len(s.completion_ids)
        # the sequence reward on the last token (finished or truncated alike), minus the KL penalty
        r = [(rewards[i] if t == n - 1 else 0.0) - 0.05 * (old[i][t] - ref[i][t]) for t in range(n)]
        a, ret = _brute_gae(r, values[i], 0.9, 0.8)
        raw.append(a)
        returns.append(ret)
    want = _whiten(raw)
    for item, w, ret, v, o, rf in zip(items, want, returns, values, old, ref):
        assert item.token_advantages == pytest.approx(w, abs=1e-9)
        assert item.returns == pytest.approx(ret, abs=1e-9)
        assert item.old_values == v and item.old_logprobs == o and item.ref_logprobs == rf
    flat_r = [x for r in returns for x in r]
    flat_v = [x for v in values for x in v]
    mean_r = sum(flat_r) / len(flat_r)
    var_r = sum((x - mean_r) ** 2 for x in flat_r) / len(flat_r)
    diff = [r - v for r, v in zip(flat_r, flat_v)]
    var_d = sum((x - sum(diff) / len(diff)) ** 2 for x in diff) / len(diff)
    assert metrics["ppo/explained_variance"] == pytest.approx(1 - var_d / var_r, abs=1e-9)


def test_lam_one_without_whitening_gives_the_reward_minus_the_value_at_every_token():
    cfg = load_config(None, ["algorithm.type=ppo", "algorithm.lam=1.0", "algorithm.whiten_advantages=false",
                             "rollout.group_size=1", "rollout.prompts_per_iteration=8"])
    algo = build_algorithm(cfg)
    assert not algo.needs_reference  # no KL anywhere: no reference model is loaded
    samples, values, old, _, rewards = _batch(seed=3)
    items, _ = algo.train_items(ScoredBatch(samples, rewards, 1, None, old, None, values))
    for item, reward, v in zip(items, rewards, values):
        assert item.token_advantages == pytest.approx([reward - x for x in v], abs=1e-12)
        assert item.returns == pytest.approx([reward] * len(v), abs=1e-12)


def test_minillm_token_rewards_join_the_gae_rewards():
    cfg = load_config(None, ["algorithm.type=ppo", "algorithm.lam=1.0", "algorithm.whiten_advantages=false",
                             "reward.combiner=minillm", "reward.minillm.coef=0.5", "teacher.path=tiny-random",
                             "rollout.group_size=1", "rollout.prompts_per_iteration=8"])
    algo = build_algorithm(cfg)
    samples = [_sample(0, 3)]  # student sampling log-probs -0.5 each
    teacher = [[-1.0, -0.5]]  # the teacher scored a prefix only: the tail token gets 0
    items, _ = algo.train_items(ScoredBatch(samples, [1.0], 1, teacher, [[-0.5] * 3], None, [[0.0] * 3]))
    token_r = [0.5 * (-1.0 + 0.5), 0.5 * 0.0, 1.0]  # coef x (log p_T - log p_S), reward on the last
    assert items[0].returns == pytest.approx([sum(token_r[t:]) for t in range(3)], abs=1e-12)


def test_ppo_without_values_is_refused():
    algo = build_algorithm(load_config(None, ["algorithm.type=ppo"]))
    with pytest.raises(ValueError, match="critic's values"):
        algo.train_items(ScoredBatch([_sample(0, 2)], [1.0], 1))


@pytest.mark.parametrize("key,value", [("gamma", 1.5), ("lam", -0.1), ("gamma", -1), ("lam", 2)])
def test_gamma_and_lam_outside_zero_one_are_refused(key, value):
    with pytest.raises(ConfigError, match=rf"algorithm\.ppo\.{key}"):
        load_config(None, ["algorithm.type=ppo", f"algorithm.{key}={value}"])


def test_algorithm_config_is_discriminated_and_defaults_to_grpo(tmp_path):
    assert load_config(None, ["algorithm.clip_eps=0.3"]).algorithm.type == "grpo"
    with pytest.raises(ConfigError, match="std_normalize"):  # a GRPO key under PPO is unknown
        load_config(None, ["algorithm.type=ppo", "algorithm.std_normalize=false"])
    with pytest.raises(ConfigError, match="algorithm"):
        load_config(None, ["algorithm.type=dpo_typo"])
    # PPO allows one sample per prompt (GRPO refuses it); the critic's batches must divide
    assert load_config(None, ["algorithm.type=ppo", "rollout.group_size=1", "rollout.prompts_per_iteration=8"])
    with pytest.raises(ConfigError, match="critic"):
        load_config(None, ["algorithm.type=ppo", "critic.num_ranks=3"])


def test_ppo_on_trajectories_steps_over_environment_ids():
    """Two-turn trajectories: model ids, then environment ids (loss mask 0), then model ids. The
    reward sits on the last model id, GAE runs over the model ids as one chain (brute force on
    them alone), and environment ids get advantage 0 and return 0."""
    cfg = load_config(None, ["algorithm.type=ppo", "algorithm.gamma=0.9", "algorithm.lam=0.8",
                             "algorithm.whiten_advantages=false", "rollout.group_size=1",
                             "rollout.prompts_per_iteration=2", "learner.mini_batch_size=2", "learner.micro_batch_size=2"])
    algo = build_algorithm(cfg)
    masks = [[1, 1, 0, 0, 0, 1, 1], [1, 0, 0, 1]]
    samples = [Sample(i, [1, 2], list(range(20, 20 + len(m))), f"t{i}", [-0.5 if x else 0.0 for x in m], "stop", 0,
                      1.0, loss_mask=m) for i, m in enumerate(masks)]
    gen = random.Random(3)
    values = [[gen.uniform(-1, 1) for _ in m] for m in masks]
    old = [[-0.5] * len(m) for m in masks]
    rewards = [1.5, -0.5]
    items, _ = algo.train_items(ScoredBatch(samples, rewards, 1, None, old, None, values))
    for item, m, v, r in zip(items, masks, values, rewards):
        model = [t for t, x in enumerate(m) if x]
        chain_r = [r if t == model[-1] else 0.0 for t in model]
        adv, ret = _brute_gae(chain_r, [v[t] for t in model], 0.9, 0.8)
        want_adv, want_ret = [0.0] * len(m), [0.0] * len(m)
        for k, t in enumerate(model):
            want_adv[t], want_ret[t] = adv[k], ret[k]
        assert item.token_advantages == pytest.approx(want_adv, abs=1e-12)
        assert item.returns == pytest.approx(want_ret, abs=1e-12)
        assert item.loss_mask == m
