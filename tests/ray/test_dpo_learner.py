"""DPO on two real DeepSpeed learner ranks (ZeRO-2, gloo) without LoRA: the reference is a
frozen copy, the step-0 invariants hold to the bit, and the first step's gradient equals an
independent transformers gradient of the hinge loss over all eight pairs."""

import pytest
import torch

from rlsys.config import Config
from rlsys.distributed.groups import LearnerGroup
from rlsys.records import PairItem

pytestmark = pytest.mark.ray

BETA = 0.5


def _pairs():
    g = torch.Generator().manual_seed(7)
    ids = lambda n: torch.randint(3, 1000, (n,), generator=g).tolist()  # noqa: E731
    return [PairItem(ids(4 + i % 3), ids(5 + i % 2), ids(3 + i % 4)) for i in range(8)]


def _logp(model, prompt, answer):
    logits = model(torch.tensor([prompt + answer])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[len(prompt) - 1 + k, t] for k, t in enumerate(answer))


def test_two_rank_dpo_hinge_step_zero_and_gradient(local_ray, tiny_model_path):
    from transformers import AutoModelForCausalLM

    from rlsys.distributed.actors import start_learners

    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 256},
        "data": {"preferences": {"path": "unused.jsonl"}},
        "learner": {"num_ranks": 2, "zero_stage": 2, "mini_batch_size": 8, "micro_batch_size": 2, "lr": 1e-3,
                    "grad_clip": 1e6, "num_cpus": 0.25},
        "algorithm": {"type": "dpo", "loss": "hinge", "beta": BETA},
    })
    handles = start_learners(cfg, tiny_model_path, total_optimizer_steps=10)
    group = LearnerGroup(handles, ["learner-0", "learner-1"])
    try:
        pairs = _pairs()
        group.reference_pairs(pairs, timeout_s=120)
        before = group.evaluate_pairs(pairs, timeout_s=120)
        # The frozen copy and the untouched policy, batched alike: equal to the bit.
        assert [row[0] for row in before] == [1.0] * 8  # hinge at h = 0
        assert [row[1] for row in before] == [0.0] * 8 and [row[2] for row in before] == [0.0] * 8
        step = group.train_pairs(pairs, timeout_s=120)
        assert len(step["pairs"]) == 8 and step["grad_norm"] is not None

        # Independent gradient: d/dtheta mean_i relu(1 - beta h_i) at h = 0 is
        # -(beta / 8) sum_i (grad log p(chosen_i) - grad log p(rejected_i)).
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
        loss = sum(-(BETA / 8) * (_logp(model, p.prompt_ids, p.chosen_ids) - _logp(model, p.prompt_ids, p.rejected_ids))
                   for p in pairs)
        loss.backward()
        want = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
        assert step["grad_norm"] == pytest.approx(float(want), rel=1e-3)

        after = group.evaluate_pairs(pairs, timeout_s=120)
        margins = [row[1] - row[2] for row in after]
        assert sum(margins) / 8 > 0 and sum(m > 0 for m in margins) >= 6
    finally:
        group.kill()
