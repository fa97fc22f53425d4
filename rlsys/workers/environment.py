"""EnvironmentWorker: the environments of the episodes assigned to it, one per episode, kept
between that episode's turns. Steps of different episodes run concurrently (an environment's
`step` may be a coroutine, else it runs in a thread); a step that overruns is the caller's to
bound (the pool's timeout loses the actor's episodes and restarts it). As a Ray actor it is an
async actor (its methods are coroutines)."""

from __future__ import annotations

import asyncio

from rlsys.config.env import EnvConfig
from rlsys.envs.base import StepResult, call_reset, call_step
from rlsys.envs.factory import build_environment, stop_strings


class EnvironmentWorker:
    def __init__(self, cfg: EnvConfig) -> None:
        self.cfg = cfg
        self.envs: dict[str, object] = {}
        self.stop = stop_strings(build_environment(cfg))

    def stop_strings(self) -> list[str]:
        return self.stop

    async def reset(self, keys: list[str], tasks: list[dict]) -> list[list[dict] | str]:
        """A fresh environment per episode key and its first messages (or the error it raised)."""
        return list(await asyncio.gather(*(self._reset(k, t) for k, t in zip(keys, tasks))))

    async def step(self, keys: list[str], texts: list[str]) -> list[StepResult | str]:
        """Each episode's environment's answer to its model turn (or the error it raised); a
        finished or failed episode's environment is closed."""
        return list(await asyncio.gather(*(self._step(k, t) for k, t in zip(keys, texts))))

    def close(self, keys: list[str]) -> None:
        for key in keys:
            env = self.envs.pop(key, None)
            if env is not None:
                getattr(env, "close", lambda: None)()

    async def _reset(self, key: str, task: dict):
        try:
            env = self.envs[key] = build_environment(self.cfg)
            return await call_reset(env, task)
        except Exception as exc:  # noqa: BLE001 (a user's environment: the episode fails, the rest go on)
            self.close([key])
            return _error(exc)

    async def _step(self, key: str, text: str):
        try:
            result = await call_step(self.envs[key], text)
        except Exception as exc:  # noqa: BLE001
            self.close([key])
            return _error(exc)
        if result.done:
            self.close([key])
        return result


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
