"""The learner's top-k / top-p filter against a brute-force loop over sorted tokens and
against vLLM's own PyTorch implementation (the reference library), ties included."""

import math

import torch

from rlsys.models.logprobs import completion_logprobs, pack_sequences
from rlsys.models.sampling_filter import SamplingFilter, kept_tokens


def _brute_force(row: list[float], top_k: int, top_p: float) -> set[int]:
    order = sorted(range(len(row)), key=lambda i: -row[i])
    kept = set(order)
    if 0 < top_k < len(row):
        kth = row[order[top_k - 1]]
        kept = {i for i in order if row[i] >= kth}  # ties at the k-th value stay
    if top_p < 1.0:
        z = sum(math.exp(row[i]) for i in kept)
        ascending = sorted(kept, key=lambda i: row[i])
        dropped, mass = set(), 0.0
        for i in ascending[:-1]:  # the most likely token always stays
            mass += math.exp(row[i]) / z
            if mass <= 1.0 - top_p:
                dropped.add(i)
            else:
                break
        kept -= dropped
    return kept


def test_kept_tokens_match_a_brute_force_loop_with_ties():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=g, dtype=torch.float64)
    logits[0, :5] = 3.0  # a tie across the k-th place
    logits[1, 10:14] = -0.5
    for top_k, top_p in ((0, 0.9), (5, 1.0), (4, 1.0), (20, 0.9), (3, 0.5), (0, 0.3), (40, 0.99)):
        got = kept_tokens(logits, SamplingFilter(top_k, top_p))
        for r in range(logits.shape[0]):
            want = _brute_force(logits[r].tolist(), top_k, top_p)
            if r == 0 and top_p < 1.0:  # which of five equal tokens top-p drops is the sort's choice
                assert int(got[r].sum()) == len(want), (top_k, top_p)
                continue
            assert set(torch.nonzero(got[r]).flatten().tolist()) == want, (top_k, top_p, r)
    assert kept_tokens(logits, SamplingFilter(4, 1.0))[0].sum() == 5  # all five tied tokens kept


def test_kept_tokens_match_vllms_own_filter():
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 300, generator=g) * 2
    for top_k, top_p in ((20, 0.9), (0, 0.8), (7, 1.0), (50, 0.5)):
        ref = apply_top_k_top_p_pytorch(logits.clone(), torch.full((8,), top_k) if top_k else None,
                                        torch.full((8,), top_p) if top_p < 1 else None)
        assert torch.equal(kept_tokens(logits, SamplingFilter(top_k, top_p)), torch.isfinite(ref))


def test_filtered_logprobs_equal_a_full_forward_renormalised_by_hand(tiny_model_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    prompt, completion = [1, 406, 201, 19], [267, 287, 268, 30, 31]
    keep = SamplingFilter(20, 0.9)
    got = completion_logprobs(model, pack_sequences([prompt], [completion], 0), temperature=0.7, keep=keep)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + completion])).logits[0].double() / 0.7
    for j, tok in enumerate(completion):
        row = logits[len(prompt) - 1 + j].tolist()
        kept = _brute_force(row, 20, 0.9)
        log_z = math.log(sum(math.exp(row[i]) for i in kept))
        assert abs(float(got.logprobs[0, j]) - (row[tok] - log_z)) < 1e-4, j  # outside the set too: finite
