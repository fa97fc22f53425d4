"""Adapter-only weight sync: a real DeepSpeed learner training LoRA adapters (PEFT) and a real
vLLM engine with LoRA enabled, on the tiny random model, over a real gloo broadcast.

The expected log-probs come from the learner's own PEFT forward (an independent
implementation of LoRA from vLLM's punica kernels), and the base model's from the engine
before any adapter arrived."""

import pytest
import torch

from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import push_weights
from rlsys.records import TrainItem

from .conftest import lora_engine_and_learner

pytestmark = pytest.mark.ray

PROMPTS = [[1, 406, 201, 19, 267, 287, 268, 2], [1, 423, 201, 30, 31], [1, 77, 78, 79]]


@pytest.fixture(scope="module")
def actors(local_ray, tiny_model_path):
    cfg, rollout, learner = lora_engine_and_learner(local_ray, tiny_model_path, "adapter")
    yield cfg, rollout, learner
    local_ray.kill(rollout)
    local_ray.kill(learner)


def _greedy(local_ray, rollout, use_adapter=True):
    return local_ray.get(rollout.generate.remote(PROMPTS, [0.0], 12, 1.0, 0, use_adapter))


def _sync(cfg, learner, rollout, version):
    return push_weights(ActorGroup([learner], ["learner-0"]), ActorGroup([rollout], ["rollout-0"]), cfg.sync,
                        "float32", version, [])[0]


def _learner_logprobs(local_ray, learner, samples):
    items = [TrainItem(s.prompt_ids, s.completion_ids, 0.0) for s in samples]
    return [torch.tensor(lp) for lp in local_ray.get(learner.logprobs.remote(items))]


def _train(local_ray, learner, seed):
    g = torch.Generator().manual_seed(seed)
    items = [TrainItem([1, 2, 3], torch.randint(40, 900, (6,), generator=g).tolist(), a) for a in (1.0, -1.0, 1.0, -1.0)]
    local_ray.get(learner.train_on_batch.remote(items))


def test_zero_adapter_gives_the_base_model_and_only_adapter_bytes_travel(actors, local_ray):
    cfg, rollout, learner = actors
    base = _greedy(local_ray, rollout)  # no adapter yet: the base model
    stats = _sync(cfg, learner, rollout, 1)  # PEFT's initial adapter: B = 0
    # r=8 on 7 projections x 2 layers of the tiny model, A: r x in, B: out x r, fp32:
    # q,o 64x64; k,v 64->32; gate,up 64->128; down 128->64.
    per_layer = sum(8 * (i + o) for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)])
    assert stats["sync/bytes"] == 2 * per_layer * 4
    with_zero = _greedy(local_ray, rollout)
    for b, z in zip(base, with_zero):
        assert z.completion_ids == b.completion_ids
        assert torch.allclose(torch.tensor(z.sampling_logprobs), torch.tensor(b.sampling_logprobs), atol=1e-5)


def test_three_syncs_each_take_effect_and_match_the_learner(actors, local_ray):
    """After each training step and sync, vLLM's log-probs with the adapter equal the PEFT
    learner's within 1e-2 per token, and differ from the previous adapter's."""
    cfg, rollout, learner = actors
    base = _greedy(local_ray, rollout, use_adapter=False)
    previous = None
    for version in (2, 3, 4):
        _train(local_ray, learner, version)
        _sync(cfg, learner, rollout, version)
        samples = _greedy(local_ray, rollout)
        assert {s.weight_version for s in samples} == {version}
        learner_lp = _learner_logprobs(local_ray, learner, samples)
        for s, lp in zip(samples, learner_lp):
            assert (torch.tensor(s.sampling_logprobs) - lp).abs().max() < 1e-2
        # The same tokens scored by the base (adapter off in the engine) differ: the adapter is used.
        engine_lp = torch.cat([torch.tensor(s.sampling_logprobs) for s in samples])
        if previous is not None:
            assert (engine_lp.shape != previous.shape) or (engine_lp - previous).abs().max() > 1e-3
        previous = engine_lp
    # The engine's base (use_adapter=False) is still the untrained model.
    assert [s.completion_ids for s in _greedy(local_ray, rollout, use_adapter=False)] == [s.completion_ids for s in base]
    assert [s.completion_ids for s in samples] != [s.completion_ids for s in base]


def test_base_weights_stay_bit_identical_and_only_the_adapter_trains(actors, local_ray, tiny_model_path):
    from transformers import AutoModelForCausalLM

    from rlsys.transport.weight_sync import tensor_checksum

    _, _, learner = actors
    sums = local_ray.get(learner.checksums.remote("float32", True))
    original = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    base = {n: tensor_checksum(p) for n, p in original.named_parameters()}
    peft_names = {n: n.replace("base_model.model.", "", 1).replace(".base_layer", "") for n in sums if "lora_" not in n}
    assert sorted(peft_names.values()) == sorted(base)
    for peft_name, name in peft_names.items():
        assert sums[peft_name] == base[name], name  # exact: not one bit moved
    lora_b = [v for n, v in sums.items() if "lora_B" in n]
    assert len(lora_b) == 14 and all(v[1] > 0 for v in lora_b)  # B left zero: the adapter trained
    counts = local_ray.get(learner.parameter_counts.remote())
    assert counts["trainable"] == sum(8 * (i + o) for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128),
                                                               (64, 128), (128, 64)]) * 2
    assert counts["total"] == counts["trainable"] + sum(p.numel() for p in original.parameters())
