"""A real learner rank's scoring passes against its training pass and its reference, where
they must agree before the first update: a model whose config asks for dropout (the
training pass runs in train mode), and bf16 autocast on the CPU (the reference must compute
as the policy does)."""

import json
import shutil

import pytest

from rlsys.config import Config
from rlsys.distributed.actors import start_learners
from rlsys.types import TrainItem

pytestmark = pytest.mark.ray

PROMPTS = [[1, 406, 201, 19, 267], [1, 423, 201, 30]]
COMPLETIONS = [[287, 268, 2, 40, 41, 42], [31, 55, 300, 12], [90, 91], [17, 18, 19, 20, 21]]


def _cfg(model_path: str, dtype: str = "float32") -> Config:
    return Config.model_validate({
        "model": {"path": model_path, "dtype": dtype, "max_model_len": 256},
        "rollout": {"prompts_per_iteration": 2, "group_size": 2},
        "learner": {"mini_batch_size": 4, "micro_batch_size": 2, "lr": 1e-3, "epochs": 1},
        "algorithm": {"kl_beta": 0.1},
    })


def _items(advantage: float = 1.0) -> list[TrainItem]:
    return [TrainItem(PROMPTS[i // 2], c, advantage if i % 2 else -advantage) for i, c in enumerate(COMPLETIONS)]


def test_dropout_in_the_config_is_off_in_every_pass(local_ray, tiny_model_path, tmp_path):
    """attention_dropout 0.1 in the config: the training pass before any update (train mode)
    must give the scoring pass's log-probs (eval mode), as a model without dropout does."""
    model = tmp_path / "dropout"
    shutil.copytree(tiny_model_path, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.1}))
    learner = start_learners(_cfg(str(model)), str(model), total_optimizer_steps=4)[0]
    try:
        items = _items()
        scored = local_ray.get(learner.logprobs.remote(items))
        for it, lp in zip(items, scored):
            it.sampling_logprobs = lp  # the mismatch metric compares the training pass with these
        stats = local_ray.get(learner.train_on_batch.remote(items))
    finally:
        local_ray.kill(learner)
    assert stats["train/mismatch_tokens"] == sum(len(c) for c in COMPLETIONS)
    assert stats["train/logprob_mismatch_max"] < 1e-5
    assert abs(stats["train/kl"]) < 1e-6  # the frozen reference too


def test_bf16_reference_equals_the_policy_before_any_update(local_ray, tiny_model_path):
    """On the CPU bf16 is autocast over fp32 weights: a reference held as a pure-bf16 copy
    would differ from the policy at step 0 (KL not 0). They must be bit-identical."""
    learner = start_learners(_cfg(tiny_model_path, "bfloat16"), tiny_model_path, total_optimizer_steps=4)[0]
    try:
        items = _items()
        policy = local_ray.get(learner.logprobs.remote(items))
        reference = local_ray.get(learner.logprobs.remote(items, True))
        stats = local_ray.get(learner.train_on_batch.remote(items))
    finally:
        local_ray.kill(learner)
    assert policy == reference and len(policy[0]) == len(COMPLETIONS[0])
    assert stats["train/kl"] == 0.0
