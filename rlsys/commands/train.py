"""`rlsys train CONFIG [key=value ...]`: a training run (RL, distillation or DPO); the last line
printed is a JSON summary."""

from __future__ import annotations

import json

from rlsys.commands.arguments import config_arguments, stop_log_forwarding
from rlsys.config import load_config

NAME, HELP = "train", "run a training job"


def add_arguments(p) -> None:
    config_arguments(p)
    p.add_argument("--verbose", action="store_true",
                   help="show the output of vLLM, Ray, DeepSpeed and transformers here, not in RUN_DIR/logs "
                        "(tracking.console_level=verbose)")


def run(args) -> int:
    from rlsys.run import train

    overrides = args.overrides + (["tracking.console_level=verbose"] if args.verbose else [])
    cfg = load_config(args.config, overrides)
    summary = train(cfg)
    stop_log_forwarding()
    print(json.dumps({"run_dir": cfg.run.dir, "eval_before": summary["eval_before"],
                      "eval_after": summary["eval_after"], "wall_seconds": summary["wall_seconds"]}))
    return 0
