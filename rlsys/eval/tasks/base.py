"""What every evaluation task shares: examples as chat messages, and scored results (metrics with
intervals plus one row per example for eval_samples.jsonl)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlsys.eval.stats import Estimate


@dataclass
class Example:
    messages: list[dict]
    """The chat the model continues (rendered with each model's own chat template)."""
    reference: Any
    where: str
    """file:line (or generator and index) the example came from."""
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scored:
    metrics: dict[str, Estimate]
    rows: list[dict]


class GenerationTask:
    """A task scored from completions: `samples` completions per example at `temperature`."""

    kind = "generation"
    samples = 1
    temperature = 0.0

    def __init__(self, spec, limit: int | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.max_new_tokens = spec.max_new_tokens
        self.examples: list[Example] = self.load(limit)

    def load(self, limit: int | None) -> list[Example]:
        raise NotImplementedError

    def score(self, completions: list[list[str]], tokens: list[list[int]]) -> Scored:
        raise NotImplementedError


def chat(user: str, system: str | None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def first_rows(rows, limit: int | None):
    return rows if limit is None else rows[:limit]
