"""Records that flow between the roles of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PromptItem:
    """One task: the rendered prompt, its token ids and what the rewards need to score it."""

    prompt: str
    prompt_ids: list[int]
    question: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One completion, with the weight version of the engine that produced it."""

    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    sampling_logprobs: list[float]
    finish_reason: str
    weight_version: int
    temperature: float
