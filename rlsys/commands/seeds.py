"""`rlsys seeds CONFIG --seeds 0 1 2 --out DIR`: the same run once per seed, then the mean and
spread of its held-out results (`DIR/seeds.md`, `DIR/seeds.json`).

Each seed is a separate `rlsys train` process (a fresh Ray session, nothing shared) writing
to `DIR/seed-S`; a seed whose folder already holds a `summary.json` is not run again, so an
interrupted sweep continues where it stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlsys.commands.arguments import config_arguments
from rlsys.config import load_config
from rlsys.observability.seed_summary import markdown_table, seed_summary

NAME, HELP = "seeds", "run CONFIG once per seed; mean and spread of the held-out results"


def add_arguments(p) -> None:
    config_arguments(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", required=True, help="folder for the runs (seed-S) and seeds.md / seeds.json")


def run_seeds(config: str, overrides: list[str], seeds: list[int], out: str) -> dict:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    summaries: dict[int, dict] = {}
    for seed in seeds:
        run_dir = root / f"seed-{seed}"
        done = run_dir / "summary.json"
        if not done.is_file():
            cmd = [sys.executable, "-m", "rlsys", "train", config, *overrides, f"run.seed={seed}", f"run.dir={run_dir}"]
            print(f"seeds: seed {seed}: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
            code = subprocess.call(cmd)  # one run per seed, its progress on this terminal
            if code != 0 or not done.is_file():
                raise RuntimeError(f"seed {seed} failed (exit {code}); its log is in {run_dir}. Fix it and "
                                   f"run the same command again: finished seeds are kept")
        summaries[seed] = json.loads(done.read_text())
    summary = seed_summary(summaries)
    table = markdown_table(summary, seeds, Path(config).name + (" " + " ".join(overrides) if overrides else ""))
    (root / "seeds.md").write_text(table)
    result = {"config": config, "overrides": overrides, "seeds": seeds, "runs": [str(root / f"seed-{s}") for s in seeds],
              "machine": this_machine(), "summary": summary}
    (root / "seeds.json").write_text(json.dumps(result, indent=1))
    print(table, file=sys.stderr)
    return result


def this_machine() -> dict:
    """What the results page labels a sweep with: the CPU, its kind and the cores used."""
    from rlsys.diagnostics.machine import cpu_info, gpus, machine_kind, usable_cores

    cpu = cpu_info()
    return {"cpu": cpu["model"], "kind": machine_kind(cpu["isa"]), "cores": usable_cores(), "gpus": gpus()}


def run(args) -> int:
    load_config(args.config, args.overrides)  # a bad config fails here, not in the first seed's process
    print(json.dumps(run_seeds(args.config, args.overrides, args.seeds, args.out)))
    return 0
