"""Config sections for preference data (`data.preferences`) and LoRA (`model.lora`). Part
of the one schema; `rlsys.config` imports and re-exports them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlsys.config_distill import Section

# Attention and MLP projections of Llama/Mistral/Qwen/Gemma-style decoders. Never the
# embeddings: with tied embeddings an adapter there would also change the output layer.
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(Section):
    """LoRA adapters through PEFT: only adapter weights train; the base stays as loaded."""

    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """0 by default: with dropout the learner's training passes differ from its scoring passes
    and from vLLM's, so PPO/GRPO ratios start away from 1."""
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS), min_length=1)

    @model_validator(mode="after")
    def _no_embeddings(self) -> "LoraSettings":
        bad = [m for m in self.target_modules if m in ("embed_tokens", "lm_head", "wte", "embed_out")]
        if bad:
            raise ValueError(f"model.lora.target_modules: {bad} are embedding/output layers; LoRA here adapts "
                             "linear projections only (tied embeddings would change the output layer too)")
        return self


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
