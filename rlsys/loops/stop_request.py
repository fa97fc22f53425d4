"""Stopping on purpose. SIGTERM (what `ray job stop`, SLURM preemption and Kubernetes eviction
send) or SIGINT asks the run to stop resumably: the loop finishes the iteration in flight,
writes a checkpoint of it, and the run stops every actor and exits with `EXIT_STOPPED`.
When that takes longer than `run.stop_grace_s`, or a second signal comes, the phase in
flight is abandoned instead (the newest earlier checkpoint is the one to resume from).

The handlers replace Ray's (which prints a crash dump and aborts the driver); they only set
a flag, so a Ray call in flight is not interrupted until the grace has passed."""

from __future__ import annotations

import signal
import sys
import threading
import time

from rlsys.errors import RunStopped

EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped on purpose; running the same command again resumes
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.signal: str | None = None  # the name of the first signal received
        self.received_at: float | None = None
        self._previous: dict = {}
        self._timer: threading.Timer | None = None
        self._expired = False

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        """Take SIGTERM and SIGINT (again: `ray.init` installs its own). Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal is None:
            self.signal, self.received_at = name, time.monotonic()
            print(f"rlsys: {name} received: finishing the iteration in flight, then a checkpoint and a stop (at most "
                  f"{self.grace_s:g}s; run.stop_grace_s); another signal stops at once", file=sys.stderr, flush=True)
            self._timer = threading.Timer(self.grace_s, self._expire)
            self._timer.daemon = True
            self._timer.start()
            return
        why = f"run.stop_grace_s ({self.grace_s:g}s) passed" if self._expired else f"a second {name}"
        raise RunStopped(f"{why} after {self.signal}: the iteration in flight was abandoned", checkpointed=False)

    def _expire(self) -> None:
        self._expired = True
        # A real signal to the main thread: it wakes a blocking call, then `_handle` raises there.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
