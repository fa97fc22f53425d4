"""Training FLOPs of a pass: the model's linear weights counted by hand, the total checked
against torch's own FLOP counter on a real forward and backward, and the work of a
micro-batch with and without a shared prompt counted by hand."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from rlsys.models.flops import ModelShape, pass_work, training_flops


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                      attn_implementation="eager")
    return LlamaForCausalLM(cfg)


def test_model_shape_by_hand():
    shape = ModelShape.of(_model())
    # per layer: q 64x64, k and v 64x32 (2 kv heads of 16), o 64x64, gate/up/down 64x128
    assert shape.linear_params == 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128)
    assert shape.head_params == 96 * 64
    assert (shape.layers, shape.attention_width) == (2, 64)


def test_training_flops_agree_with_torchs_counter():
    model, length = _model(), 20
    ids = torch.randint(0, 96, (1, length))
    with FlopCounterMode(display=False) as counter:
        model(ids).logits.sum().backward()
    # eager attention multiplies the whole length x length score matrix (the mask comes after)
    want = training_flops(ModelShape.of(model), length, length, length * length)
    assert counter.get_total_flops() == pytest.approx(want, rel=1e-3)


def test_training_flops_with_frozen_weights_agree_with_torchs_counter():
    """LoRA's case: the weights take no gradient, but the backward still runs to the bottom
    (here the embedding trains, as LoRA's lowest adapter would), so every matmul computes its
    input's gradient."""
    model, length = _model(), 20
    for name, p in model.named_parameters():
        p.requires_grad_(name == "model.embed_tokens.weight")
    ids = torch.randint(0, 96, (1, length))
    with FlopCounterMode(display=False) as counter:
        model(ids).logits.sum().backward()
    want = training_flops(ModelShape.of(model), length, length, length * length, frozen_weights=True)
    assert counter.get_total_flops() == pytest.approx(want, rel=1e-3)
    assert want < 0.7 * training_flops(ModelShape.of(model), length, length, length * length)


def test_pass_work_with_and_without_a_shared_prompt():
    prompts = [[1, 2, 3], [1, 2, 3], [4, 5]]
    completions = [[7, 8], [9], [6, 6, 6]]
    # shared: prompts 3 + 2 tokens (pairs 6 + 3); each completion token sees the prompt and itself:
    # 2 after 3 (4 + 5), 1 after 3 (4), 3 after 2 (3 + 4 + 5)
    assert pass_work(prompts, completions, shared=True) == (3 + 2 + 6, 6, 6 + 3 + 9 + 4 + 12)
    # unshared: three causal sequences of 5, 4 and 5 tokens
    assert pass_work(prompts, completions, shared=False) == (14, 6, 15 + 10 + 15)
