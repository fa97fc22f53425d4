"""What preparation hands a run: the resolved model paths, the rendered prompts, the checked
preference pairs and evaluation tasks, all read and validated before any actor starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlsys.data.preferences import PreferencePair, ValidationReport
from rlsys.records import PairItem, PromptItem

@dataclass
class Prepared:
    model_path: str
    train: list[PromptItem]
    evaluation: list[PromptItem]
    teacher_path: str | None = None
    teacher_same_vocab: bool = False
    """Teacher and student share a vocabulary: score student token ids, not re-tokenized text."""
    critic_path: str | None = None
    """The critic's starting point (PPO): `critic.path`, else the policy's model."""
    pairs: PreferenceSet | None = None
    """Validated, encoded preference pairs (offline DPO)."""
    suite_tasks: list = field(default_factory=list)
    """The tasks of `eval.suite`, their data read and checked."""


@dataclass
class PreferenceSet:
    train: list[PairItem]
    heldout: list[PairItem]
    heldout_rows: list[PreferencePair]
    report: ValidationReport
