"""`rlsys teacher-stop CONFIG`: stop the named teacher pool of CONFIG (detached ones included)."""

from __future__ import annotations

import json

from rlsys.commands.arguments import config_arguments
from rlsys.commands.teacher_start import named_teacher_config

NAME, HELP = "teacher-stop", "stop the named teacher pool of CONFIG"


def add_arguments(p) -> None:
    config_arguments(p, "YAML config file with teacher.name set")


def run(args) -> int:
    from rlsys.distributed.actors import stop_teachers

    print(json.dumps({"stopped": stop_teachers(named_teacher_config(args))}))
    return 0
