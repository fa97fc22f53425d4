"""The environment a run's `env` section names: the built-in tool environment, reasoning-gym's
tasks, or a user's class by dotted path."""

from __future__ import annotations

import importlib

from rlsys.config.env import EnvConfig
from rlsys.envs.base import Environment
from rlsys.envs.reasoning_gym_env import ReasoningGymEnvironment
from rlsys.envs.tool_env import ToolEnvironment
from rlsys.envs.tools.calculator import Calculator
from rlsys.envs.tools.python_sandbox import PythonSandbox


def build_environment(cfg: EnvConfig) -> Environment:
    if cfg.type == "tools":
        tools = {"calculator": Calculator, "python": lambda: PythonSandbox(cfg.tool_timeout_s, cfg.tool_memory_mb)}
        return ToolEnvironment([tools[name]() for name in cfg.tools], cfg.tool_format, cfg.system_prompt,
                               cfg.max_output_chars, cfg.examples)
    if cfg.type == "reasoning_gym":
        return ReasoningGymEnvironment(**cfg.kwargs)
    module_name, sep, attr = (cfg.type or "").partition(":")
    if not sep:
        module_name, _, attr = module_name.rpartition(".")
    if not module_name:
        raise ValueError(f"env.type {cfg.type!r}: `tools`, `reasoning_gym` or a dotted path package.module:Class")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"env.type {cfg.type!r}: cannot import {attr!r} from {module_name!r} ({exc})") from exc
    env = cls(**cfg.kwargs)
    if not (callable(getattr(env, "reset", None)) and callable(getattr(env, "step", None))):
        raise ValueError(f"env.type {cfg.type!r}: {attr} has no reset(task) and step(text) methods")
    return env


def stop_strings(env: Environment) -> list[str]:
    """Strings that end a model turn for this environment (a tool call's closing tag)."""
    return list(getattr(env, "stop", []) or [])
