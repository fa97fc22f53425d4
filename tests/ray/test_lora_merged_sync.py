"""LoRA with `engine_weights: merged`: a real DeepSpeed learner trains PEFT adapters and a
real vLLM engine *without* LoRA receives W + (alpha/r) B A over a real gloo broadcast.

The expected log-probs come from the learner's PEFT forward with the adapter applied as its
own layer (x W^T + x A^T B^T scaled), not from merged weights, so a wrong merge (scale,
transpose, a layer left out) shows as a gap."""

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
    cfg, rollout, learner = lora_engine_and_learner(local_ray, tiny_model_path, "merged")
    yield cfg, rollout, learner
    local_ray.kill(rollout)
    local_ray.kill(learner)


def test_a_plain_engine_samples_the_adapted_policy(actors, local_ray, tiny_model_path):
    from transformers import AutoModelForCausalLM

    cfg, rollout, learner = actors
    base = local_ray.get(rollout.generate.remote(PROMPTS, [0.0], 12, 1.0, 0))
    for version in (1, 2):
        g = torch.Generator().manual_seed(version)
        items = [TrainItem([1, 2, 3], torch.randint(40, 900, (6,), generator=g).tolist(), a)
                 for a in (1.0, -1.0, 1.0, -1.0)]
        local_ray.get(learner.train_on_batch.remote(items))
        stats = push_weights(ActorGroup([learner], ["learner-0"]), ActorGroup([rollout], ["rollout-0"]), cfg.sync,
                             "float32", version, ["unused"])[0]
        samples = local_ray.get(rollout.generate.remote(PROMPTS, [0.0], 12, 1.0, 0))
        assert {s.weight_version for s in samples} == {version}
        scored = [TrainItem(s.prompt_ids, s.completion_ids, 0.0) for s in samples]
        learner_lp = local_ray.get(learner.logprobs.remote(scored))
        for s, lp in zip(samples, learner_lp):
            assert (torch.tensor(s.sampling_logprobs) - torch.tensor(lp)).abs().max() < 2e-3
    # Every weight of the base model travels, at its own size, in fp32.
    original = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    assert stats["sync/bytes"] == 4 * sum(p.numel() for p in original.parameters())
    # The adapter moved the policy: the engine no longer scores as the base model did.
    moved = [torch.tensor(s.sampling_logprobs) - torch.tensor(b.sampling_logprobs)
             for s, b in zip(samples, base) if s.completion_ids == b.completion_ids]
    assert len(moved) < len(base) or max(m.abs().max() for m in moved) > 1e-3
