"""Perplexity: the window plan scores every token once with the promised context, the HF scorer
equals a plain full forward, and the task's per-token / per-word / per-byte figures match a
hand computation."""

import math

import pytest
import torch

from rlsys.eval.scorers import DocumentScorer, assemble, window_jobs
from rlsys.eval.suite import PerplexitySpec
from rlsys.eval.tasks.perplexity import PerplexityTask, plan_windows


@pytest.mark.parametrize("n, window, stride", [(1, 8, 4), (2, 8, 4), (8, 8, 4), (9, 8, 4), (50, 8, 4), (50, 8, 8),
                                               (50, 8, 1), (37, 10, 3)])
def test_plan_scores_each_token_once_with_context(n, window, stride):
    plan = plan_windows(n, window, stride)
    scored = [p for begin, end, first in plan for p in range(first, end)]
    assert scored == list(range(1, n))
    for begin, end, first in plan:
        assert end - begin <= window and begin < first
        # the first scored token sees window - stride tokens before it, or all there are
        assert first - begin >= min(window - stride, first) or stride == window


def _plain_logprobs(model, ids: list[int]) -> list[float]:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return [lp[p - 1, ids[p]].item() for p in range(1, len(ids))]


def test_scorer_equals_a_full_forward(tiny_model_path):
    scorer = DocumentScorer(tiny_model_path)
    texts = ["Tórshavn er høvuðsstaðurin í Føroyum.", "The quick brown fox jumps over the lazy dog " * 3]
    docs = [scorer.tokenizer(t).input_ids for t in texts]
    jobs = window_jobs(docs, window=512, stride=256)
    got = assemble(len(docs), jobs, scorer.score_windows([c for _, c, _ in jobs], [t for _, _, t in jobs]))
    for ids, lps in zip(docs, got):
        assert lps == pytest.approx(_plain_logprobs(scorer.model, ids), abs=1e-4)
    # short windows: each token's log-prob equals a full forward over exactly its window
    jobs = window_jobs(docs, window=6, stride=3)
    results = scorer.score_windows([c for _, c, _ in jobs], [t for _, _, t in jobs])
    for (_, ctx, tgt), lps in zip(jobs, results):
        assert lps == pytest.approx(_plain_logprobs(scorer.model, ctx + tgt)[len(ctx) - 1:], abs=1e-4)


def test_task_metrics_by_hand(tmp_path):
    text = tmp_path / "fo.txt"
    text.write_text("Góðan dag\nallir\n\nTakk fyri\n")
    task = PerplexityTask(PerplexitySpec(name="p", kind="perplexity", path=str(text)), None)
    assert [w for w, _ in task.documents] == [f"{text}:1", f"{text}:4"]
    scored = task.score([[-1.0, -2.0, -3.0], [-0.5]])
    m = scored.metrics
    assert m["token_perplexity"].value == pytest.approx(math.exp(6.5 / 4))
    assert m["word_perplexity"].value == pytest.approx(math.exp(6.5 / 5))  # 3 + 2 words
    n_bytes = len("Góðan dag\nallir".encode()) + len("Takk fyri".encode())
    assert m["bits_per_byte"].value == pytest.approx(6.5 / n_bytes / math.log(2))
