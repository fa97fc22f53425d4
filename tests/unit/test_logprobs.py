import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlsys.models.logprobs import completion_logprobs, pack_sequences


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_completion_logprobs_match_full_softmax():
    model = _model()
    prompts, completions = [[1, 2, 3], [4, 5]], [[6, 7], [8, 9, 10, 11]]
    batch = pack_sequences(prompts, completions, pad_id=0)
    got = completion_logprobs(model, batch, chunk_tokens=2, with_entropy=True)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        ids = torch.tensor([p + c])
        logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        want = torch.stack([logp[len(p) - 1 + j, tok] for j, tok in enumerate(c)])
        assert torch.allclose(got.logprobs[row, : len(c)], want, atol=1e-5)
        ent = -(logp.exp() * logp).sum(-1)[len(p) - 1 : len(p) - 1 + len(c)]
        assert torch.allclose(got.entropy[row, : len(c)], ent, atol=1e-4)
    assert got.mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    assert got.logprobs[0, 2:].abs().sum() == 0


def test_gradient_flows_through_logprobs():
    model = _model().train()
    batch = pack_sequences([[1, 2]], [[3, 4]], pad_id=0)
    completion_logprobs(model, batch).logprobs.sum().backward()
    assert model.model.embed_tokens.weight.grad is not None
