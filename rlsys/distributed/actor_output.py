"""Where an actor's process writes: in a quiet run, a file of its own in the run folder's `logs/`
(its vLLM engine processes inherit it), so the terminal keeps rlsys's lines only."""

from __future__ import annotations

import os
from pathlib import Path

from rlsys.observability.console import send_output_to


def logged(cls: type, log_dir: str | None, role: str) -> type:
    """`cls`, whose instances first send their process's output to `log_dir/ROLE-PID.log`
    (`cls` itself when `log_dir` is None: the output reaches the driver's terminal)."""
    if log_dir is None:
        return cls

    def __init__(self, *args, **kwargs):
        send_output_to(Path(log_dir) / f"{role}-{os.getpid()}.log")
        cls.__init__(self, *args, **kwargs)

    # A subclass made here is pickled by value (Ray ships it to the worker), under the same name.
    return type(cls.__name__, (cls,), {"__init__": __init__, "__doc__": cls.__doc__})
