"""The CUDA paths that CI (no GPU) cannot run: the NCCL weight-sync transport and the
learner's log-prob maths on a GPU in bf16. Skipped where torch sees no GPU; run them on a
GPU node with `pytest tests/gpu`. They need only torch and transformers, so they also run
where Ray, DeepSpeed and vLLM are not installed."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL refuses two ranks on one GPU")
def test_nccl_bucketed_sync_moves_every_tensor_and_times_out_instead_of_hanging():
    from rlsys.transport.sync_check import check_sync

    result = check_sync("nccl", ranks=2, total_mb=256, bucket_mb=64, timeout_s=10)
    assert result["bit_identical"] and result["bytes"] >= 256 * 2**20
    assert result["timeout"].startswith("raised after")
    assert result["sync_efficiency"] > 0.3, result


def test_gloo_over_cuda_tensors_syncs_ranks_that_share_one_gpu():
    """The transport `sync.backend: auto` picks when roles hold fractions of a GPU (NCCL
    refuses two ranks on one device)."""
    from rlsys.transport.sync_check import check_sync

    result = check_sync("gloo", cuda=True, ranks=2, total_mb=128, bucket_mb=32, timeout_s=10)
    assert result["tensors_on"] == "cuda" and result["bit_identical"]  # bit for bit
    assert result["timeout"].startswith("raised after")


def test_completion_logprobs_on_cuda_bf16_match_a_full_log_softmax():
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlsys.models.logprobs import completion_logprobs, pack_sequences

    torch.manual_seed(0)
    # SmolLM2-135M's shape (30 layers cut to 4): hidden 576, 9 heads, 3 KV heads, vocab 49,152.
    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
    prompts = [torch.randint(0, 49152, (n,)).tolist() for n in (7, 30, 12)]
    completions = [torch.randint(0, 49152, (n,)).tolist() for n in (40, 3, 17)]
    batch = pack_sequences(prompts, completions, pad_id=0)
    with torch.no_grad():
        got = completion_logprobs(model, batch, chunk_tokens=16, with_entropy=True)
        logits = model(input_ids=batch.input_ids.cuda(), attention_mask=batch.attention_mask.cuda()).logits.float()
    full = torch.log_softmax(logits, dim=-1)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ref = full[i, len(p) - 1 : len(p) + len(c) - 1].gather(-1, torch.tensor(c, device="cuda")[:, None]).squeeze(-1)
        assert torch.allclose(got.logprobs[i, : len(c)], ref, atol=2e-2), i
        assert int(got.mask[i].sum()) == len(c) and float(got.logprobs[i, len(c):].abs().sum()) == 0.0
    assert got.entropy.device.type == "cuda" and float(got.entropy[got.mask].min()) > 0


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=4096)
    path = tmp_path_factory.mktemp("teacher")
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("device_map", [None, "auto"])
def test_hf_teacher_scores_on_the_gpu_in_bf16_like_fp32(llama_dir, device_map):
    from rlsys.config import TeacherConfig
    from rlsys.workers.teacher import HfScorer

    sequences = [([5, 6, 7], [8, 9, 10, 11]), ([1] * 20, [2]), ([3, 4], [])]
    exact = HfScorer(llama_dir, TeacherConfig(backend="hf", dtype="float32"))
    fast = HfScorer(llama_dir, TeacherConfig(backend="hf", dtype="bfloat16", device_map=device_map))
    assert next(exact.model.parameters()).device.type == "cuda"
    assert next(fast.model.parameters()).device.type == "cuda"  # never silently left on the CPU
    ref, got = exact.logprobs(sequences), fast.logprobs(sequences)
    assert [len(r) for r in got] == [4, 1, 0]
    for r, g in zip(ref, got):
        assert g == pytest.approx(r, abs=5e-2)
