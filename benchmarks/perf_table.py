"""The README's TRL-vs-rlsys table from trl_grpo.py's JSON and an rlsys run folder."""

import json
import statistics
import sys
from pathlib import Path


def main(trl_json: str, rlsys_run: str) -> None:
    trl = json.loads(Path(trl_json).read_text().strip().splitlines()[-1])
    rows = [json.loads(line) for line in (Path(rlsys_run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # the first iteration warms up; the last one includes the final evaluation
    steady = rows[1:-1] if len(rows) > 2 else rows
    ours = statistics.median(r["time/iteration"] for r in steady)
    phases = {k[5:]: statistics.median(r.get(k, 0.0) for r in steady)
              for k in sorted({k for r in rows for k in r if k.startswith("time/")})
              if k not in ("time/iteration", "time/run", "time/batch_wait", "time/reference", "time/old_logprobs")}
    theirs = trl["median_step_seconds"]
    print("| trainer | s/iteration (median) | phases | reward, first -> last |")
    print("|---|---|---|---|")
    print(f"| TRL GRPOTrainer (vLLM colocated: {trl['vllm']}) | {theirs:.1f} | - | "
          f"{trl['reward'][0]:.3f} -> {trl['reward'][-1]:.3f} |")
    shown = ", ".join(f"{k} {v:.1f}" for k, v in phases.items() if v >= 0.05)
    print(f"| rlsys | {ours:.1f} | {shown} | {rows[0]['reward/mean']:.3f} -> {rows[-1]['reward/mean']:.3f} |")
    print(f"\nrlsys / TRL time per iteration: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main(*sys.argv[1:3])
