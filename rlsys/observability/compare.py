"""`rlsys compare RUN [RUN ...]`: the held-out metrics of several runs side by side, the value
at the end of each run and the best over its evaluations (e.g. GRPO vs PPO, teacher-LL vs
MiniLLM rewards)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from rlsys.observability.plots import held_out_rows

LOWER_IS_BETTER = ("perplexity", "bits_per_byte", "reverse_kl", "ascii_flattened", "mean_completion_tokens")


def held_out(run: Path) -> dict[str, dict[str, float]]:
    """metric -> {before, final, best, best_at} from metrics.jsonl (eval/*) and summary.json."""
    out: dict[str, dict[str, float]] = {}
    for r in held_out_rows(run):
        if r.get("iteration") == 0:
            for key, value in r.items():
                if key.startswith("eval/"):
                    out.setdefault(key.removeprefix("eval/"), {})["before"] = value
            continue
        for key, value in r.items():
            if key.startswith("eval/") and isinstance(value, (int, float)):
                name = key.removeprefix("eval/")
                entry = out.setdefault(name, {})
                entry["final"] = value
                better = min if name.endswith(LOWER_IS_BETTER) else max
                if "best" not in entry or better(value, entry["best"]) != entry["best"]:
                    entry["best"], entry["best_at"] = value, r.get("iteration")
    return out


def compare_table(run_dirs: list[str]) -> Table:
    runs = {str(r): held_out(Path(r)) for r in run_dirs}
    table = Table(title="held-out metrics: before / final / best (iteration)")
    table.add_column("metric")
    for name in runs:
        table.add_column(Path(name).name, justify="right")
    metrics: list[str] = []
    for per_run in runs.values():
        metrics += [m for m in per_run if m not in metrics and m != "n"]
    for metric in metrics:
        cells = []
        for per_run in runs.values():
            e = per_run.get(metric)
            if not e:
                cells.append("-")
                continue
            parts = [f"{e['before']:.3f}" if "before" in e else "-", f"{e['final']:.3f}" if "final" in e else "-"]
            best = f"{e['best']:.3f} ({e['best_at']})" if "best" in e else "-"
            cells.append(" / ".join(parts + [best]))
        table.add_row(metric, *cells)
    return table
