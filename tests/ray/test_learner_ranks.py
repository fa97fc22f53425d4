"""Real DeepSpeed learners as Ray actors: two data-parallel ranks compute exactly the loss
and the update of one rank on the same batch, and ZeRO-3 trains and syncs like ZeRO-2."""

import pytest
import torch

from rlsys.config import Config
from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import push_weights
from rlsys.observability.rank_stats import merge_rank_stats
from rlsys.records import TrainItem

pytestmark = pytest.mark.ray

# Uneven lengths: rank 0 gets items 0 and 2 (8 tokens), rank 1 items 1 and 3 (6 tokens), so
# a mean of per-rank token means (-0.146) differs from the global token mean (-0.25).
ITEMS = [TrainItem([1, 2, 3], [10, 11, 12, 13, 14, 15], 1.0), TrainItem([1, 2, 3], [20], -1.0),
         TrainItem([4, 5], [10, 11], 0.5), TrainItem([4, 5], [30, 31, 32, 33, 34], -0.5)]
GLOBAL_TOKEN_MEAN = -sum(it.advantage * len(it.completion_ids) for it in ITEMS) / sum(
    len(it.completion_ids) for it in ITEMS)


def _cfg(path: str, ranks: int, zero: int) -> Config:
    return Config.model_validate({
        "model": {"path": path, "dtype": "float32", "max_model_len": 256},
        "rollout": {"kv_cache_gib": 0.25, "prompts_per_iteration": 1, "group_size": 4},
        "learner": {"num_ranks": ranks, "zero_stage": zero, "mini_batch_size": 4, "micro_batch_size": 2,
                    "lr": 1e-3, "num_cpus": 0.25},
        "algorithm": {"kl_beta": 0.0},
        "sync": {"bucket_mb": 0.05, "timeout_s": 30},
    })


def _train(local_ray, path, ranks, zero, out_dir):
    from rlsys.distributed.actors import start_learners

    learners = start_learners(_cfg(path, ranks, zero), path, 10)
    per_rank = local_ray.get([lr.train_on_batch.remote(ITEMS[r::ranks]) for r, lr in enumerate(learners)])
    local_ray.get([lr.save.remote(str(out_dir), "float32") for lr in learners])
    return learners, merge_rank_stats(per_rank)


def _weights(path):
    from transformers import AutoModelForCausalLM

    return dict(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).named_parameters())


@pytest.fixture(scope="module")
def one_rank(local_ray, tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "model"
    learners, stats = _train(local_ray, tiny_model_path, 1, 2, out)
    local_ray.kill(learners[0])
    return stats, _weights(out)


def _assert_same_update(stats, weights, reference):
    ref_stats, ref_weights = reference
    assert stats["train/policy_loss"] == pytest.approx(GLOBAL_TOKEN_MEAN, abs=1e-5)
    assert stats["train/grad_norm"] == pytest.approx(ref_stats["train/grad_norm"], rel=1e-4)
    assert stats["train/tokens"] == ref_stats["train/tokens"] == 14
    for name, tensor in ref_weights.items():
        # Adam's first step moves every weight by about lr = 1e-3, whatever the gradient's
        # size: a wrong normaliser flips the sign of some updates (differences of ~2e-3).
        # Summation order alone moves a few weights whose gradient is ~1e-8 by up to ~1e-5.
        assert torch.allclose(weights[name], tensor, atol=1e-4), name


def test_one_rank_loss_is_the_global_token_mean(one_rank):
    stats, _ = one_rank
    assert stats["train/policy_loss"] == pytest.approx(GLOBAL_TOKEN_MEAN, abs=1e-5)
    assert GLOBAL_TOKEN_MEAN == pytest.approx(-0.25)


def test_two_ranks_give_the_one_rank_loss_and_update(local_ray, tiny_model_path, tmp_path, one_rank):
    learners, stats = _train(local_ray, tiny_model_path, 2, 2, tmp_path / "model")
    for lr in learners:
        local_ray.kill(lr)
    _assert_same_update(stats, _weights(tmp_path / "model"), one_rank)


def test_zero3_two_ranks_train_like_zero2_and_sync_to_an_engine(local_ray, tiny_model_path, tmp_path, one_rank):
    from rlsys.distributed.actors import start_rollout_workers

    learners, stats = _train(local_ray, tiny_model_path, 2, 3, tmp_path / "model")
    _assert_same_update(stats, _weights(tmp_path / "model"), one_rank)
    cfg = _cfg(tiny_model_path, 2, 3)
    rollout = start_rollout_workers(cfg, tiny_model_path)[0]
    local_ray.get(rollout.ping.remote())
    host, port = local_ray.get(learners[0].sync_endpoint.remote())
    local_ray.get([lr.init_sync_group.remote("gloo", host, port, 2, 30.0) for lr in learners]
                  + [rollout.init_sync_group.remote("gloo", host, port, 1, 2, 30.0)])
    keys = local_ray.get(rollout.weight_keys.remote())
    sync = cfg.sync.model_copy(update={"probes": len(keys)})  # check every tensor
    out = push_weights(ActorGroup(learners, ["learner-0", "learner-1"]), ActorGroup([rollout], ["rollout-0"]), sync,
                       "float32", 1, keys)[0]
    assert out["sync/probes"] == len(keys)
    # Independently of the probes: the engine's tensors equal the saved (gathered) weights.
    saved = _weights(tmp_path / "model")
    engine = local_ray.get(rollout.checksums.remote())
    for key, (s, q) in engine.items():
        parts = [saved[p].double() for p in key.split("+")]
        assert s == pytest.approx(sum(float(t.sum()) for t in parts), rel=1e-9, abs=1e-9), key
        assert q == pytest.approx(sum(float((t * t).sum()) for t in parts), rel=1e-9), key
    for handle in [*learners, rollout]:
        local_ray.kill(handle)
