"""The results of `rlsys eval`: the side-by-side table on the terminal and `eval.json`."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rlsys.eval.stats import Estimate


def short_label(label: str) -> str:
    """A column header: the last two parts of a path (runs/demo_grpo/model -> demo_grpo/model)."""
    parts = [p for p in label.replace("@", " @ ").split("/") if p]
    return "/".join(parts[-2:]) if len(parts) > 2 else label


def results_table(results: dict[str, dict[str, dict[str, Estimate]]], title: str) -> Table:
    """Rows task/metric, one column per model: value [95% interval] (n)."""
    table = Table(title=title)
    table.add_column("task")
    table.add_column("metric")
    models = list(results)
    headers = [short_label(m) for m in models]
    for label, header in zip(models, headers):
        table.add_column(header if headers.count(header) == 1 else label, justify="right")
    seen: list[tuple[str, str]] = []
    for per_task in results.values():
        for task, metrics in per_task.items():
            seen += [(task, m) for m in metrics if (task, m) not in seen]
    for task, metric in seen:
        cells = []
        for label in models:
            est = results[label].get(task, {}).get(metric)
            cells.append("-" if est is None else f"{est.text()} (n={est.n})")
        table.add_row(task, metric, *cells)
    return table


def print_results(results: dict, title: str, console: Console | None = None) -> None:
    import sys

    # Piped output (a log file, a CI job) is not cut to 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 60 + 36 * len(results))
    console.print(results_table(results, title))


def eval_json(results: dict[str, dict[str, dict[str, Estimate]]], extra: dict) -> dict:
    return {**extra, "models": {label: {task: {m: est.as_dict() for m, est in metrics.items()}
                                        for task, metrics in per_task.items()}
                                for label, per_task in results.items()}}


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False))
    tmp.rename(path)
