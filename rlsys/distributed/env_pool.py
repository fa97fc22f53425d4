"""The environment pool: episodes spread over environment actors (an episode stays on the
actor that reset it), each call bounded by the step timeout. An actor that dies or overruns
loses its episodes' state: they come back as `EnvironmentLost` (the turn loop re-runs each
such episode once, from its start), the overrunning actor is killed, and Ray restarts it."""

from __future__ import annotations

from rlsys.envs.base import EnvironmentFailed, EnvironmentLost, StepResult


class EnvPool:
    def __init__(self, handles: list, names: list[str], timeout_s: float) -> None:
        self.handles, self.names, self.timeout_s = list(handles), list(names), timeout_s
        self.home: dict[str, int] = {}  # episode key -> the actor holding its environment
        self.lost = 0  # actor deaths and overruns seen
        self._next = 0

    def kill(self) -> None:
        import ray

        for h in self.handles:
            ray.kill(h)

    def stop_strings(self) -> list[str]:
        import ray

        return ray.get(self.handles[0].stop_strings.remote(), timeout=self.timeout_s + 60)

    def reset(self, keys: list[str], tasks: list[dict]) -> list:
        """First messages per episode (or an exception); new keys go round-robin over the actors."""
        for key in keys:
            self.home[key] = self._next % len(self.handles)
            self._next += 1
        return self._fan_out("reset", keys, tasks)

    def step(self, keys: list[str], texts: list[str]) -> list:
        out = self._fan_out("step", keys, texts)
        for key, r in zip(keys, out):
            if not isinstance(r, StepResult) or r.done:
                self.home.pop(key, None)
        return out

    def forget(self, keys: list[str]) -> None:
        """Close episodes that ended on the model's side (a budget hit)."""
        by_actor: dict[int, list[str]] = {}
        for key in keys:
            if key in self.home:
                by_actor.setdefault(self.home.pop(key), []).append(key)
        for a, ks in by_actor.items():
            self.handles[a].close.remote(ks)

    def _fan_out(self, method: str, keys: list[str], args: list) -> list:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        by_actor: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_actor.setdefault(self.home[key], []).append(i)
        refs = {a: getattr(self.handles[a], method).remote([keys[i] for i in idx], [args[i] for i in idx])
                for a, idx in by_actor.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=self.timeout_s)
        out: list = [None] * len(keys)
        for a, ref in refs.items():
            idx = by_actor[a]
            if ref not in ready:
                self.lost += 1
                ray.kill(self.handles[a], no_restart=False)  # Ray restarts it; its episodes start over
                answers = [EnvironmentLost(f"{self.names[a]} did not answer within {self.timeout_s:g} s")] * len(idx)
            else:
                try:
                    answers = [EnvironmentFailed(r) if isinstance(r, str) else r for r in ray.get(ref)]
                except RayActorError as exc:
                    self.lost += 1
                    answers = [EnvironmentLost(f"{self.names[a]} died ({type(exc).__name__})")] * len(idx)
                except RayTaskError as exc:  # the worker's own code failed: every episode of the call fails
                    cause = exc.cause if exc.cause is not None else exc
                    answers = [EnvironmentFailed(f"{self.names[a]}: {type(cause).__name__}: {cause}")] * len(idx)
            for i, answer in zip(idx, answers):
                out[i] = answer
        for key, r in zip(keys, out):
            if isinstance(r, Exception):
                self.home.pop(key, None)
        return out
