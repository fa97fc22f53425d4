"""DPO losses against hand-computed numbers, the step-0 invariants on a real PEFT model
(adapter B = 0 versus the adapter switched off), pairing of sampled groups, pair metrics,
and the size of an adapter-only sync for SmolLM2's shape."""

import math

import pytest
import torch

from rlsys.algorithms.dpo import best_worst_pairs, preference_loss
from rlsys.config import LoraSettings
from rlsys.training.preference import pair_logprobs, pair_metrics
from rlsys.records import PairItem


def _loss(kind, beta=0.5, smoothing=0.0):
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    # policy chosen/rejected -10, -12; reference -11, -11.5; 4 and 5 answer tokens
    return preference_loss(t(-10.0), t(-12.0), t(-11.0), t(-11.5), t(4.0), t(5.0), kind, beta, smoothing)


def test_losses_by_hand():
    # chosen log-ratio 1.0, rejected -0.5, h = 1.5, beta h = 0.75
    out = _loss("sigmoid")
    assert float(out.losses) == pytest.approx(math.log1p(math.exp(-0.75)), abs=1e-12)
    assert float(out.chosen_rewards) == pytest.approx(0.5) and float(out.rejected_rewards) == pytest.approx(-0.25)
    smoothed = _loss("sigmoid", smoothing=0.1)
    assert float(smoothed.losses) == pytest.approx(0.9 * math.log1p(math.exp(-0.75)) + 0.1 * math.log1p(math.exp(0.75)))
    assert float(_loss("hinge").losses) == pytest.approx(0.25)
    assert float(_loss("hinge", beta=1.0).losses) == 0.0  # beta h = 1.5 > 1: no loss
    # IPO on per-token means: chosen (-2.5) - (-2.75) = 0.25, rejected (-2.4) - (-2.3) = -0.1
    assert float(_loss("ipo").losses) == pytest.approx((0.35 - 1.0) ** 2)
    with pytest.raises(ValueError, match="unknown preference loss"):
        _loss("kto")
    # RPO: + alpha x the chosen answer's per-token NLL, -(-10) / 4
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    rpo = preference_loss(t(-10.0), t(-12.0), t(-11.0), t(-11.5), t(4.0), t(5.0), "sigmoid", 0.5, 0.0, nll_coef=0.2)
    assert float(rpo.losses) == pytest.approx(math.log1p(math.exp(-0.75)) + 0.2 * 2.5)


def test_sigmoid_gradient_raises_chosen_and_lowers_rejected():
    pc = torch.tensor([-10.0], requires_grad=True)
    pr = torch.tensor([-12.0], requires_grad=True)
    ref = torch.tensor([-11.0])
    preference_loss(pc, pr, ref, ref, torch.ones(1), torch.ones(1), "sigmoid", 0.1).losses.sum().backward()
    assert pc.grad.item() < 0 < pr.grad.item()
    assert pc.grad.item() == pytest.approx(-pr.grad.item())


@pytest.fixture(scope="module")
def peft_tiny(tiny_model_path):
    from transformers import AutoModelForCausalLM

    from rlsys.models.lora import apply_lora

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    return apply_lora(model, LoraSettings(r=8, alpha=16), tiny_model_path).eval()


def test_step_zero_invariants_with_peft_default_init(peft_tiny):
    """B = 0: the policy equals the reference (the adapter off), so every reward is exactly 0
    and the losses take their values at h = 0."""
    g = torch.Generator().manual_seed(0)
    items = [PairItem(torch.randint(3, 1000, (5,), generator=g).tolist(), torch.randint(3, 1000, (7,), generator=g).tolist(),
                      torch.randint(3, 1000, (4,), generator=g).tolist()) for _ in range(3)]
    idx = [0, 1, 2]
    with torch.no_grad():
        pc, pr, nc, nr = pair_logprobs(peft_tiny, items, idx, 0, 64)
        with peft_tiny.disable_adapter():
            rc, rr, _, _ = pair_logprobs(peft_tiny, items, idx, 0, 64)
    assert torch.equal(pc, rc) and torch.equal(pr, rr)
    assert nc.tolist() == [7, 7, 7] and nr.tolist() == [4, 4, 4]
    beta = 0.2
    for kind, expected in (("sigmoid", math.log(2)), ("hinge", 1.0), ("ipo", 1 / (4 * beta**2))):
        out = preference_loss(pc, pr, rc, rr, nc, nr, kind, beta)
        assert out.losses.tolist() == pytest.approx([expected] * 3, abs=1e-6)
        assert out.chosen_rewards.tolist() == [0.0] * 3 and out.rejected_rewards.tolist() == [0.0] * 3
    # Summed log-probs equal a plain full forward's (an independent computation).
    logits = peft_tiny(torch.tensor([items[0].prompt_ids + items[0].chosen_ids])).logits[0]
    lp = torch.log_softmax(logits.double(), -1)
    want = sum(lp[4 + k, t].item() for k, t in enumerate(items[0].chosen_ids))
    assert pc[0].item() == pytest.approx(want, abs=1e-3)


def test_only_adapter_parameters_train_and_embeddings_are_never_targeted(peft_tiny):
    trainable = [n for n, p in peft_tiny.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2  # A and B, 7 projections, 2 layers
    with pytest.raises(ValueError, match="embedding/output layers"):
        LoraSettings(target_modules=["q_proj", "embed_tokens"])


def test_unknown_target_module_names_the_linear_layers(tiny_model_path):
    from transformers import AutoModelForCausalLM

    from rlsys.models.lora import apply_lora

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"\['qkv'\] are not linear layers .* 'q_proj'"):
        apply_lora(model, LoraSettings(target_modules=["qkv"]), tiny_model_path)


def test_best_worst_pairs():
    rewards = [0.0, 1.0, 0.5, 1.0,   # best: first of the tied 1.0s; worst 0.0
               2.0, 2.0, 2.0, 2.0,   # all equal: no pair
               -1.0, 0.0, -1.0, 3.0]  # worst: last of the tied -1.0s
    assert best_worst_pairs(rewards, 4) == [(1, 0), (11, 10)]
    assert best_worst_pairs(rewards, 4, min_gap=1.0) == [(11, 10)]  # a gap of exactly 1.0 is not enough
    assert best_worst_pairs([1.0, 0.9, 0.0, -0.05], 2, min_gap=0.5) == []


def test_pair_metrics_by_hand():
    rows = [[0.5, 0.2, -0.1, -10.0, -20.0], [0.9, -0.3, 0.1, -12.0, -8.0]]
    m = pair_metrics(rows, "heldout")
    assert m["heldout/loss"] == pytest.approx(0.7)
    assert m["heldout/margin"] == pytest.approx(((0.2 + 0.1) + (-0.3 - 0.1)) / 2)
    assert m["heldout/accuracy"] == 0.5 and m["heldout/pairs"] == 2
    assert m["heldout/logps_rejected"] == pytest.approx(-14.0)


def test_adapter_sync_is_under_one_and_a_half_percent_of_a_full_sync_for_smollm2():
    """SmolLM2-135M's shape (30 layers, hidden 576, 9 heads of 64, 3 KV heads, MLP 1536,
    vocab 49152, tied embeddings) on the meta device; r = 8 on q/k/v/o; bf16 both ways."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlsys.models.lora import adapter_parameters, apply_lora
    from rlsys.transport.weight_sync import plan_buckets

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
        full = plan_buckets([(n, tuple(p.shape), torch.bfloat16) for n, p in model.named_parameters()], 2**26, 1)
        lora = apply_lora(model, LoraSettings(r=8, alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
                          "smollm2")
        adapter = plan_buckets([(n, tuple(p.shape), torch.bfloat16) for n, p in adapter_parameters(lora)], 2**26, 1)
    per_layer = 8 * (576 + 576) * 2 + 8 * (576 + 192) * 2  # q, o and k, v: r x (in + out) each
    assert adapter.total_bytes == 30 * per_layer * 2
    assert full.total_bytes == 134_515_008 * 2
    assert adapter.total_bytes / full.total_bytes <= 0.015
    names = [m.name for b in adapter.buckets for m in b]
    assert names[0] == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
