"""One markdown table from several `rlsys seeds` folders (their seeds.json): held-out greedy
accuracy, reverse KL and teacher log-prob per token, before -> after, mean ± sd over seeds,
and the teacher's own accuracy.  Usage: python benchmarks/seed_table.py DIR/*/seeds.json"""

import json
import sys
from pathlib import Path


def cell(entry: dict | None, digits: int = 3, scale: float = 1.0) -> str:
    if not entry:
        return "-"
    mean, sd = entry["mean"] * scale, entry["sd"] * scale
    return f"{mean:.{digits}f}" if entry["runs"] == 1 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def row(path: Path) -> str:
    data = json.loads(path.read_text())
    s = data["summary"]

    def pair(key: str, digits: int, scale: float = 1.0) -> str:
        e = s.get(key, {})
        return f"{cell(e.get('before'), digits, scale)} -> {cell(e.get('after'), digits, scale)}"

    kl = s.get("reverse_kl", {})
    drop = ""
    if kl.get("before") and kl.get("after"):
        drop = f" ({100 * (kl['after']['mean'] / kl['before']['mean'] - 1):+.0f}%)"
    teacher = cell(s.get("teacher_accuracy", {}).get("after"), 1, 100)
    accuracy = "accuracy" if "accuracy" in s else "task/accuracy"  # DPO's task eval is task/*
    return (f"| {path.parent.name} | {len(data['seeds'])} | {pair(accuracy, 1, 100)} | {teacher} | "
            f"{pair('reverse_kl', 2)}{drop} | {pair('teacher_logprob_per_token', 2)} | "
            f"{cell(s.get('wall_seconds', {}).get('after'), 0)} |")


def main(paths: list[str]) -> None:
    print("| run | seeds | held-out greedy accuracy % | teacher's accuracy % | reverse KL per token | "
          "teacher log-prob per token | wall s |")
    print("|---|---|---|---|---|---|---|")
    for p in paths:
        print(row(Path(p)))


if __name__ == "__main__":
    main(sys.argv[1:])
