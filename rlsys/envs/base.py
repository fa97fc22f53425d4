"""The environment interface: what a multi-turn rollout asks of an environment.

An environment sees text (the model's turn, decoded for it to read) and answers with chat
messages; the trajectory that is trained on keeps the ids the model sampled, never a
re-encoding of that text (rlsys.envs.tokens). `step` may be a coroutine function: `call_step`
awaits it when it is.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepResult:
    """What one step of an environment gives back."""

    messages: list[dict] = field(default_factory=list)
    """Chat messages to append before the model's next turn (tool results, a user's reply)."""
    reward: float = 0.0
    """This turn's reward (per-turn rewards; the final answer's reward is the reward functions')."""
    done: bool = False
    """The episode is over: no further model turn."""
    tool_calls: int = 0
    tool_errors: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class EnvironmentLost(RuntimeError):
    """The episode's environment went away with its state (its actor died or overran): the
    episode is re-run once from its start."""


class EnvironmentFailed(RuntimeError):
    """The episode's environment raised; the message is its error. The episode fails."""


class Environment:
    """One episode at a time: `reset(task)` gives the first messages, `step(text)` answers
    each model turn. Subclasses override both; `close` frees what the episode held."""

    def reset(self, task: dict) -> list[dict]:
        raise NotImplementedError

    def step(self, assistant_text: str) -> StepResult:
        raise NotImplementedError

    def close(self) -> None:
        pass


async def call_step(env: Environment, assistant_text: str) -> StepResult:
    """`env.step(text)`, awaited when the environment's step is a coroutine, in a thread of its
    own when it is not (so that one episode's slow tool does not hold up the others')."""
    if inspect.iscoroutinefunction(env.step):
        out = await env.step(assistant_text)
    else:
        out = await asyncio.to_thread(env.step, assistant_text)
        if inspect.isawaitable(out):
            out = await out
    if not isinstance(out, StepResult):
        raise TypeError(f"{type(env).__name__}.step returned {type(out).__name__}, not a StepResult")
    return out


async def call_reset(env: Environment, task: dict) -> list[dict]:
    """`env.reset(task)`, awaited when it is a coroutine; the messages are checked."""
    out = env.reset(task)
    if inspect.isawaitable(out):
        out = await out
    if not isinstance(out, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in out):
        raise TypeError(f"{type(env).__name__}.reset must return chat messages ({{'role', 'content'}} dicts)")
    return out
