"""A third-party environment in real episodes: reasoning-gym's chain_sum tasks, scored by
reasoning-gym's own scorer, with three attempts each (a wrong answer is told so), in real
environment actors against a real vLLM engine on the tiny model. Each turn's reward is checked
against the task's expression evaluated by Python on the text the model wrote in that turn."""

import re

import pytest

from rlsys.config import Config
from rlsys.data.sources import load_reasoning_gym
from rlsys.records import PromptItem

pytestmark = pytest.mark.ray


def _turn_texts(tok, t) -> list[str]:
    """Each model turn's sampled ids, decoded: the runs of mask 1, in order."""
    turns, current = [], []
    for i, (tid, m) in enumerate(zip(t.completion_ids, t.loss_mask)):
        if m:
            current.append(tid)
        if i in t.turn_ends:
            turns.append(tok.decode(current))
            current = []
    return turns


def test_reasoning_gym_tasks_run_as_multi_attempt_episodes(local_ray, tiny_model_path):
    from transformers import AutoTokenizer

    from rlsys.distributed.actors import env_pool, rollout_pool
    from rlsys.distributed.episode_runner import EpisodeRunner
    from rlsys.envs.tokens import TurnTokens

    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 512},
        "rollout": {"num_workers": 1, "kv_cache_gib": 0.25, "prompts_per_iteration": 3, "group_size": 2,
                    "max_new_tokens": 10, "num_cpus": 0.25},
        "learner": {"mini_batch_size": 6, "micro_batch_size": 6},
        "env": {"type": "reasoning_gym", "kwargs": {"attempts": 3}, "max_turns": 3, "max_tokens": 400,
                "num_workers": 2},
    })
    tasks = load_reasoning_gym("chain_sum", 3, seed=11)
    items = [PromptItem(t.question, [1], t.question, t.answer, t.metadata) for t in tasks]
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    rollout, envs = rollout_pool(cfg, tiny_model_path), env_pool(cfg)
    try:
        runner = EpisodeRunner(cfg, rollout, envs, TurnTokens(tok), "")
        trajectories = runner.run(items, [1.0, 1.0], list(range(3)), "generation", 120)
    finally:
        rollout.kill()
        envs.kill()
    assert len(trajectories) == 6
    for t in trajectories:
        right = eval(tasks[t.prompt_index].metadata["expression"])
        texts = _turn_texts(tok, t)
        scores = []
        for text in texts:
            numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
            scores.append(float(bool(numbers) and float(numbers[-1].replace(",", "")) == right))
        # the episode ends at the first right answer or after the third try
        expected_turns = next((i + 1 for i, s in enumerate(scores) if s == 1.0), 3)
        assert t.status == "done" and len(t.turn_ends) == expected_turns == len(texts), (t.status, texts)
        # reasoning-gym's score is the last turn's reward; the tries before it earn nothing
        assert t.turn_rewards == [0.0] * (expected_turns - 1) + [scores[expected_turns - 1]]
        if expected_turns > 1:  # the feedback went in between, as environment ids outside the loss
            between = tok.decode([i for i, m in zip(t.completion_ids, t.loss_mask) if not m])
            assert "That is not right" in between
