"""Distillation: the teacher service, MiniLLM's per-token term and the L_PT language-modelling loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlsys.config.base import Section

class MiniLLMConfig(Section):
    """MiniLLM's per-token term, log p_T - log p_S of each sampled token (`reward.combiner: minillm`)."""

    coef: float = Field(1.0, ge=0.0)
    """GRPO: weight of the whitened per-token return next to the sequence advantage; PPO: weight
    of the per-token rewards added to the token rewards before GAE."""
    gamma: float = Field(0.0, ge=0.0, le=1.0)
    """0: each token's own reward (on-policy distillation); 1: MiniLLM's return-to-go (GRPO; PPO
    discounts with `algorithm.gamma`)."""
    length_normalize: bool = False
    """Divide each token's return by the number of tokens it sums (MiniLLM's normalisation, which
    keeps long tails from dominating; GRPO)."""


class TeacherConfig(Section):
    """A teacher model, served by a pool of Ray actors, that scores the student's completions
    with its log-probs (the `teacher_loglik` reward, the `minillm` combiner); its own greedy
    accuracy on the held-out tasks is measured once."""

    path: str | None = None
    """None: no teacher. Otherwise a model folder, hub name or built-in name (see model.path)."""
    backend: Literal["vllm", "hf"] = "vllm"
    """`vllm`: prompt log-probs from a vLLM engine (the fast path); `hf`: transformers forward
    passes (needed for `temperature` other than 1 and for `device_map`)."""
    num_workers: int = Field(1, ge=1)
    """Teacher actors, each with its own copy of the model; requests go round-robin over them."""
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"
    """auto: bfloat16 when the teacher has GPUs (`num_gpus` > 0) or vLLM's bf16 scoring measured
    faster than fp32 on this CPU (see `rlsys doctor`), else float32."""
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
    """Most sequences one teacher scores in a batch; waiting requests are merged up to this."""
    max_wait_ms: float = Field(20.0, ge=0.0)
    """Milliseconds a teacher waits after the first queued sequence for more to fill a batch."""
    request_sequences: int = Field(16, ge=1)
    """Sequences per request the controller sends; the service merges requests into batches."""
    kv_cache_gib: float = Field(1.0, gt=0.0)
    """KV-cache memory of each vLLM teacher engine, in GiB (backend vllm)."""
    tensor_parallel_size: int = Field(1, ge=1)
    """Devices one vLLM teacher spans (tensor parallel), for a teacher that does not fit one
    (a 27B in bf16 on 24 GB cards); each teacher then needs `num_gpus` >= this on GPUs."""
    engine_process: Literal["auto", "actor", "separate"] = "auto"
    """Backend vllm: where each teacher engine's scheduler and model runner run, as
    `rollout.engine_process` (auto: inside the teacher's actor on a CPU with
    tensor_parallel_size 1, else in processes of their own)."""
    hf_micro_batch: int = Field(8, ge=1)
    """Sequences per forward pass of the hf backend (sorted by length); lower it to save memory."""
    device_map: str | None = None
    """HF backend: e.g. "auto" to spread a big teacher over GPUs and offload to CPU."""
    name: str | None = None
    """Named actors `NAME-0..` that other jobs can share; reused when they already exist."""
    namespace: str = "rlsys"
    """Ray namespace of the named teacher actors (`name`); jobs share teachers within one namespace."""
    detached: bool = False
    """Keep named teacher actors alive after the job (stop them with `rlsys teacher-stop`)."""
    max_restarts: int = Field(3, ge=0)
    """Restart a teacher that dies this many times (its unfinished requests are re-run) before
    failing; restarts are counted in the metrics (`teacher/restarts`) and the summary."""
    num_cpus: float = Field(0.5, ge=0.0)
    """CPUs Ray reserves for each teacher."""
    num_gpus: float = Field(0.0, ge=0.0)
    """GPUs Ray reserves for each teacher (a fraction shares a GPU; 0: the CPU)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources (or node labels turned into resources) each teacher asks for, e.g.
    `{teacher_node: 1}`: the teachers run only on nodes that offer them (`ray start
    --resources='{"teacher_node": 4}'`). Empty: any node with the CPUs/GPUs asked for."""
    scheduling: Literal["default", "spread"] = "default"
    """spread: put the teachers on as many nodes as possible (Ray's SPREAD)."""


class LPTConfig(Section):
    """L_PT: a language-modelling loss on separate text, mixed into the RL loss."""

    coef: float = Field(0.0, ge=0.0)
    """Weight of L_PT in the learner's loss, L_RL + coef x L_PT (0: off)."""
    source: str = "reasoning_gym:in_the_year_2889.txt"
    """A .txt file, a .jsonl file (field `text_field`), or `reasoning_gym:FILE` (text shipped
    with reasoning-gym)."""
    text_field: str = "text"
    """Field holding the text in each row of a .jsonl `source`."""
    block_tokens: int = Field(128, ge=8)
    """Tokens per block: the texts are joined by EOS and cut into blocks of this length."""
    sequences_per_micro_batch: int = Field(2, ge=1)
    """Text blocks in the L_PT term of each learner micro-batch."""
