"""The `data` section: prompts and answers for RL, preference pairs for DPO, and their checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rlsys.config.base import Section

class MinWords(Section):
    prompt: int = Field(5, ge=0)
    chosen: int = Field(20, ge=0)
    rejected: int = Field(10, ge=0)


class PreferenceDataConfig(Section):
    """Preference pairs (DPO): JSONL rows or a `datasets` source with a prompt, a chosen and a
    rejected answer (strings, or lists of chat messages)."""

    path: str | None = None
    """A JSONL file, one object per line."""
    dataset: str | None = None
    """Instead of `path`: a `datasets` hub name or a data file it can read (json, csv, parquet)."""
    split: str = "train"
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    min_words: MinWords = Field(default_factory=MinWords)
    max_tokens: int | None = Field(None, ge=1)
    """Longest prompt + answer in tokens (default: model.max_model_len)."""
    script: Literal["mongolian_cyrillic", "mongolian_traditional", "latin", "faroese_latin"] | None = None
    """Letters of every field must be mostly in this script (None: no check)."""
    min_script_share: float = Field(0.8, ge=0.0, le=1.0)
    heldout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of the pairs held out for evaluation (split by prompt, seeded by run.seed)."""

    @model_validator(mode="after")
    def _one_source(self) -> "PreferenceDataConfig":
        if self.path and self.dataset:
            raise ValueError("data.preferences: set path or dataset, not both")
        return self


class DataConfig(Section):
    source: Literal["reasoning_gym", "gsm8k_jsonl", "datasets"] = "reasoning_gym"
    task: str = "chain_sum"
    """reasoning-gym generator name (source=reasoning_gym)."""
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    """GSM8K-format JSONL (source=gsm8k_jsonl) or a file/hub name for `datasets`."""
    eval_path: str | None = None
    """A separate held-out file in the same format (e.g. GSM8K test); None: the first
    `eval_size` rows of `path`. Training never sees a question that is in the held-out set."""
    question_field: str = "question"
    answer_field: str = "answer"
    question_template: str = "{question}"
    """The user message around each question (e.g. an instruction: "Translate into Faroese.
    Reply with the translation only.\n\n{question}"); must contain `{question}`."""
    train_size: int = Field(2000, ge=1)
    eval_size: int = Field(100, ge=1)
    template: Literal["xml", "plain"] = "xml"
    system_prompt: str | None = None
    preferences: PreferenceDataConfig = Field(default_factory=PreferenceDataConfig)
    """Preference pairs for offline DPO (`algorithm.type: dpo`)."""
    on_invalid: Literal["error", "drop"] = "error"
    """A preference row that fails a check: stop with its file:line (error), or leave it out
    and count it in the summary (drop)."""

    @model_validator(mode="after")
    def _question_slot(self) -> "DataConfig":
        if "{question}" not in self.question_template:
            raise ValueError(f"data.question_template must contain {{question}}: {self.question_template!r}")
        return self
