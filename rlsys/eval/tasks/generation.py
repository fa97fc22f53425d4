"""`generation` and `language`: completions of prompts read from JSONL (`source_field`, put into
`instruction`). `generation` compares them with `reference_field`: corpus BLEU and chrF
(sacrebleu, bootstrap intervals over examples) and mean ROUGE-1/2/L F. Both give language
metrics when `language` is set: the share of words in a word list (`word_coverage`), of words
that are a listed word with its letters flattened to ASCII (`ascii_flattened`, e.g. 'godan'
for 'góðan'), and of letters in a script (`script_purity`)."""

from __future__ import annotations

from rlsys.data.writing_systems import script_share
from rlsys.data.sources import read_jsonl
from rlsys.errors import DataError
from rlsys.eval.stats import Estimate, bootstrap_ci, mean_ci
from rlsys.eval.tasks.base import Example, GenerationTask, Scored, chat, first_rows
from rlsys.eval.text_metrics import corpus_bleu, corpus_chrf, rouge
from rlsys.rewards.language import load_lexicon, words_of


def language_scores(text: str, settings, lexicon=None) -> dict[str, float]:
    out = {}
    if settings.wordlist is not None:
        words, flattened = lexicon or load_lexicon(settings.wordlist)
        found = words_of(text)
        n = max(1, len(found))
        out["word_coverage"] = sum(w in words for w in found) / n
        out["ascii_flattened"] = sum(w not in words and w in flattened for w in found) / n
    if settings.script is not None:
        out["script_purity"] = script_share(text, settings.script)
    return out


def read_prompts(spec, fields: tuple[str, ...], limit: int | None) -> list[Example]:
    out = []
    for lineno, row in read_jsonl(spec.path):
        where = f"{spec.path}:{lineno}"
        for key in fields:
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(f"{where}: field {key!r} is missing or not a non-empty string")
        source = row[spec.source_field]
        reference = row.get(getattr(spec, "reference_field", ""), None)
        out.append(Example(chat(spec.instruction.replace("{source}", source), spec.system_prompt), reference, where,
                           {"source": source}))
    if not out:
        raise DataError(f"{spec.path} holds no rows")
    return first_rows(out, limit)


class LanguageTask(GenerationTask):
    kind = "language"

    def load(self, limit: int | None) -> list[Example]:
        settings = self.spec.language
        if settings is not None and settings.wordlist is not None:
            load_lexicon(settings.wordlist)  # a missing word list fails before any model loads
        return read_prompts(self.spec, self.required_fields(), limit)

    def required_fields(self) -> tuple[str, ...]:
        return (self.spec.source_field,)

    def language_metrics(self, texts: list[str]) -> tuple[dict[str, Estimate], list[dict]]:
        settings = self.spec.language
        if settings is None:
            return {}, [{} for _ in texts]
        lexicon = load_lexicon(settings.wordlist) if settings.wordlist else None
        per = [language_scores(t, settings, lexicon) for t in texts]
        return {k: mean_ci([p[k] for p in per]) for k in per[0]}, per

    def score(self, completions: list[list[str]], tokens: list[list[int]]) -> Scored:
        texts = [c[0].strip() for c in completions]
        metrics, per = self.language_metrics(texts)
        rows = [{"where": ex.where, "source": ex.fields["source"], "completion": t, **p}
                for ex, t, p in zip(self.examples, texts, per)]
        return Scored(metrics, rows)


class GenerationMetricsTask(LanguageTask):
    kind = "generation"

    def required_fields(self) -> tuple[str, ...]:
        return (self.spec.source_field, self.spec.reference_field)

    def score(self, completions: list[list[str]], tokens: list[list[int]]) -> Scored:
        # The first line: a one-line source asks for a one-line translation, and small models
        # run on after it.
        texts = [(c[0].strip().splitlines() or [""])[0].strip() for c in completions]
        refs = [ex.reference for ex in self.examples]
        pairs = list(zip(texts, refs))
        rouges = rouge(texts, refs)
        metrics = {
            "bleu": bootstrap_ci(pairs, lambda rows: corpus_bleu([h for h, _ in rows], [r for _, r in rows])),
            "chrf": bootstrap_ci(pairs, lambda rows: corpus_chrf([h for h, _ in rows], [r for _, r in rows])),
            **{name: mean_ci([r[name] for r in rouges]) for name in ("rouge1", "rouge2", "rougeL")},
        }
        language, per = self.language_metrics(texts)
        metrics.update(language)
        rows = [{"where": ex.where, "source": ex.fields["source"], "reference": ex.reference, "completion": c[0],
                 "hypothesis": t, **r, **p}
                for ex, c, t, r, p in zip(self.examples, completions, texts, rouges, per)]
        return Scored(metrics, rows)
