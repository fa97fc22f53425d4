"""`perplexity`: how well a model predicts a text, per token and per word (models with different
tokenizers compare fairly only per word or per byte).

Documents are the blank-line-separated paragraphs of a text file, or the `text_field` of each
JSONL row. A document longer than `window` tokens is scored in windows that start every `stride`
tokens; each window scores only its tokens that no earlier window scored, so every token but the
first is predicted exactly once, with up to `window - stride` tokens of context before it."""

from __future__ import annotations

import math

from rlsys.data.sources import read_jsonl, read_text_lines
from rlsys.errors import DataError
from rlsys.eval.stats import Estimate, bootstrap_ci
from rlsys.eval.tasks.base import Scored, first_rows


def plan_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window over a sequence of `n_tokens` tokens.
    Position p is scored as the prediction of token p from tokens begin..p-1; positions 1 to
    n_tokens - 1 are scored once each (token 0 has no context)."""
    if n_tokens < 2:
        return []
    out, scored_to, begin = [], 1, 0
    while scored_to < n_tokens:
        end = min(begin + window, n_tokens)
        out.append((begin, end, scored_to))
        scored_to = end
        begin = max(begin + stride, end - window)
        begin = min(begin, scored_to - 1)
    return out


def read_documents(spec) -> list[tuple[str, str]]:
    """(where, text) of every document."""
    docs: list[tuple[str, str]] = []
    if spec.path.endswith(".jsonl"):
        for lineno, row in read_jsonl(spec.path):
            text = row.get(spec.text_field)
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{spec.path}:{lineno}: field {spec.text_field!r} is missing or not a non-empty string")
            docs.append((f"{spec.path}:{lineno}", text))
    else:
        start, lines = None, []
        for lineno, line in [*read_text_lines(spec.path), (None, "")]:
            if line.strip():
                start = start or lineno
                lines.append(line.rstrip("\n"))
            elif lines:
                docs.append((f"{spec.path}:{start}", "\n".join(lines)))
                start, lines = None, []
    if not docs:
        raise DataError(f"{spec.path} holds no text")
    return docs


class PerplexityTask:
    kind = "perplexity"

    def __init__(self, spec, limit: int | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.documents = first_rows(read_documents(spec), limit)

    def score(self, logprobs: list[list[float]]) -> Scored:
        """`logprobs[d]`: the log-probability of every scored token of document d."""
        rows, per_doc = [], []
        for (where, text), lps in zip(self.documents, logprobs):
            nll, words, nbytes = -sum(lps), len(text.split()), len(text.encode("utf-8"))
            per_doc.append((nll, len(lps), words, nbytes))
            rows.append({"where": where, "tokens": len(lps), "words": words, "nll": nll,
                         "token_perplexity": math.exp(nll / max(1, len(lps)))})

        def ratio(i: int, transform):
            return lambda docs: transform(sum(d[0] for d in docs) / max(1, sum(d[i] for d in docs)))

        metrics: dict[str, Estimate] = {
            "token_perplexity": bootstrap_ci(per_doc, ratio(1, math.exp)),
            "word_perplexity": bootstrap_ci(per_doc, ratio(2, math.exp)),
            "bits_per_byte": bootstrap_ci(per_doc, ratio(3, lambda x: x / math.log(2))),
            "tokens": Estimate(float(sum(d[1] for d in per_doc)), len(per_doc)),
        }
        return Scored(metrics, rows)
