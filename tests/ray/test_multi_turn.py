"""Three-turn episodes on a real vLLM engine and a real DeepSpeed learner (the tiny random
model): each turn continues from the episode's ids, environment ids go in between, and the
learner's log-probs of the model's own ids equal vLLM's per token, while a training step
counts and compares only those ids."""

import pytest
import torch
from transformers import AutoTokenizer

from rlsys.config import Config
from rlsys.envs.base import Environment, StepResult
from rlsys.envs.episode import Episode, EpisodeLimits
from rlsys.envs.tokens import TurnTokens
from rlsys.envs.turn_loop import ModelTurn, run_episodes
from rlsys.records import TrainItem

from .conftest import engine_and_learner

pytestmark = pytest.mark.ray


class KeepGoing(Environment):
    """Answers every turn with a user message until the model has had three turns."""

    def reset(self, task):
        return [{"role": "user", "content": task["question"]}]

    def step(self, text):
        return StepResult(messages=[{"role": "user", "content": f"go on ({len(text)} characters so far)"}])


def test_learner_logprobs_on_three_turn_trajectories_equal_vllms(local_ray, tiny_model_path):
    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 512},
        "rollout": {"num_workers": 1, "kv_cache_gib": 0.25, "prompts_per_iteration": 2, "group_size": 2},
        "learner": {"mini_batch_size": 4, "micro_batch_size": 2, "lr": 1e-3, "epochs": 1},
        "algorithm": {"kl_beta": 0.0},
        "sync": {"bucket_mb": 0.05, "timeout_s": 20},
    })
    rollout, learner = engine_and_learner(local_ray, cfg, tiny_model_path)
    try:
        tok = AutoTokenizer.from_pretrained(tiny_model_path)
        tt, env = TurnTokens(tok), KeepGoing()
        episodes = [Episode(i, tt.prompt_ids(env.reset({"question": q})), 0.8, EpisodeLimits(max_turns=3, max_tokens=300))
                    for i, q in enumerate(["add 3 and 4", "add 10 and 2", "name a colour", "count to 3"])]
        contexts_seen = []

        def generate(eps):
            contexts_seen.append([e.context_ids() for e in eps])
            turns = local_ray.get(rollout.continue_turns.remote(
                [e.context_ids() for e in eps], [min(12, e.tokens_left()) for e in eps], [e.temperature for e in eps],
                [100 * e.prompt_index + len(e.texts) for e in eps], []))
            return [ModelTurn(t["ids"], t["logprobs"], t["text"], t["version"]) for t in turns]

        trajectories = run_episodes(episodes, generate, lambda eps, texts: [env.step(t) for t in texts], tt)
        assert [t.status for t in trajectories] == ["max_turns"] * 4
        assert all(len(t.turn_ends) == 3 and t.env_tokens > 0 for t in trajectories)
        # each later turn continued from exactly the ids the episode held: the previous turn's context,
        # what the model sampled, and the ids rlsys put after it
        assert len(contexts_seen) == 3
        for before, after in zip(contexts_seen, contexts_seen[1:]):
            assert all(a[:len(b)] == b for a, b in zip(after, before))

        items = [TrainItem(t.prompt_ids, t.completion_ids, 0.0, temperature=t.temperature,
                           sampling_logprobs=t.sampling_logprobs, loss_mask=t.loss_mask) for t in trajectories]
        learner_lp = local_ray.get(learner.logprobs.remote(items))
        for t, lp in zip(trajectories, learner_lp):
            mask = torch.tensor(t.loss_mask, dtype=torch.bool)
            got, want = torch.tensor(lp)[mask], torch.tensor(t.sampling_logprobs)[mask]
            assert got.numel() == sum(t.loss_mask) >= 3
            assert torch.allclose(got, want, atol=1e-3), (got, want)
            # on the environment's ids the learner has real log-probs, and vLLM none (0): never compared
            assert (torch.tensor(lp)[~mask] < -0.01).all()

        # one training step: the loss counts the model's ids only, and the learner agrees with vLLM on them
        for it, adv in zip(items, [1.0, -1.0, 0.5, -0.5]):
            it.advantage = adv
        stats = local_ray.get(learner.train_on_batch.remote(items))
        assert stats["train/tokens"] == sum(sum(t.loss_mask) for t in trajectories)
        assert stats["train/logprob_mismatch"] < 1e-3 and stats["train/mismatch_kl"] < 1e-3, stats
    finally:
        local_ray.kill(rollout)
        local_ray.kill(learner)
