"""`qa`: extractive question answering from SQuAD-format JSONL (FoQA is in this format):
`context`, `question`, `answers` as a list of strings or SQuAD's {"text": [...], ...}. The
prediction is the completion's first line; exact match and F1 use SQuAD v1.1 normalisation."""

from __future__ import annotations

from rlsys.data.sources import read_jsonl
from rlsys.errors import DataError
from rlsys.eval.stats import mean_ci
from rlsys.eval.tasks.base import Example, GenerationTask, Scored, chat, first_rows
from rlsys.eval.text_metrics import exact_match, token_f1

QA_SYSTEM = "Answer the question with a short span copied from the context. Reply with the answer only."


def answer_texts(value, where: str, key: str) -> list[str]:
    texts = value.get("text") if isinstance(value, dict) else value
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise DataError(f"{where}: field {key!r} must be a non-empty list of answer strings "
                        "(or SQuAD's {\"text\": [...], \"answer_start\": [...]})")
    return texts


def prediction(completion: str) -> str:
    lines = completion.strip().splitlines()
    return lines[0].strip() if lines else ""


class QATask(GenerationTask):
    kind = "qa"

    def load(self, limit: int | None) -> list[Example]:
        s, out = self.spec, []
        for lineno, row in read_jsonl(s.path):
            where = f"{s.path}:{lineno}"
            for key in (s.context_field, s.question_field):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise DataError(f"{where}: field {key!r} is missing or not a non-empty string")
            if s.answers_field not in row:
                raise DataError(f"{where}: field {s.answers_field!r} is missing")
            answers = answer_texts(row[s.answers_field], where, s.answers_field)
            user = f"Context: {row[s.context_field]}\n\nQuestion: {row[s.question_field]}"
            system = QA_SYSTEM if s.system_prompt is None else s.system_prompt
            out.append(Example(chat(user, system), answers, where, {"question": row[s.question_field]}))
        if not out:
            raise DataError(f"{s.path} holds no rows")
        return first_rows(out, limit)

    def score(self, completions: list[list[str]], tokens: list[list[int]]) -> Scored:
        em, f1, rows = [], [], []
        for ex, texts in zip(self.examples, completions):
            pred = prediction(texts[0])
            em.append(exact_match(pred, ex.reference))
            f1.append(token_f1(pred, ex.reference))
            rows.append({"where": ex.where, "question": ex.fields["question"], "answers": ex.reference,
                         "completion": texts[0], "prediction": pred, "exact_match": em[-1], "f1": f1[-1]})
        return Scored({"exact_match": mean_ci(em), "f1": mean_ci(f1)}, rows)
