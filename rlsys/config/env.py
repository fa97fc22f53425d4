"""The `env` section: multi-turn episodes against an environment (tools, or a user's own)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rlsys.config.base import Section


class EnvConfig(Section):
    """A multi-turn environment: when `type` is set, every rollout is an episode of model turns
    and environment turns, trained token in, token out (the ids the model sampled, a loss mask
    0 on the rest). Environments run in a pool of Ray actors of their own."""

    type: str | None = None
    """None: single-turn rollouts. `tools`: the built-in tool-calling environment (`tools`,
    `tool_format`). `reasoning_gym`: the data's reasoning-gym tasks scored by reasoning-gym's own
    scorer, one turn or `kwargs.attempts` tries (rlsys.envs.reasoning_gym_env). Or a dotted path
    `package.module:Class` to an `rlsys.envs.base.Environment` subclass, built with `kwargs`."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of a user environment's class (`reasoning_gym`: `attempts`, `answer`
    (`tag` or `last_number`), `feedback`)."""
    tools: list[Literal["calculator", "python"]] = Field(default_factory=lambda: ["calculator"])
    """type tools: the tools offered to the model."""
    tool_format: Literal["smollm2", "gemma"] = "smollm2"
    """type tools: how the model writes a call (its family's format; rlsys.envs.tool_formats)."""
    system_prompt: str = ""
    """type tools: text before the tools' description in the system message (e.g. a worked
    example of the call format)."""
    examples: list[dict[str, Any]] = Field(default_factory=list)
    """type tools: worked exchanges shown before each task, e.g. `{question: "What is 23 - 58 +
    4?", tool: calculator, arguments: {expression: "23 - 58 + 4"}}`: the question, the model's
    call in `tool_format`, the tool's real answer and "The answer is ...". A small model copies
    the call format from an example far more often than from a description alone."""
    max_turns: int = Field(4, ge=1)
    """Model turns per episode at most; an episode still calling tools after them is truncated."""
    max_tokens: int = Field(512, ge=1)
    """Ids per episode after its first prompt at most (the model's, the template's and the
    environment's together); each model turn is also held to `rollout.max_new_tokens`."""
    step_timeout_s: float = Field(30.0, gt=0)
    """Seconds an environment step may take; an episode whose step overruns fails (counted in
    `rollout/env_failures`) and its environment actor is replaced."""
    tool_timeout_s: float = Field(5.0, gt=0)
    """type tools: the python tool's wall-clock limit per call."""
    tool_memory_mb: int = Field(256, ge=16)
    """type tools: the python tool's memory limit."""
    max_output_chars: int = Field(2000, ge=16)
    """A tool's output shown to the model at most (the rest is cut, and says so)."""
    turn_return: Literal["sum", "discounted"] = "sum"
    """How an episode's per-turn rewards and final reward make its return: summed, or
    discounted by `gamma` per turn."""
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    """Per-turn discount of `turn_return: discounted`."""
    num_workers: int = Field(1, ge=1)
    """Environment actors; episodes are spread over them (an episode stays on one)."""
    num_cpus: float = Field(0.25, ge=0.0)
    """CPUs Ray reserves for each environment actor."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources each environment actor asks for (placement, as for the other roles)."""
    max_restarts: int = Field(3, ge=0)
    """How often Ray restarts an environment actor that died; its episodes are re-run once."""
