"""One multi-turn episode as token ids: the bookkeeping behind token in, token out.

The episode's ids after its first prompt grow turn by turn: the ids the model sampled (loss
mask 1, with vLLM's log-prob of each) and the ids rlsys put between turns (the template's end
of turn, the environment's messages, the next turn's header: loss mask 0, log-prob 0). The
model's text is decoded for the environment to read and never encoded again. An episode ends
done (the environment said so), at the turn budget, at the token budget, or failed (an
environment error or timeout), and says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlsys.envs.base import StepResult
from rlsys.envs.tokens import TurnTokens
from rlsys.records import Trajectory


@dataclass
class EpisodeLimits:
    max_turns: int = 4
    """Model turns at most; an episode still going after them is truncated ('max_turns')."""
    max_tokens: int = 1024
    """Ids after the first prompt at most (model, template and environment ids together)."""


@dataclass
class Episode:
    prompt_index: int
    prompt_ids: list[int]
    temperature: float
    limits: EpisodeLimits
    key: str = ""
    """Names the episode to its environment actor."""
    seed: int | None = None
    """Seeds the episode's model turns (turn k draws with a seed derived from it and k)."""
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_ends: list[int] = field(default_factory=list)
    turn_versions: list[int] = field(default_factory=list)
    turn_rewards: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    observations: list[list[dict]] = field(default_factory=list)
    """Per model turn: the messages the environment answered it with (empty when it ended the episode)."""
    status: str = "running"
    turn_start: int = 0
    """Where the last model turn's ids begin."""
    restarted: bool = False
    """This is the episode's second start (its first environment was lost)."""
    tool_calls: int = 0
    tool_errors: int = 0
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def context_ids(self) -> list[int]:
        """What the engine continues from: the first prompt and every id since."""
        return self.prompt_ids + self.ids

    def turn_seed(self) -> int | None:
        """The seed of the next model turn: the same episode draws the same turns on any engine."""
        return None if self.seed is None else (self.seed + 7919 * len(self.texts)) % 2**48

    def tokens_left(self) -> int:
        return self.limits.max_tokens - len(self.ids)

    def add_model_turn(self, sampled_ids: list[int], logprobs: list[float], text: str, version: int) -> None:
        """The ids the engine sampled for this turn (at least one: vLLM samples at least one
        token), with their log-probs and the weight version that sampled them. A turn that
        used up the token budget ends the episode ('max_tokens')."""
        if not sampled_ids or len(sampled_ids) != len(logprobs):
            raise ValueError(f"a model turn needs its sampled ids with one log-prob each "
                             f"({len(sampled_ids)} ids, {len(logprobs)} log-probs)")
        self.turn_start = len(self.ids)
        self.ids += sampled_ids
        self.mask += [1] * len(sampled_ids)
        self.logprobs += list(logprobs)
        self.turn_ends.append(len(self.ids) - 1)
        self.texts.append(text)
        self.turn_versions.append(version)
        self.turn_rewards.append(0.0)
        if self.tokens_left() <= 0:
            self.status = "max_tokens"

    def add_environment_turn(self, result: StepResult, turn_tokens: TurnTokens) -> None:
        """The environment's answer to the model's last turn; ends the episode when it is done
        or when the budgets leave no room for another model turn."""
        self.turn_rewards[-1] += result.reward
        self.observations.append(list(result.messages))
        self.tool_calls += result.tool_calls
        self.tool_errors += result.tool_errors
        if result.done:
            self.status = "done"
            return
        if len(self.texts) >= self.limits.max_turns:
            self.status = "max_turns"
            return
        between = turn_tokens.close_model_turn(self.ids[self.turn_start:]) + turn_tokens.observation_ids(result.messages)
        if len(between) >= self.tokens_left():
            self.status = "max_tokens"
            return
        self.ids += between
        self.mask += [0] * len(between)
        self.logprobs += [0.0] * len(between)

    def fail(self, why: str) -> None:
        self.status, self.error = "failed", why

    def trajectory(self) -> Trajectory:
        return Trajectory(
            prompt_index=self.prompt_index, prompt_ids=list(self.prompt_ids), completion_ids=list(self.ids),
            loss_mask=list(self.mask), sampling_logprobs=list(self.logprobs), turn_ends=list(self.turn_ends),
            turn_rewards=list(self.turn_rewards), turn_versions=list(self.turn_versions), status=self.status,
            temperature=self.temperature,
            tool_calls=self.tool_calls, tool_errors=self.tool_errors, error=self.error,
            turn_texts=list(self.texts), observations=[list(o) for o in self.observations])
