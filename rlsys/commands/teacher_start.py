"""`rlsys teacher-start CONFIG`: start the named, detached teacher pool of CONFIG (for several
jobs to share) and exit once every teacher answers."""

from __future__ import annotations

import json

from rlsys.commands.arguments import config_arguments
from rlsys.config import Config, load_config
from rlsys.errors import ConfigError

NAME, HELP = "teacher-start", "start the named, detached teacher pool of CONFIG and exit"


def add_arguments(p) -> None:
    config_arguments(p, "YAML config file with teacher.name set")


def named_teacher_config(args) -> Config:
    """CONFIG with its teacher named and given a path, on a started Ray."""
    from rlsys.distributed.cluster import init_ray

    cfg = load_config(args.config, args.overrides)
    if not cfg.teacher.name or not cfg.teacher.path:
        raise ConfigError(f"{args.command} needs teacher.path and teacher.name in {args.config}")
    init_ray(cfg.ray)
    return cfg


def run(args) -> int:
    from rlsys.distributed.actors import start_teachers, teacher_names
    from rlsys.distributed.calls import wait_all
    from rlsys.models.catalog import resolve_model

    cfg = named_teacher_config(args)
    cfg.teacher.detached = True
    handles = start_teachers(cfg, resolve_model(cfg.teacher.path))
    names = teacher_names(cfg)
    print(json.dumps({"started": wait_all([h.ping.remote() for h in handles], names, "starting the teacher")}))
    return 0
