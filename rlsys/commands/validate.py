"""`rlsys validate CONFIG`: the resolved config, or its errors with file and key named."""

from __future__ import annotations

from rlsys.commands.arguments import config_arguments
from rlsys.config import dump_config, load_config

NAME, HELP = "validate", "print the resolved config or its errors"


def add_arguments(p) -> None:
    config_arguments(p)


def run(args) -> int:
    print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0
