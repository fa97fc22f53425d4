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

    @property
    def raw_question(self) -> str:
        """The question before `data.question_template` wrapped it (what a teacher's own prompt uses)."""
        return self.metadata.get("raw_question", self.question)


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
    loss_mask: list[int] | None = None
    """A multi-turn trajectory's mask over `completion_ids` (1: sampled by the model; see
    `Trajectory`); None: a single completion, every id sampled."""


@dataclass
class TrainItem:
    """One completion as the learner trains on it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    advantage: float
    token_advantages: list[float] | None = None
    """Per-token advantages (MiniLLM); when given they replace `advantage`."""
    temperature: float = 1.0
    """The temperature the completion was sampled at: the learner's log-probs use it too."""
    sampling_logprobs: list[float] | None = None
    """vLLM's log-probs of the completion (at `temperature`), to measure the learner's mismatch."""
    old_logprobs: list[float] | None = None
    """The learner's log-probs before this iteration's updates (the ratio's denominator)."""
    ref_logprobs: list[float] | None = None
    """The reference model's log-probs, when the algorithm keeps a KL to it."""
    returns: list[float] | None = None
    """Per-token value targets of the critic (PPO)."""
    old_values: list[float] | None = None
    """The critic's per-token values when the advantages were computed (value clipping)."""
    loss_mask: list[int] | None = None
    """Per completion id: 1 where the loss applies (the model's own ids of a multi-turn
    trajectory), 0 on template and environment ids; None: every completion id."""

    def loss_tokens(self) -> int:
        return sum(self.loss_mask) if self.loss_mask is not None else len(self.completion_ids)


@dataclass
class Trajectory:
    """One multi-turn episode as the ids after its first prompt: the model's sampled turns and,
    between them, the template's and the environment's ids (rlsys.envs.episode)."""

    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    loss_mask: list[int]
    """Per completion id: 1 where the model sampled it, 0 on template and environment ids."""
    sampling_logprobs: list[float]
    """Per completion id: vLLM's log-prob where the model sampled it, 0 elsewhere."""
    turn_ends: list[int]
    """Per model turn: the completion index of its last sampled id."""
    turn_rewards: list[float]
    turn_versions: list[int]
    """Per model turn: the weight version of the engine that sampled it."""
    status: str
    """'done', 'max_turns' or 'max_tokens' (truncated), or 'failed' (see `error`)."""
    temperature: float
    tool_calls: int = 0
    tool_errors: int = 0
    error: str | None = None
    turn_texts: list[str] = field(default_factory=list)
    """Per model turn: its text (decoded for the environment and the sample log)."""
    observations: list[list[dict]] = field(default_factory=list)
    """Per model turn: the environment's messages after it (for the sample log)."""

    @property
    def final_text(self) -> str:
        """The model's last turn, decoded: what the reward functions score."""
        return self.turn_texts[-1] if self.turn_texts else ""

    @property
    def truncated(self) -> bool:
        return self.status in ("max_turns", "max_tokens")

    @property
    def env_tokens(self) -> int:
        return len(self.loss_mask) - sum(self.loss_mask)

    def log_row(self) -> dict:
        """The trajectory as samples.jsonl shows it: each turn's text, reward and the
        environment's answer, the tool counts and how it ended."""
        # a turn that ended the episode on a budget has no environment answer after it
        answers = [self.observations[k] if k < len(self.observations) else [] for k in range(len(self.turn_texts))]
        turns = [{"model": text, "reward": r, "env": "\n".join(str(m.get("content", "")) for m in obs)}
                 for text, r, obs in zip(self.turn_texts, self.turn_rewards, answers)]
        return {"turns": turns, "status": self.status, "tool_calls": self.tool_calls, "tool_errors": self.tool_errors,
                **({"error": self.error} if self.error else {})}

    def to_sample(self) -> Sample:
        """The trajectory as the rest of a run handles a completion: its final text for the
        rewards, every id after the first prompt with the loss mask for the learner, and the
        oldest weight version among its turns for the staleness bound. A finished episode
        counts as stopped; a truncated or failed one as cut (`finish_reason` 'length')."""
        return Sample(self.prompt_index, list(self.prompt_ids), list(self.completion_ids), self.final_text,
                      list(self.sampling_logprobs), "stop" if self.status == "done" else "length",
                      min(self.turn_versions, default=0), self.temperature, loss_mask=list(self.loss_mask))


@dataclass
class ScoredBatch:
    """One iteration's samples with their rewards: what an algorithm turns into TrainItems."""

    samples: list[Sample]
    rewards: list[float]
    """The combined sequence reward of each sample."""
    group_size: int
    teacher_logprobs: list[list[float]] | None = None
    """Per-token teacher log-probs of each sample, when a teacher scored them."""
    old_logprobs: list[list[float]] | None = None
    """The learner's per-token log-probs of each sample before this iteration's update."""
    ref_logprobs: list[list[float]] | None = None
    """The reference's per-token log-probs, when the algorithm needs a reference."""
    values: list[list[float]] | None = None
    """The critic's per-token values, when the algorithm needs a critic."""


@dataclass
class ScoreRequest:
    """One completion for the teacher to score."""

    question: str
    completion_text: str
    completion_ids: list[int] | None = None
    """Student token ids; only valid when teacher and student share a vocabulary."""
    finished: bool = True
    answer: str = ""
    """The reference answer, for a `teacher.question_template` that shows it to the teacher."""
    raw_question: str = ""
    """The data row's question before `data.question_template` (the teacher's `{raw_question}`)."""


@dataclass
class PairItem:
    """One preference pair as the learner trains on it (answers end with the EOS token)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    ref_chosen: float | None = None
    """The reference's summed log-prob of the chosen answer (computed once, before training)."""
    ref_rejected: float | None = None
