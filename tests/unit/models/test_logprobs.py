import pytest
import torch
from transformers import (
    CohereConfig, CohereForCausalLM, Gemma2Config, Gemma2ForCausalLM, GraniteConfig, GraniteForCausalLM,
    LlamaConfig, LlamaForCausalLM,
)

from rlsys.models.logprobs import check_logit_path, completion_logprobs, pack_sequences

SMALL = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=64)
PROMPTS, COMPLETIONS = [[1, 2, 3], [4, 5]], [[6, 7], [8, 9, 10, 11]]


def _model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**SMALL)).eval()


def _full_forward_logprobs(model, prompt, completion, temperature=1.0):
    """Reference: the model's own forward over the whole sequence, then a log-softmax."""
    logits = model(torch.tensor([prompt + completion])).logits[0].float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    return torch.stack([logp[len(prompt) - 1 + j, tok] for j, tok in enumerate(completion)])


def test_completion_logprobs_match_full_softmax():
    model = _model()
    batch = pack_sequences(PROMPTS, COMPLETIONS, pad_id=0)
    got = completion_logprobs(model, batch, chunk_tokens=2, with_entropy=True)
    for row, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS)):
        want = _full_forward_logprobs(model, p, c)
        assert torch.allclose(got.logprobs[row, : len(c)], want, atol=1e-5)
        logp = torch.log_softmax(model(torch.tensor([p + c])).logits[0], dim=-1)
        ent = -(logp.exp() * logp).sum(-1)[len(p) - 1 : len(p) - 1 + len(c)]
        assert torch.allclose(got.entropy[row, : len(c)], ent, atol=1e-4)
    assert got.mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    assert got.logprobs[0, 2:].abs().sum() == 0


def test_per_row_temperature_divides_the_logits():
    model = _model()
    batch = pack_sequences(PROMPTS, COMPLETIONS, pad_id=0)
    got = completion_logprobs(model, batch, chunk_tokens=3, temperature=torch.tensor([0.7, 1.3]))
    for row, (t, p, c) in enumerate(zip((0.7, 1.3), PROMPTS, COMPLETIONS)):
        want = _full_forward_logprobs(model, p, c, temperature=t)
        assert torch.allclose(got.logprobs[row, : len(c)], want, atol=1e-5)
        assert not torch.allclose(got.logprobs[row, : len(c)], _full_forward_logprobs(model, p, c), atol=1e-3)
    one = completion_logprobs(model, batch, temperature=0.7)
    assert torch.allclose(one.logprobs[0, :2], got.logprobs[0, :2], atol=1e-6)


def _big_logits(model):
    # Random init gives logits near 0, where soft-capping and scaling barely show: scale
    # the (tied) embedding up so that logits reach well past the cap.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(60.0)
    return model.eval()


@pytest.mark.parametrize("name,build", [
    ("gemma2 soft-capping", lambda: Gemma2ForCausalLM(Gemma2Config(**SMALL, head_dim=16, final_logit_softcapping=2.0))),
    ("granite logits_scaling", lambda: GraniteForCausalLM(GraniteConfig(**SMALL, logits_scaling=8.0))),
    ("cohere logit_scale", lambda: CohereForCausalLM(CohereConfig(**SMALL, logit_scale=0.0625))),
])
def test_logit_post_processing_is_applied(name, build):
    torch.manual_seed(0)
    model = _big_logits(build())
    batch = pack_sequences(PROMPTS, COMPLETIONS, pad_id=0)
    got = completion_logprobs(model, batch, chunk_tokens=2)
    for row, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS)):
        want = _full_forward_logprobs(model, p, c)
        assert torch.allclose(got.logprobs[row, : len(c)], want, atol=1e-4), name
    # The test has teeth: the bare projection's log-softmax is far from the forward's.
    hidden = model.get_decoder()(input_ids=torch.tensor([PROMPTS[1] + COMPLETIONS[1]])).last_hidden_state[0]
    bare = torch.log_softmax(model.get_output_embeddings()(hidden).float(), -1)
    bare_lp = torch.stack([bare[len(PROMPTS[1]) - 1 + j, t] for j, t in enumerate(COMPLETIONS[1])])
    assert (bare_lp - _full_forward_logprobs(model, PROMPTS[1], COMPLETIONS[1])).abs().max() > 0.05
    assert check_logit_path(model, name) < 1e-4


class ScaledLlama(LlamaForCausalLM):
    """An architecture whose forward post-processes logits in a way rlsys does not know."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 3.0
        return out


def test_unknown_logit_post_processing_is_refused():
    torch.manual_seed(0)
    model = _big_logits(ScaledLlama(LlamaConfig(**SMALL)))
    with pytest.raises(ValueError, match=r"my-model: rlsys's log-probs differ from the model's own forward"):
        check_logit_path(model, "my-model")
    assert check_logit_path(_model(), "llama") < 1e-5


def test_gradient_flows_through_logprobs():
    model = _model().train()
    batch = pack_sequences([[1, 2]], [[3, 4]], pad_id=0)
    completion_logprobs(model, batch).logprobs.sum().backward()
    assert model.model.embed_tokens.weight.grad is not None
