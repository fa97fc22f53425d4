"""Command line: `rlsys train`, `rlsys validate`, `rlsys bench`."""

from __future__ import annotations

import argparse
import json
import sys

from rlsys.config import ConfigError, dump_config, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlsys", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "run a training job"), ("validate", "print the resolved config or its errors")):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("config", help="YAML config file")
        s.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    b = sub.add_parser("bench", help="measure rollout and weight-sync efficiency (last line: JSON)")
    b.add_argument("--model", default="tiny-random", help="model path or built-in name (default: tiny-random)")
    b.add_argument("--prompts", type=int, default=32)
    b.add_argument("--group-size", type=int, default=4)
    b.add_argument("--max-new-tokens", type=int, default=64)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--dtype", default="bfloat16")
    return p


def main(argv: list[str] | None = None) -> int:
    from rlsys.distributed.cluster import keep_local_ray_on_loopback

    keep_local_ray_on_loopback()
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            cfg = load_config(args.config, args.overrides)
            print(dump_config(cfg), end="")
            return 0
        if args.command == "train":
            from rlsys.controller import train

            cfg = load_config(args.config, args.overrides)
            summary = train(cfg)
            print(json.dumps({"run_dir": cfg.run.dir, "eval_before": summary["eval_before"],
                              "eval_after": summary["eval_after"], "wall_seconds": summary["wall_seconds"]}))
            return 0
        if args.command == "bench":
            from rlsys.bench import run_bench

            print(json.dumps(run_bench(args)))
            return 0
    except ConfigError as exc:
        print(f"rlsys: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the known user-facing errors carry their own message
        from rlsys.controller import RunError
        from rlsys.data.sources import DataError
        from rlsys.models.catalog import ModelNotFoundError
        from rlsys.rewards.registry import RewardError

        if isinstance(exc, (RunError, DataError, ModelNotFoundError, RewardError)):
            print(f"rlsys: {exc}", file=sys.stderr)
            return 1
        raise
    return 0
