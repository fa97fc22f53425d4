"""A real learner rank's scoring passes against its training pass and its reference, where
they must agree before the first update: a model whose config asks for dropout (the
training pass runs in train mode), and bf16 autocast on the CPU (the reference must compute
as the policy does)."""

import json
import shutil

import pytest

from rlsys.config import Config
from rlsys.distributed.actors import start_learners
from rlsys.records import TrainItem

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


@pytest.mark.parametrize("per_token", [False, True])
def test_current_old_policy_equals_a_separate_learner_pass_for_one_step(local_ray, tiny_model_path, per_token):
    """One optimiser step per batch: the ratio's denominator may be the training pass's own
    log-probs (`current`, no extra pass) because they equal a separate pass before the update
    (`learner`). Two learners from the same weights, one of each, trained on the same items
    (sequence advantages as GRPO; per-token advantages as PPO's GAE gives) must end equal."""
    def start(source: str):
        cfg = _cfg(tiny_model_path).model_copy(deep=True)
        cfg.algorithm.old_policy = source
        return start_learners(cfg, tiny_model_path, total_optimizer_steps=4)[0]

    current, learner = start("auto"), start("learner")
    try:
        items = _items(1.0)
        if per_token:
            for i, it in enumerate(items):
                it.token_advantages = [((j + i) % 3 - 1) * 0.5 for j in range(len(it.completion_ids))]
        stats = local_ray.get([current.train_on_batch.remote(items), learner.train_on_batch.remote(items)])
        after = local_ray.get([current.logprobs.remote(items), learner.logprobs.remote(items)])
    finally:
        local_ray.kill(current)
        local_ray.kill(learner)
    for key in ("train/policy_loss", "train/grad_norm", "train/kl"):
        assert stats[0][key] == pytest.approx(stats[1][key], rel=1e-5, abs=1e-7), key
    assert stats[0]["train/ratio"] == pytest.approx(1.0, abs=1e-6) and stats[1]["train/ratio"] == pytest.approx(1.0, abs=1e-6)
    for a, b in zip(*after):
        assert a == pytest.approx(b, abs=1e-5)
    assert stats[0]["train/grad_norm"] > 1e-3  # a real step was taken


def test_a_rendezvous_port_taken_before_rank_0_binds_it_is_replaced(local_ray, tiny_model_path, tmp_path,
                                                                    monkeypatch):
    """The learner's process-group port is picked free, then bound by rank 0 a moment later;
    another process may take it in between. Here one does (the test listens on it): the start
    must pick another port and go on, not stop the run."""
    import socket
    import sys

    import cloudpickle

    from rlsys.distributed import actors

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    calls = tmp_path / "calls"

    def endpoint(busy=taken.getsockname()[1], calls=str(calls)):
        import os

        from rlsys.transport.ports import free_port

        first = not os.path.exists(calls)
        with open(calls, "a") as fh:
            fh.write("x")
        return ("127.0.0.1", busy) if first else ("127.0.0.1", free_port())

    monkeypatch.setattr(actors, "_free_endpoint", endpoint)
    try:
        learner = start_learners(_cfg(tiny_model_path), tiny_model_path, total_optimizer_steps=4)[0]
        try:
            assert len(local_ray.get(learner.logprobs.remote(_items()))) == len(COMPLETIONS)
        finally:
            local_ray.kill(learner)
    finally:
        taken.close()
    assert calls.read_text() == "xx"  # the taken port, then another
