"""The typed configuration: one schema (`Config`), loaded from YAML plus `a.b=value`
overrides by `load_config`. Every section refuses unknown keys, so a misspelt key is an
error that names the key and the file it came from.

- `base`: the base section; `model`, `data`, `rollout`, `learner`, `algorithms`, `distill`,
  `rewards`, `run`: the sections, one family per module;
- `schema`: the top-level `Config`; `rules`: the checks that span sections, one function each;
- `migration`: older configs read as today's; `loading`: files, overrides, dumping.
"""

from rlsys.config.algorithms import AlgorithmConfig, CriticConfig, DPOConfig, GRPOConfig, PolicyLossConfig, PPOConfig
from rlsys.config.base import Section
from rlsys.config.data import DataConfig, MinWords, PreferenceDataConfig
from rlsys.config.distill import LPTConfig, MiniLLMConfig, TeacherConfig
from rlsys.config.env import EnvConfig
from rlsys.config.learner import LearnerConfig
from rlsys.config.loading import apply_overrides, dump_config, load_config
from rlsys.config.model import DEFAULT_LORA_TARGETS, LoraSettings, ModelConfig
from rlsys.config.rewards import TEACHER_REWARDS, RewardConfig, RewardTerm
from rlsys.config.rollout import RolloutConfig, SyncConfig
from rlsys.config.run import PHASES, EvalConfig, RayConfig, RunConfig, TrackingConfig
from rlsys.config.schema import Config
from rlsys.errors import ConfigError

__all__ = ["DEFAULT_LORA_TARGETS", "PHASES", "TEACHER_REWARDS", "AlgorithmConfig", "Config", "ConfigError",
           "CriticConfig", "DPOConfig", "DataConfig", "EnvConfig", "EvalConfig", "GRPOConfig", "LPTConfig", "LearnerConfig",
           "LoraSettings", "MiniLLMConfig", "MinWords", "ModelConfig", "PPOConfig", "PolicyLossConfig",
           "PreferenceDataConfig", "RayConfig", "RewardConfig", "RewardTerm", "RolloutConfig", "RunConfig", "Section",
           "SyncConfig", "TeacherConfig", "TrackingConfig", "apply_overrides", "dump_config", "load_config"]
