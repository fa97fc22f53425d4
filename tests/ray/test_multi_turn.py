"""Three-turn episodes on a real vLLM engine and a real DeepSpeed learner (the tiny random
model): each turn continues from the episode's ids, environment ids go in between, and the
learner's log-probs of the model's own ids equal vLLM's per token, while a training step
counts and compares only those ids. Should the weights change between an episode's turns (rlsys's
loop lets a sync wait for the episodes in flight; a turn loop of one's own may not), each turn
records its version, and the learner's importance weights are per token: exp(old - sampler),
capped, and 1 on the turns the current weights sampled."""

import math

import pytest
import torch
from transformers import AutoTokenizer

from rlsys.config import Config
from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import push_weights
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
        "algorithm": {"kl_beta": 0.0, "tis_cap": 2.0},
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
        _stale_first_turns(local_ray, cfg, rollout, learner, tt, env)
    finally:
        local_ray.kill(rollout)
        local_ray.kill(learner)


def _stale_first_turns(local_ray, cfg, rollout, learner, tt, env):
    """The learner has trained once (version 1) and the engine still holds version 0: each
    episode's first turn is sampled with the old weights, the weights are pushed, its later
    turns with the new ones."""
    keys = local_ray.get(rollout.weight_keys.remote())
    calls = []

    def generate(eps):
        if len(calls) == 1:  # between the first and the second turn
            push_weights(ActorGroup([learner], ["learner-0"]), ActorGroup([rollout], ["rollout-0"]), cfg.sync,
                         "float32", 1, keys)
        calls.append(len(eps))
        turns = local_ray.get(rollout.continue_turns.remote(
            [e.context_ids() for e in eps], [min(12, e.tokens_left()) for e in eps], [e.temperature for e in eps],
            [500 + 100 * e.prompt_index + len(e.texts) for e in eps], []))
        return [ModelTurn(t["ids"], t["logprobs"], t["text"], t["version"]) for t in turns]

    episodes = [Episode(i, tt.prompt_ids(env.reset({"question": q})), 0.8, EpisodeLimits(max_turns=3, max_tokens=300))
                for i, q in enumerate(["add 5 and 6", "add 7 and 1", "name a fruit", "count to 4"])]
    trajectories = run_episodes(episodes, generate, lambda eps, texts: [env.step(t) for t in texts], tt)
    assert [t.turn_versions for t in trajectories] == [[0, 1, 1]] * 4
    items = [TrainItem(t.prompt_ids, t.completion_ids, adv, temperature=t.temperature,
                       sampling_logprobs=t.sampling_logprobs, loss_mask=t.loss_mask)
             for t, adv in zip(trajectories, [1.0, -1.0, 0.5, -0.5])]
    learner_lp = local_ray.get(learner.logprobs.remote(items))
    weights, k3 = [], []
    for t, lp in zip(trajectories, learner_lp):
        first_end = t.turn_ends[0] + 1  # the first turn's ids are completion_ids[:first_end]
        for j, (m, got, want) in enumerate(zip(t.loss_mask, lp, t.sampling_logprobs)):
            if not m:
                continue
            log_ratio = got - want
            if j >= first_end:  # sampled by the weights the learner holds
                assert abs(log_ratio) < 1e-3, (j, got, want)
            weights.append(min(math.exp(log_ratio), 2.0))
            k3.append(math.exp(log_ratio) - 1.0 - log_ratio)
        stale = [abs(g - w) for g, w in zip(lp[:first_end], t.sampling_logprobs[:first_end])]
        assert max(stale) > 1e-3, stale  # one step of training moved the first turn's log-probs
    # the stats are token means over the model ids of the batch (environment ids not counted)
    stats = local_ray.get(learner.train_on_batch.remote(items))
    assert stats["train/tis_weight"] == pytest.approx(sum(weights) / len(weights), abs=1e-6)
    assert stats["train/mismatch_kl"] == pytest.approx(sum(k3) / len(k3), rel=1e-3, abs=1e-7)
    assert stats["train/mismatch_kl"] > 1e-6
