"""Reward functions by name, user rewards by dotted path, and their weighted combination."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from rlsys.rewards.combine import linear, squash
from rlsys.config import RewardTerm
from rlsys.rewards.format import format_reward, reasoning_present
from rlsys.rewards.language import language_fidelity
from rlsys.rewards.length import brevity
from rlsys.rewards.math import correctness
from rlsys.rewards.teacher import teacher_loglik
from rlsys.errors import RewardError

RewardFn = Callable[..., list[float]]

REWARDS: dict[str, RewardFn] = {
    "correctness": correctness,
    "format": format_reward,
    "reasoning": reasoning_present,
    "brevity": brevity,
    "teacher_loglik": teacher_loglik,
    "language_fidelity": language_fidelity,
}


MODEL_REWARDS = ("reward_model",)
"""Rewards computed by a model in its own actor; their kwargs configure the actor."""


def _needs_actor(name: str) -> RewardFn:
    def missing(*_, **__) -> list[float]:
        raise RewardError(f"reward {name!r} runs in its own actor, and none was given to this reward set")
    return missing


def load_reward(name: str) -> RewardFn:
    """A registered name, or `package.module:function` / `package.module.function`."""
    if name in REWARDS:
        return REWARDS[name]
    if name in MODEL_REWARDS:
        return _needs_actor(name)
    module_name, sep, attr = name.partition(":")
    if not sep:
        module_name, _, attr = name.rpartition(".")
    if not module_name:
        raise RewardError(f"unknown reward {name!r}; registered: {', '.join(REWARDS)}, or a dotted path pkg.module:fn")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RewardError(f"reward {name!r}: cannot import module {module_name!r} ({exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RewardError(f"reward {name!r}: {module_name!r} has no callable {attr!r}")
    params = inspect.signature(fn).parameters
    if len([p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) < 2 and not any(
        p.kind == p.VAR_POSITIONAL for p in params.values()
    ):
        raise RewardError(f"reward {name!r} must accept (prompts, completions, answers, **fields)")
    return fn


class RewardSet:
    """The configured terms; `score` returns the weighted total and each term's values."""

    def __init__(self, terms: list[RewardTerm], combiner: str = "linear", squash_temperature: float = 1.0,
                 template: str | None = None, scorers: dict[str, RewardFn] | None = None) -> None:
        """`template` (data.template) sets the `format` reward's style unless its kwargs do.
        `scorers` holds the callables of model rewards (`reward_model`), started elsewhere."""
        if not terms:
            raise RewardError("reward.terms is empty: configure at least one reward")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise RewardError(f"reward.terms names a reward twice: {names}")
        scorers = scorers or {}
        self.terms = [(t.name, t.weight, {} if t.name in MODEL_REWARDS else _with_style(t, template),
                       scorers.get(t.name) or load_reward(t.name)) for t in terms]
        self.combiner, self.squash_temperature = combiner, squash_temperature

    def score(self, prompts: list[str], completions: list[str], answers: list[str], **fields) -> tuple[list[float], dict[str, list[float]]]:
        parts: dict[str, list[float]] = {}
        for name, _, kwargs, fn in self.terms:
            values = [float(v) for v in fn(prompts, completions, answers, **fields, **kwargs)]
            if len(values) != len(completions):
                raise RewardError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions")
            parts[name] = values
        weights = {name: weight for name, weight, _, _ in self.terms}
        if self.combiner == "squash":
            return squash(parts, weights, self.squash_temperature), parts
        # "minillm" adds its per-token part to the advantages; its sequence part is linear.
        return linear(parts, weights), parts


def _with_style(term: RewardTerm, template: str | None) -> dict:
    if term.name != "format" or template is None or "style" in term.kwargs:
        return dict(term.kwargs)
    return {**term.kwargs, "style": template_format_style(template)}


def template_format_style(template: str) -> str:
    """The answer layout a prompt template asks for: XML tags, or a final '#### N' line."""
    return "xml" if template == "xml" else "hash"
