"""`rlsys plot RUN [RUN ...]`: training curves from each run's metrics.jsonl as one PNG, several
runs overlaid with a legend. Panels appear only for metrics some run logged: reward, held-out
(eval/*) metrics, KL, entropy, seconds per phase (stacked, first run), tokens per second, sync
seconds; series at zero throughout are left out. Training runs write `plots/curves.png` into their folder when they end."""

from __future__ import annotations

import json
from pathlib import Path

from rlsys.observability.jsonl_logs import read_log_rows

PHASES = ("time/generation", "time/teacher", "time/reward", "time/logprobs", "time/critic_values", "time/train",
          "time/sync")
PANELS = (  # (title, metric keys, y label)
    ("reward", ("reward/mean",), "mean reward"),
    ("KL to the reference", ("train/kl",), "KL"),
    ("entropy", ("train/entropy",), "nats/token"),
    ("generation throughput", ("rollout/tokens_per_s",), "tokens/s"),
    ("weight sync", ("sync/seconds",), "seconds"),
    ("preference accuracy", ("train/accuracy",), "share"),
    ("loss", ("train/loss",), "loss"),
)


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run} has no metrics.jsonl: give a run folder (runs/<name>)")
    rows = read_log_rows(path)
    # A resumed run may have re-logged iterations: the last line of an iteration wins.
    return list({r.get("iteration", i): r for i, r in enumerate(rows)}.values())


def held_out_rows(run: Path) -> list[dict]:
    """The held-out evaluations as metric rows: the one before training (iteration 0, from
    summary.json) and every eval/* of metrics.jsonl (or the summary's final one, for runs
    that did not log it per iteration)."""
    rows = [r for r in read_metrics(run) if any(k.startswith("eval/") for k in r)]
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    before = [{"iteration": 0, **{f"eval/{k}": v for k, v in summary["eval_before"].items()}}] \
        if summary.get("eval_before") else []
    if not rows and summary.get("eval_after"):
        rows = [{"iteration": summary.get("iterations"), **{f"eval/{k}": v for k, v in summary["eval_after"].items()}}]
    return before + rows


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    pts = [(r.get("iteration", i), r[key]) for i, r in enumerate(rows) if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def varies(runs: dict[str, list[dict]], key: str) -> bool:
    """Some run logged `key` with a value other than zero: a line at zero throughout (a strict
    format nobody met, a phase the run did not have) only crowds its panel."""
    return any(any(v != 0 for v in series(rows, key)[1]) for rows in runs.values())


def _eval_keys(runs: dict[str, list[dict]]) -> list[str]:
    keys = []
    for rows in runs.values():
        for r in rows:
            keys += [k for k in r if k.startswith("eval/") and k not in keys and not k.endswith("/n")]
    # accuracy-like shares on one axis; counts and per-token log-probs would squash them
    return [k for k in keys if not k.endswith(("tokens", "_per_token", "reverse_kl", "perplexity"))
            and varies(runs, k)][:6]


def chosen_panels(runs: dict[str, list[dict]], held: dict[str, list[dict]]) -> tuple[list[tuple], list[str]]:
    """The panels (title, metric keys, y label) and the phases of the first run worth drawing."""
    panels = [(t, [k for k in keys if varies(runs, k)], y) for t, keys, y in PANELS]
    panels = [p for p in panels if p[1]]
    evals = _eval_keys(held)
    if evals:
        panels.insert(1, ("held-out", evals, "value"))
    first = dict([next(iter(runs.items()))])
    return panels, [p for p in PHASES if varies(first, p)]


def plot_runs(run_dirs: list[str | Path], out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {Path(r).name or str(r): read_metrics(Path(r)) for r in run_dirs}
    held = {name: held_out_rows(Path(r)) for name, r in zip(runs, run_dirs)}
    panels, phases = chosen_panels(runs, held)
    sources = {title: held if title == "held-out" else runs for title, _, _ in panels}
    first_rows = next(iter(runs.values()))
    count = len(panels) + (1 if phases else 0)
    if count == 0:
        raise ValueError(f"no plottable metrics in {', '.join(map(str, run_dirs))}")
    cols = 2 if count > 1 else 1
    nrows = (count + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(6.4 * cols, 3.6 * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax, (title, keys, ylabel) in zip(flat, panels):
        for name, rows in sources[title].items():
            for key in keys:
                x, y = series(rows, key)
                if x:
                    label = name if len(keys) == 1 else f"{name}: {key.removeprefix('eval/')}"
                    ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if phases:
        ax = flat[len(panels)]
        x = series(first_rows, phases[0])[0]
        stacks = [[r.get(p) or 0.0 for r in first_rows if r.get("iteration") in x] for p in phases]
        ax.stackplot(x, stacks, labels=[p.removeprefix("time/") for p in phases])
        ax.set_title(f"seconds per phase ({next(iter(runs))})")
        ax.set_xlabel("iteration")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=7, loc="upper left")
    for ax in flat[count:]:
        ax.axis("off")
    fig.tight_layout()
    target = Path(out) if out else Path(run_dirs[0]) / "plots" / "curves.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
