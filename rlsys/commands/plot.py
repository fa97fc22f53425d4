"""`rlsys plot RUN [RUN ...]`: PNG training curves of one or more runs, overlaid."""

from __future__ import annotations

import json

NAME, HELP = "plot", "PNG training curves of one or more runs (overlaid)"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl)")
    p.add_argument("--out", default=None, help="PNG path (default: FIRST_RUN/plots/curves.png)")


def run(args) -> int:
    from rlsys.observability.plots import plot_runs

    print(json.dumps({"png": str(plot_runs(args.runs, args.out))}))
    return 0
