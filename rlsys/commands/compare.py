"""`rlsys compare RUN [RUN ...]`: held-out metrics of several runs side by side."""

from __future__ import annotations

NAME, HELP = "compare", "held-out metrics of several runs side by side"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", help="run folders")


def run(args) -> int:
    from rich.console import Console

    from rlsys.observability.compare import compare_table

    Console().print(compare_table(args.runs))
    return 0
