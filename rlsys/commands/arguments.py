"""Arguments several commands share, and how a command that used Ray ends its output."""

from __future__ import annotations

import argparse
import sys


def config_arguments(p: argparse.ArgumentParser, what: str = "YAML config file") -> None:
    p.add_argument("config", help=what)
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")


def stop_log_forwarding() -> None:
    """Shut Ray down so that no actor log line forwarded to stdout lands after the result."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    sys.stderr.flush()
    sys.stdout.flush()
