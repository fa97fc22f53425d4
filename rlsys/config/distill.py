"""Distillation: the teacher service, MiniLLM's per-token term and the L_PT language-modelling loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlsys.config.base import Section

class MiniLLMConfig(Section):
    coef: float = Field(1.0, ge=0.0)
    """Weight of the whitened per-token return next to the sequence advantage."""
    gamma: float = Field(0.0, ge=0.0, le=1.0)
    """0: each token's own reward (on-policy distillation); 1: MiniLLM's return-to-go."""
    length_normalize: bool = False


class TeacherConfig(Section):
    path: str | None = None
    """None: no teacher. Otherwise a model folder, hub name or built-in name (see model.path)."""
    backend: Literal["vllm", "hf"] = "vllm"
    num_workers: int = Field(1, ge=1)
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"
    max_model_len: int | None = None
    """Default: model.max_model_len."""
    system_prompt: str | None = None
    """The teacher's own system prompt (context distillation); None: the student's."""
    question_template: str = "{question}"
    """The teacher's user message; `{question}` (the student's user message), `{raw_question}`
    (the data row's question before `data.question_template`) and `{answer}` (the reference
    answer: privileged information the student never sees) are filled in. Few-shot examples
    or hints here make a context-distillation teacher."""
    template: Literal["xml", "plain"] | None = None
    """Default: data.template."""
    temperature: float = Field(1.0, gt=0.0)
    """Score with softmax(logits / temperature): below 1 a sharper, more confident teacher
    (backend hf; vLLM returns the raw prompt log-probs)."""
    end_of_turn: str | None = None
    """Token appended to finished completions; default the teacher tokenizer's EOS."""
    max_batch_sequences: int = Field(64, ge=1)
    max_wait_ms: float = Field(20.0, ge=0.0)
    request_sequences: int = Field(16, ge=1)
    """Sequences per request the controller sends; the service merges requests into batches."""
    kv_cache_gib: float = Field(1.0, gt=0.0)
    tensor_parallel_size: int = Field(1, ge=1)
    """Devices one vLLM teacher spans (tensor parallel), for a teacher that does not fit one
    (a 27B in bf16 on 24 GB cards); each teacher then needs `num_gpus` >= this on GPUs."""
    hf_micro_batch: int = Field(8, ge=1)
    device_map: str | None = None
    """HF backend: e.g. "auto" to spread a big teacher over GPUs and offload to CPU."""
    name: str | None = None
    """Named actors `NAME-0..` that other jobs can share; reused when they already exist."""
    namespace: str = "rlsys"
    detached: bool = False
    """Keep named teacher actors alive after the job (stop them with `rlsys teacher-stop`)."""
    max_restarts: int = Field(3, ge=0)
    """Restart a teacher that dies this many times (its unfinished requests are re-run) before
    failing; restarts are counted in the metrics (`teacher/restarts`) and the summary."""
    num_cpus: float = Field(0.5, ge=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) each teacher asks for, e.g.
    `{teacher_node: 1}`: the teachers run only on nodes that offer them (`ray start
    --resources='{"teacher_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    scheduling: Literal["default", "spread"] = "default"
    """spread: put the teachers on as many nodes as possible (Ray's SPREAD)."""


class LPTConfig(Section):
    """L_PT: a language-modelling loss on separate text, mixed into the RL loss."""

    coef: float = Field(0.0, ge=0.0)
    source: str = "reasoning_gym:in_the_year_2889.txt"
    """A .txt file, a .jsonl file (field `text_field`), or `reasoning_gym:FILE` (text shipped
    with reasoning-gym)."""
    text_field: str = "text"
    block_tokens: int = Field(128, ge=8)
    sequences_per_micro_batch: int = Field(2, ge=1)
