"""`rlsys train CONFIG [key=value ...]`: a training run (RL, distillation or DPO); the last line
printed is a JSON summary."""

from __future__ import annotations

import json

from rlsys.commands.arguments import config_arguments, stop_log_forwarding
from rlsys.config import load_config

NAME, HELP = "train", "run a training job"


def add_arguments(p) -> None:
    config_arguments(p)


def run(args) -> int:
    from rlsys.run import train

    cfg = load_config(args.config, args.overrides)
    summary = train(cfg)
    stop_log_forwarding()
    print(json.dumps({"run_dir": cfg.run.dir, "eval_before": summary["eval_before"],
                      "eval_after": summary["eval_after"], "wall_seconds": summary["wall_seconds"]}))
    return 0
