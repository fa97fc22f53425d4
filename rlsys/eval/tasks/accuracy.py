"""`accuracy`: final-answer accuracy on GSM8K-format JSONL, a `datasets` file or a reasoning-gym
generator, parsed as the correctness reward parses answers (last <answer>, else '####', else the
last number; `strict` only the first two). With `samples` > 1: pass@k for every k of `pass_at`.

The training loop's held-out evaluation calls `answer_scores` too: one implementation."""

from __future__ import annotations

from rlsys.data.sources import load_datasets, load_gsm8k_jsonl, load_reasoning_gym
from rlsys.data.templates import prompt_messages
from rlsys.eval.stats import mean_ci, pass_at_k
from rlsys.eval.tasks.base import Example, GenerationTask, Scored, first_rows
from rlsys.rewards.answers import answers_match, extract_answer
from rlsys.rewards.format import format_reward
from rlsys.rewards.registry import template_format_style


def answer_scores(completion: str, answer: str, format_style: str = "any") -> dict[str, float]:
    """1/0 per criterion: right final answer (flexible and strict extraction), expected layout."""
    return {"accuracy": float(answers_match(extract_answer(completion), answer)),
            "strict_accuracy": float(answers_match(extract_answer(completion, strict=True), answer)),
            "format_rate": float(format_reward([], [completion], [answer], style=format_style)[0])}


class AccuracyTask(GenerationTask):
    kind = "accuracy"

    def __init__(self, spec, limit: int | None) -> None:
        self.samples = spec.samples
        self.temperature = spec.temperature if spec.temperature is not None else (0.0 if spec.samples == 1 else 1.0)
        super().__init__(spec, limit)

    def load(self, limit: int | None) -> list[Example]:
        s = self.spec
        if s.source == "reasoning_gym":
            tasks = load_reasoning_gym(s.task, limit or s.size, s.seed, **s.task_kwargs)
        elif s.source == "gsm8k_jsonl":
            tasks = load_gsm8k_jsonl(s.path, s.question_field, s.answer_field)
        else:
            tasks = load_datasets(s.path, s.question_field, s.answer_field)
        return [Example(prompt_messages(t.question, s.template, s.system_prompt), t.answer,
                        t.metadata.get("where", ""), {"question": t.question})
                for t in first_rows(tasks, limit)]

    def score(self, completions: list[list[str]], tokens: list[list[int]]) -> Scored:
        style = template_format_style(self.spec.template)
        per_example = {"accuracy": [], "strict_accuracy": [], "format_rate": [], "completion_tokens": []}
        passes = {k: [] for k in self.spec.pass_at if self.samples > 1}
        rows = []
        for ex, texts, toks in zip(self.examples, completions, tokens):
            scores = [answer_scores(t, ex.reference, style) for t in texts]
            for key in ("accuracy", "strict_accuracy", "format_rate"):
                per_example[key].append(sum(s[key] for s in scores) / len(scores))
            per_example["completion_tokens"].append(sum(toks) / len(toks))
            correct = int(sum(s["accuracy"] for s in scores))
            for k in passes:
                passes[k].append(pass_at_k(len(texts), correct, k))
            rows.append({"where": ex.where, "question": ex.fields["question"], "answer": ex.reference,
                         "completions": texts, "correct": [s["accuracy"] for s in scores]})
        metrics = {k: mean_ci(v) for k, v in per_example.items()}
        metrics.update({f"pass@{k}": mean_ci(v) for k, v in passes.items()})
        return Scored(metrics, rows)
