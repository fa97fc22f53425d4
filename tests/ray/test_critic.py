"""The critic as Ray actors with their own DeepSpeed engine, and the reward model as its own
actor behind the reward worker."""

import pytest
import torch

from rlsys.algorithms.registry import build_algorithm
from rlsys.config import load_config
from rlsys.distributed.groups import CriticGroup
from rlsys.records import Sample, ScoredBatch


def _rollouts(model_path: str, n_prompts: int = 8, group: int = 4) -> tuple[list[Sample], list[float]]:
    """Completions sampled from the tiny policy (HF generate: the policy is frozen, so a vLLM
    engine adds nothing here); prompts of two kinds, one always rewarded 1, the other 0."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    samples, rewards = [], []
    for p in range(n_prompts):
        kind = p % 2
        prompt = [100 + kind, 7 + p, 30 + 3 * p]
        out = model.generate(torch.tensor([prompt] * group), do_sample=True, max_new_tokens=6, min_new_tokens=2,
                             pad_token_id=0)
        for row in out.tolist():
            completion = row[len(prompt):]
            samples.append(Sample(p, prompt, completion, "", [-1.0] * len(completion), "length", 0, 1.0))
            rewards.append(float(kind))
    return samples, rewards


def test_thirty_critic_updates_halve_the_value_loss_and_explain_the_returns(local_ray, tiny_model_path):
    """The policy frozen on a fixed batch: 30 critic iterations (values, then one update each)
    must cut the value loss by half and take explained variance from 0 to >= 0.5."""
    from rlsys.distributed.actors import start_critics

    cfg = load_config(None, [f"model.path={tiny_model_path}", "model.dtype=float32", "algorithm.type=ppo",
                             "algorithm.lam=1.0", "rollout.prompts_per_iteration=8", "rollout.group_size=4",
                             "learner.mini_batch_size=32", "learner.micro_batch_size=16", "critic.lr=2e-3",
                             "critic.num_cpus=0.25", "critic.num_ranks=2"])
    critics = CriticGroup(start_critics(cfg, tiny_model_path, 30), ["critic-0", "critic-1"])
    algo = build_algorithm(cfg)
    samples, rewards = _rollouts(tiny_model_path)
    losses, explained = [], []
    for _ in range(30):
        values = critics.values(samples, timeout_s=120)
        old = [[0.0] * len(s.completion_ids) for s in samples]
        items, metrics = algo.train_items(ScoredBatch(samples, rewards, 4, None, old, None, values))
        explained.append(metrics["ppo/explained_variance"])
        losses.append(critics.train(items, timeout_s=120)["critic/value_loss"])
    # Values start at 0 and returns are the 0/1 rewards: loss 0.5 * E[R^2] = 0.25, EV exactly 0.
    assert losses[0] == pytest.approx(0.25, abs=1e-6) and explained[0] == pytest.approx(0.0, abs=1e-9)
    print(f"critic check: value loss {losses[0]:.4f} -> {losses[-1]:.4f}, EV {explained[0]:.3f} -> {explained[-1]:.3f}")
    assert losses[-1] <= 0.5 * losses[0], losses
    assert explained[-1] >= 0.5, explained
    critics.kill()


def test_reward_model_actor_joins_rule_rewards(local_ray, tiny_model_path):
    """The reward worker calls the reward-model actor as a term and combines it linearly."""
    from rlsys.distributed.actors import start_reward_models
    from rlsys.workers.reward import RewardWorker
    from rlsys.models.catalog import resolve_model
    from rlsys.workers.reward_model import RewardModelScorer

    rm = resolve_model("tiny-random-reward-model")
    cfg = load_config(None, [f"model.path={tiny_model_path}", "data.template=plain",
                             f"reward.terms=[{{name: correctness, weight: 2.0}}, "
                             f"{{name: reward_model, weight: 0.5, kwargs: {{path: {rm}, batch_size: 2, num_cpus: 0.1}}}}]",
                             "run.phase_timeouts={start: 120, reward: 60}"])
    models = start_reward_models(cfg)  # what start_reward_worker hands the reward worker
    worker = local_ray.remote(num_cpus=0.1)(RewardWorker).remote(cfg.reward, cfg.data.template, models)
    questions, completions, answers = ["What is 2+3?", "What is 1+1?"], ["#### 5", "#### 3"], ["5", "2"]
    total, parts = local_ray.get(worker.score.remote(["p1", "p2"], completions, answers, questions=questions),
                                 timeout=120)
    direct = RewardModelScorer(rm).score(questions, completions)
    assert parts["reward_model"] == pytest.approx(direct, abs=1e-5)
    assert total == pytest.approx([2.0 * 1 + 0.5 * direct[0], 2.0 * 0 + 0.5 * direct[1]], abs=1e-5)
    for handle in [worker] + [m.handle for m in models.values()]:  # free their CPUs for later tests
        local_ray.kill(handle)
