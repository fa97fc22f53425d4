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

from rlsys.observability.seeds import markdown_table, seed_summary


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
              "summary": summary}
    (root / "seeds.json").write_text(json.dumps(result, indent=1))
    print(table, file=sys.stderr)
    return result
