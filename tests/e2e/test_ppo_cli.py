"""PPO runs through the CLI on tiny models: a critic group and a reward-model actor next to
the rollout and learner actors, critic warm-up, and the critic saved with the run."""

import json

import pytest
import torch

from .test_train_cli import rlsys

pytestmark = pytest.mark.slow


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_ppo_with_a_reward_model_warms_the_critic_then_trains_both(tmp_path):
    run_dir = tmp_path / "run"
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}", "run.iterations=3", "tracking.console=false",
                "tracking.dump_batches=true",
                "algorithm={type: ppo, kl_in_reward: 0.05, lam: 0.95}", "critic.lr=1e-3", "critic.warmup_iterations=1",
                "reward.terms=[{name: correctness}, {name: reward_model, weight: 0.5, "
                "kwargs: {path: tiny-random-reward-model, batch_size: 8, num_cpus: 0.1}}]")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(run_dir)
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["critic/value_loss"] > 0 and 0 <= r["critic/value_clip_fraction"] <= 1
        assert r["critic/optimizer_steps"] > 0 and r["time/critic_values"] > 0
        assert -10 < r["ppo/explained_variance"] <= 1
        assert r["reward/reward_model"] != 0  # the random reward model's scores reached the reward
        assert r["time/reference"] > 0  # kl_in_reward needs the reference's log-probs
    # Iteration 1 trains only the critic: no policy step, no weight push; then both train.
    assert "train/policy_loss" not in rows[0] and "sync/version" not in rows[0]
    assert [r["sync/version"] for r in rows[1:]] == [1.0, 2.0]
    for r in rows[1:]:
        assert r["train/optimizer_steps"] > 0 and r["train/approx_kl"] >= 0 and 0 <= r["train/clip_fraction"] <= 1
    assert rows[0]["ppo/explained_variance"] == pytest.approx(0.0, abs=1e-9)  # the new value head says 0
    for r in rows:
        _check_ppo_batch_by_hand(run_dir / "batches" / f"iter-{r['iteration']:06d}.jsonl", r, kl=0.05, lam=0.95)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_weight_version"] == 2
    from transformers import AutoModelForTokenClassification

    critic = AutoModelForTokenClassification.from_pretrained(summary["critic_dir"])
    assert critic.score.weight.abs().sum().item() > 0  # trained away from its zero start
    assert torch.isfinite(critic.score.weight).all()


def _check_ppo_batch_by_hand(path, metrics: dict, kl: float, lam: float, gamma: float = 1.0) -> None:
    """What the learner was given, recomputed from the logged batch with plain loops: token
    rewards (the sequence reward on the last token, minus kl x (log pi_old - log pi_ref) on
    every token), GAE as the explicit sum sum_l (gamma lam)^l delta_{t+l}, returns A + V,
    advantages whitened over the batch's tokens, and the critic's explained variance."""
    import math

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 16
    raw, returns, values = [], [], []
    for row in rows:
        n, v = len(row["completion_ids"]), row["old_values"]
        assert n > 0 and len(v) == len(row["old_logprobs"]) == len(row["ref_logprobs"]) == n
        r = [-kl * (o - f) for o, f in zip(row["old_logprobs"], row["ref_logprobs"])]
        r[-1] += row["reward"]
        delta = [r[t] + gamma * (v[t + 1] if t + 1 < n else 0.0) - v[t] for t in range(n)]
        adv = [sum((gamma * lam) ** l * delta[t + l] for l in range(n - t)) for t in range(n)]
        ret = [a + b for a, b in zip(adv, v)]
        assert row["returns"] == pytest.approx(ret, abs=1e-9)
        raw += adv
        returns += ret
        values += v
    mean = sum(raw) / len(raw)
    std = math.sqrt(sum((a - mean) ** 2 for a in raw) / len(raw))
    whitened = [(a - mean) / (std + 1e-8) for a in raw]
    logged = [a for row in rows for a in row["token_advantages"]]
    assert logged == pytest.approx(whitened, abs=1e-6)
    assert metrics["ppo/advantage_mean"] == pytest.approx(mean, abs=1e-9)
    g_mean = sum(returns) / len(returns)
    var_g = sum((g - g_mean) ** 2 for g in returns) / len(returns)
    d = [g - v for g, v in zip(returns, values)]
    d_mean = sum(d) / len(d)
    ev = 1 - (sum((x - d_mean) ** 2 for x in d) / len(d)) / var_g
    assert metrics["ppo/explained_variance"] == pytest.approx(ev, abs=1e-9)


def test_ppo_minillm_recipe_runs(tmp_path):
    run_dir = tmp_path / "run"
    out = rlsys("train", "configs/tiny/ppo_minillm.yaml", f"run.dir={run_dir}", "tracking.console=false")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(run_dir)
    assert len(rows) == 2
    for r in rows:
        assert r["distill/teacher_logprob_per_token"] < 0 and r["critic/value_loss"] > 0
        # teacher and student are the same random model, prompted differently: per-token
        # rewards log p_T - log p_S are nonzero, so the summed token rewards are not just the
        # sequence rewards
        assert r["ppo/token_reward_sum"] != pytest.approx(r["reward/mean"], abs=1e-6)
        assert r["train/lpt_loss"] > 0


def test_bad_critic_path_fails_before_any_actor(tmp_path):
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={tmp_path / 'a'}", "algorithm.type=ppo",
                "critic.path=tiny-random-reward-model")
    assert out.returncode == 1 and "not a causal LM" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "a").exists()
