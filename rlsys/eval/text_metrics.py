"""Reference-based text metrics: SQuAD exact match and F1 (the official v1.1 normalisation),
BLEU and chrF (sacrebleu), ROUGE-1/2/L (rouge-score, with a tokenizer that keeps non-ASCII
letters: its default drops ð, ø, á and every Cyrillic letter)."""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_WORDS = re.compile(r"\w+", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, the articles a/an/the and extra white space (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: list[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def _f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: list[str]) -> float:
    """The best bag-of-words F1 of the prediction against any of the answers."""
    return max(_f1(prediction, a) for a in answers)


def corpus_bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score


def corpus_chrf(hypotheses: list[str], references: list[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_chrf(hypotheses, [references]).score


class UnicodeWords:
    """rouge-score tokenizer: lower-cased runs of Unicode word characters."""

    def tokenize(self, text: str) -> list[str]:
        return _WORDS.findall(text.lower())


def rouge(hypotheses: list[str], references: list[str]) -> list[dict[str, float]]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of every hypothesis against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=UnicodeWords())
    out = []
    for hyp, ref in zip(hypotheses, references):
        scores = scorer.score(ref, hyp)
        out.append({name: s.fmeasure for name, s in scores.items()})
    return out
