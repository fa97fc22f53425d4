"""Log-probabilities of documents, window by window: the plan (pure), and the HF scorer that
`rlsys eval` runs in a Ray actor. (A training run scores the same windows on its vLLM engines,
`RolloutWorker.score_windows`, so the held-out perplexity follows the current weights.)"""

from __future__ import annotations

from rlsys.eval.tasks.perplexity import plan_windows


def window_jobs(docs: list[list[int]], window: int, stride: int) -> list[tuple[int, list[int], list[int]]]:
    """(document, context ids, ids to score) of every window of every document."""
    jobs = []
    for d, ids in enumerate(docs):
        for begin, end, first in plan_windows(len(ids), window, stride):
            jobs.append((d, ids[begin:first], ids[first:end]))
    return jobs


def assemble(n_docs: int, jobs: list[tuple[int, list[int], list[int]]], results: list[list[float]]) -> list[list[float]]:
    """Per-document token log-probs, windows in order."""
    out: list[list[float]] = [[] for _ in range(n_docs)]
    for (d, _, _), lps in zip(jobs, results):
        out[d].extend(lps)
    return out


class DocumentScorer:
    """An HF causal LM (with its PEFT adapter, when given) that scores windows in batches, the
    output projection applied only where a scored token is predicted."""

    def __init__(self, model_path: str, adapter: str | None = None, dtype: str = "float32",
                 batch_tokens: int = 8192) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rlsys.models.dtypes import torch_dtype

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype))
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()
        self.batch_tokens = batch_tokens

    def ping(self) -> str:
        return "scorer"

    def score_windows(self, contexts: list[list[int]], targets: list[list[int]]) -> list[list[float]]:
        """log p(targets[i][j] | contexts[i], targets[i][:j]) for every window i."""
        import torch

        with torch.no_grad():  # a scoped switch: the scorer also runs inside other processes
            return self._score_windows(contexts, targets)

    def _score_windows(self, contexts: list[list[int]], targets: list[list[int]]) -> list[list[float]]:
        from rlsys.models.logprobs import completion_logprobs, pack_sequences

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(contexts)), key=lambda i: -(len(contexts[i]) + len(targets[i])))
        out: list[list[float]] = [[] for _ in contexts]
        start = 0
        while start < len(order):
            width = len(contexts[order[start]]) + len(targets[order[start]])
            size = max(1, self.batch_tokens // max(1, width))
            batch = order[start : start + size]
            packed = pack_sequences([contexts[i] for i in batch], [targets[i] for i in batch], pad)
            lps = completion_logprobs(self.model, packed).logprobs
            for row, i in enumerate(batch):
                out[i] = lps[row, : len(targets[i])].tolist()
            start += size
        return out
