"""Waiting on many actors at once without hanging on a dead one, and the error that names it."""

from __future__ import annotations

import time
from rlsys.errors import RunError


class NoAnswer(RunError):
    """Actors that did not answer within the bound (named in the message)."""


def _as_ready(refs: list, names: list[str], what: str, timeout_s: float | None):
    """(position, refs still pending) of each call as it finishes; a `RunError` naming the
    late ones once `timeout_s` has passed."""
    import ray

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pending = list(refs)
    while pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, pending = ray.wait(pending, num_returns=1, timeout=left)
        if not ready:
            late = [n for r, n in zip(refs, names) if r in pending]
            raise NoAnswer(f"{what}: {', '.join(late)} did not answer within {timeout_s:.0f}s")
        yield refs.index(ready[0]), pending


def wait_all(refs: list, names: list[str], what: str, timeout_s: float | None = None) -> list:
    """ray.get over several actors that names the first one to fail, or the ones that did
    not answer within `timeout_s`; it never hangs on a dead actor."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    for i, pending in _as_ready(refs, names, what, timeout_s):
        try:
            ray.get(refs[i])
        except RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            raise RunError(f"{what}: {names[i]} failed: {type(cause).__name__}: {cause}"
                           + _still_waiting(refs, names, pending)) from exc
        except RayActorError as exc:
            raise RunError(f"{what}: {names[i]} died: {exc}" + _still_waiting(refs, names, pending)) from exc
    return ray.get(refs)


def _still_waiting(refs: list, names: list[str], pending: list) -> str:
    late = [n for r, n in zip(refs, names) if r in pending]
    return f" (still waiting on: {', '.join(late)})" if late else ""


class Died:
    """An actor that died while doing a call (its process ended or it was killed)."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name, self.error = name, error

    def __repr__(self) -> str:
        return f"Died({self.name})"


def outcomes(refs: list, names: list[str], what: str, timeout_s: float | None = None,
             tolerate_errors: bool = False) -> list:
    """Like `wait_all`, but an actor that died yields a `Died` in its place instead of an
    error, and waiting goes on for the others. With `tolerate_errors`, a call that raised
    yields its exception (its peers' failures may be the cause)."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    results: dict[int, object] = {}
    for i, _ in _as_ready(refs, names, what, timeout_s):
        try:
            results[i] = ray.get(refs[i])
        except RayActorError as exc:
            results[i] = Died(names[i], exc)
        except RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            if not tolerate_errors:
                raise RunError(f"{what}: {names[i]} failed: {type(cause).__name__}: {cause}") from exc
            results[i] = cause
    return [results[i] for i in range(len(refs))]


def dead(results: list) -> list[int]:
    """Positions of the actors in `results` (from `outcomes`) that died."""
    return [i for i, r in enumerate(results) if isinstance(r, Died)]
