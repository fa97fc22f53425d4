"""Evaluation task kinds, one module each: accuracy, qa, generation, language, perplexity.
`build_task(spec, limit)` reads and checks a task's data (no model needed)."""

from __future__ import annotations

from rlsys.eval.tasks.accuracy import AccuracyTask
from rlsys.eval.tasks.base import Example, GenerationTask, Scored
from rlsys.eval.tasks.generation import GenerationMetricsTask, LanguageTask
from rlsys.eval.tasks.perplexity import PerplexityTask
from rlsys.eval.tasks.qa import QATask

TASKS = {"accuracy": AccuracyTask, "qa": QATask, "generation": GenerationMetricsTask, "language": LanguageTask,
         "perplexity": PerplexityTask}

__all__ = ["Example", "GenerationTask", "PerplexityTask", "Scored", "TASKS", "build_task"]


def build_task(spec, limit: int | None = None):
    """The task of a suite entry, its examples loaded; `limit` caps the entry's own limit."""
    caps = [c for c in (spec.limit, limit) if c is not None]
    return TASKS[spec.kind](spec, min(caps) if caps else None)
