"""Mean and spread of a config's held-out results over several seeds (`rlsys seeds`): a number
that holds across seeds, not one run's."""

from __future__ import annotations

import statistics

SKIPPED = ("n",)


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "runs": len(values)}


def seed_summary(summaries: dict[int, dict]) -> dict[str, dict]:
    """metric -> {before, after, change: spread} over the seeds' summary.json contents; a
    metric enters only where every seed has it. Wall time and median iteration time too."""
    seeds = sorted(summaries)
    out: dict[str, dict] = {}
    keys = [k for k in summaries[seeds[0]].get("eval_after", {}) if k not in SKIPPED]
    for key in keys:
        if not all(isinstance(summaries[s].get("eval_after", {}).get(key), (int, float)) for s in seeds):
            continue
        after = [float(summaries[s]["eval_after"][key]) for s in seeds]
        entry = {"after": spread(after)}
        before = [summaries[s].get("eval_before", {}).get(key) for s in seeds]
        if all(isinstance(b, (int, float)) for b in before):
            entry["before"] = spread([float(b) for b in before])
            entry["change"] = spread([a - float(b) for a, b in zip(after, before)])
        out[key] = entry
    walls = [summaries[s].get("wall_seconds") for s in seeds]
    if all(isinstance(w, (int, float)) for w in walls):
        out["wall_seconds"] = {"after": spread([float(w) for w in walls])}
    return out


def _cell(e: dict | None, digits: int) -> str:
    if not e:
        return "-"
    if e["runs"] == 1:
        return f"{e['mean']:.{digits}f} (one run)"
    return f"{e['mean']:.{digits}f} ± {e['sd']:.{digits}f} [{e['min']:.{digits}f}, {e['max']:.{digits}f}]"


def markdown_table(summary: dict[str, dict], seeds: list[int], title: str) -> str:
    """`metric | before | after | change` with mean ± sd [min, max] over the seeds."""
    lines = [f"{title}: mean ± sample sd [min, max] over seeds {', '.join(map(str, seeds))}", "",
             "| metric | before | after | change |", "|---|---|---|---|"]
    for key, e in summary.items():
        digits = 1 if key in ("wall_seconds", "mean_completion_tokens") else 3
        lines.append(f"| {key} | {_cell(e.get('before'), digits)} | {_cell(e.get('after'), digits)} | "
                     f"{_cell(e.get('change'), digits)} |")
    return "\n".join(lines) + "\n"
