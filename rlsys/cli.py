"""Command line: `rlsys <command> ...`, one sub-command per module of `rlsys.commands` (the
table there). Known errors print their message (exit 1; a config error exit 2), not a stack."""

from __future__ import annotations

import argparse
import sys

from rlsys.commands import COMMANDS
from rlsys.errors import USER_FACING, ConfigError, RunStopped
from rlsys.loops.stop_request import EXIT_STOPPED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlsys", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.NAME, help=command.HELP))
    return p


def main(argv: list[str] | None = None) -> int:
    from rlsys.distributed.cluster import keep_local_ray_on_loopback

    keep_local_ray_on_loopback()
    p = parser()
    args, extra = p.parse_known_args(argv)
    # Overrides may also follow options (`make-pairs CONFIG --out F a.b=1`).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    command = next(c for c in COMMANDS if c.NAME == args.command)
    try:
        return command.run(args)
    except RunStopped as exc:  # SIGTERM / SIGINT: stopped on purpose, resumable
        print(f"rlsys: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except ConfigError as exc:
        print(f"rlsys: {exc}", file=sys.stderr)
        return 2
    except USER_FACING as exc:  # the known user-facing errors carry their own message
        print(f"rlsys: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_local_ray()


def stop_local_ray() -> None:
    """A local Ray this command started ends with it, whether it succeeded or failed: its
    raylet, GCS and agents would otherwise linger as orphans for minutes."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
