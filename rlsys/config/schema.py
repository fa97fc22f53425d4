"""The one typed configuration schema: every section, and the checks that span sections
(`rlsys.config.rules`). Unknown keys are refused everywhere."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from rlsys.config.algorithms import AlgorithmConfig, CriticConfig, GRPOConfig
from rlsys.config.base import Section
from rlsys.config.data import DataConfig
from rlsys.config.distill import LPTConfig, TeacherConfig
from rlsys.config.env import EnvConfig
from rlsys.config.dtypes import choose_dtype
from rlsys.config.learner import LearnerConfig
from rlsys.config.migration import migrate_grpo_section
from rlsys.config.model import ModelConfig
from rlsys.config.rewards import RewardConfig
from rlsys.config.rollout import RolloutConfig, SyncConfig
from rlsys.config.rules import RULES
from rlsys.config.run import EvalConfig, RayConfig, RunConfig, TrackingConfig


class Config(Section):
    """A whole run's configuration: one section per top-level key."""

    run: RunConfig = Field(default_factory=RunConfig)
    """The run folder, length, seed, evaluations, checkpoints and resumption."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The student model."""
    data: DataConfig = Field(default_factory=DataConfig)
    """The tasks (or preference pairs) and the prompt around them."""
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    """The vLLM engines that sample completions."""
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    """The DeepSpeed ranks that train the policy."""
    algorithm: AlgorithmConfig = Field(default_factory=GRPOConfig)
    """The training algorithm, chosen by `type`: grpo, ppo or dpo (without `type`: grpo). Each type
    has keys of its own; a key the chosen type does not have is refused."""
    critic: CriticConfig = Field(default_factory=CriticConfig)
    """PPO's critic (ignored by algorithms without one)."""
    reward: RewardConfig = Field(default_factory=RewardConfig)
    """The reward terms and how they combine."""
    env: EnvConfig = Field(default_factory=EnvConfig)
    """A multi-turn environment (none while `env.type` is unset: single-turn rollouts)."""
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    """A teacher model for distillation (none while `teacher.path` is unset)."""
    lpt: LPTConfig = Field(default_factory=LPTConfig)
    """A language-modelling loss on separate text (off while `lpt.coef` is 0)."""
    sync: SyncConfig = Field(default_factory=SyncConfig)
    """How new weights reach the engines."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """The held-out evaluations during training."""
    ray: RayConfig = Field(default_factory=RayConfig)
    """The Ray cluster."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """Where metrics and progress go."""

    _dtype_notes: list[str] = PrivateAttr(default_factory=list)  # how each dtype was chosen

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, raw: Any) -> Any:
        return migrate_grpo_section(raw)

    @model_validator(mode="after")
    def _resolve_dtypes(self) -> "Config":
        """`auto` becomes a concrete dtype here, so the resolved config says what ran."""
        student_gpu = self.rollout.num_gpus > 0 or self.learner.num_gpus > 0
        self.model.dtype, student = choose_dtype(self.model.dtype, student_gpu, "model.dtype", "student")
        self.teacher.dtype, teacher = choose_dtype(self.teacher.dtype, self.teacher.num_gpus > 0, "teacher.dtype",
                                                   "teacher")
        self._dtype_notes = [student, teacher]
        return self

    @model_validator(mode="after")
    def _cross_section_rules(self) -> "Config":
        for rule in RULES:
            rule(self)
        return self

    def critic_learner(self) -> LearnerConfig:
        """The critic's effective engine settings: the learner's, with the critic's own where set."""
        c = self.critic
        own = {"num_ranks": c.num_ranks, "num_cpus": c.num_cpus, "num_gpus": c.num_gpus, "lr": c.lr,
               "warmup_steps": c.warmup_steps, "zero_stage": c.zero_stage, "grad_clip": c.grad_clip,
               "torch_threads": c.torch_threads, "min_lr_ratio": 1.0,
               "resources": c.resources, "placement": c.placement}
        own.update({k: getattr(c, k) for k in ("mini_batch_size", "micro_batch_size", "epochs") if getattr(c, k)})
        return self.learner.model_copy(update=own)

    @property
    def batch_size(self) -> int:
        return self.rollout.prompts_per_iteration * self.rollout.group_size
