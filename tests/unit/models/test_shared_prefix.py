"""The shared-prefix forward against the model's own forward over each whole sequence:
log-probs, entropy and parameter gradients, in both layouts (packed under a tree mask with
sdpa and eager attention; the repeated prompt cache otherwise)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlsys.models import shared_prefix as sp
from rlsys.models.shared_prefix import pack_shared, shared_prefix_logprobs, supports_shared_prefix

LAYOUTS = ["sdpa", "eager", "cached"]

SMALL = dict(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=64)
# Two groups with prompts of different lengths (so the shorter one is padded) and ragged completions.
PROMPTS = [[1, 2, 3, 4, 5]] * 3 + [[7, 8]] * 2
COMPLETIONS = [[9, 10], [11, 12, 13, 14], [15], [16, 17, 18], [19, 20, 21, 22, 23]]
TEMPS = [1.0, 0.7, 1.3, 1.0, 0.9]


def _model(cls=LlamaForCausalLM, cfg=LlamaConfig, layout="sdpa"):
    torch.manual_seed(0)
    impl = "sdpa" if layout == "cached" else layout
    return cls(cfg(**SMALL, attn_implementation=impl)).eval()


@pytest.fixture(params=LAYOUTS)
def layout(request, monkeypatch):
    if request.param == "cached":
        monkeypatch.setattr(sp, "packs_with_a_tree_mask", lambda model: False)
    return request.param


def _reference(model, temps=TEMPS):
    """Each sequence through `model(...)` alone, log-softmax at its temperature."""
    rows, ents = [], []
    for p, c, t in zip(PROMPTS, COMPLETIONS, temps):
        logits = model(torch.tensor([p + c])).logits[0].float() / t
        logp = torch.log_softmax(logits, dim=-1)[len(p) - 1 : len(p) - 1 + len(c)]
        rows.append(logp.gather(-1, torch.tensor(c)[:, None]).squeeze(-1))
        ents.append(-(logp.exp() * logp).sum(-1))
    return rows, ents


def test_pack_shared_keeps_one_copy_per_prompt():
    batch = pack_shared(PROMPTS, COMPLETIONS, pad_id=0)
    assert batch.prompt_ids.tolist() == [[1, 2, 3, 4, 5], [7, 8, 0, 0, 0]]
    assert batch.prompt_of.tolist() == [0, 0, 0, 1, 1]
    assert batch.completion_ids.shape == (5, 5)
    # 2 prompts x 5 + 5 completions x 5 positions, against 5 x 9 for the padded full sequences
    assert batch.tokens_computed == 35


def test_shared_prefix_logprobs_and_entropy_equal_full_forwards(layout):
    for cls, cfg in ((LlamaForCausalLM, LlamaConfig), (Qwen2ForCausalLM, Qwen2Config)):
        model = _model(cls, cfg, layout)
        got = shared_prefix_logprobs(model, pack_shared(PROMPTS, COMPLETIONS, 0), chunk_tokens=3,
                                     with_entropy=True, temperature=torch.tensor(TEMPS))
        want, ents = _reference(model)
        for row, c in enumerate(COMPLETIONS):
            assert torch.allclose(got.logprobs[row, : len(c)], want[row], atol=1e-5), cls.__name__
            assert torch.allclose(got.entropy[row, : len(c)], ents[row], atol=1e-5)
            assert got.logprobs[row, len(c):].abs().sum() == 0
            assert got.mask[row].sum() == len(c)


@torch.enable_grad()  # another test module's import may have turned autograd off globally
def test_gradients_through_the_shared_prompt_equal_unshared_gradients(layout):
    model = _model(layout=layout)
    weights = torch.linspace(0.5, 1.5, 5)  # a different weight per row, so rows do not cancel

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    lp = shared_prefix_logprobs(model, pack_shared(PROMPTS, COMPLETIONS, 0), temperature=torch.tensor(TEMPS))
    shared = grads((lp.logprobs.sum(-1) * weights).sum())
    want, _ = _reference(model)
    full = grads(sum(w * r.sum() for w, r in zip(weights, want)))
    assert shared.keys() == full.keys()
    for name in full:
        scale = full[name].abs().max().clamp(min=1e-6)
        assert (shared[name] - full[name]).abs().max() / scale < 1e-4, name
    # The prompt's embeddings get gradient from all three of its completions.
    assert full["model.embed_tokens.weight"][1].abs().sum() > 0


def test_sliding_window_and_checkpointed_models_fall_back(monkeypatch):
    assert supports_shared_prefix(_model())
    model = _model()
    model.gradient_checkpointing_enable()
    assert supports_shared_prefix(model)  # the packed layout needs no cache
    monkeypatch.setattr(sp, "packs_with_a_tree_mask", lambda model: False)
    assert not supports_shared_prefix(model)
    sliding = Qwen2ForCausalLM(Qwen2Config(**SMALL, use_sliding_window=True, sliding_window=4, max_window_layers=0))
    assert not supports_shared_prefix(sliding)


def test_an_empty_completion_leaves_the_others_aligned(layout):
    """A zero-length completion (a sample that stopped at once) predicts nothing: the rows
    after it must still get their own tokens' log-probs."""
    model = _model(layout=layout)
    completions = [[9, 10], [], [15], [16, 17, 18], []]
    got = shared_prefix_logprobs(model, pack_shared(PROMPTS, completions, 0))
    for row, (p, c) in enumerate(zip(PROMPTS, completions)):
        assert got.mask[row].sum() == len(c)
        if c:
            logits = model(torch.tensor([p + c])).logits[0].float()
            want = torch.log_softmax(logits, -1)[len(p) - 1 : len(p) - 1 + len(c)].gather(-1, torch.tensor(c)[:, None])
            assert torch.allclose(got.logprobs[row, : len(c)], want.squeeze(-1), atol=1e-5), (layout, row)


def test_bf16_autocast_matches_the_full_forward_under_the_same_autocast(layout):
    model = _model(layout=layout)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = shared_prefix_logprobs(model, pack_shared(PROMPTS, COMPLETIONS, 0), temperature=torch.tensor(TEMPS))
        want, _ = _reference(model)
    for row, c in enumerate(COMPLETIONS):
        # bf16 keeps 8 bits of mantissa: the two orders of summation differ by its rounding
        assert torch.allclose(got.logprobs[row, : len(c)], want[row], atol=3e-2), (layout, row)
