"""What a training loop is given: the config, the started roles (one method per phase), the
prepared data, the algorithm, where the run writes, and the checkpoint it continues from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rlsys.algorithms.registry import Algorithm
from rlsys.config import Config
from rlsys.data.prepared import Prepared
from rlsys.distributed.roles import Roles
from rlsys.loops.stop_request import StopRequest


@dataclass
class RunContext:
    cfg: Config
    roles: Roles
    data: Prepared
    algorithm: Algorithm
    run_dir: Path
    resume_from: Path | None = None
    schedule: dict[str, int] | None = None
    """Optimiser steps the learning-rate schedules span (saved in every checkpoint)."""
    stop: StopRequest | None = None
    """Set by SIGTERM/SIGINT: the loop checkpoints the iteration in flight and stops."""
    announce: Callable[[str], None] | None = None
    """Told the name of each phase as it starts (the live display)."""

    @property
    def stop_requested(self) -> bool:
        return self.stop is not None and self.stop.requested
