"""The training display: a live bar with the phase in flight on a terminal, and one full line
per iteration (reward, held-out results, KL, loss, seconds per phase, ETA). On a terminal the
line is fitted to its width by leaving out the least important fields; elsewhere (a pipe, the
log of `ray job submit`) every field is written, never wrapped or cut."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# (metric, label, format, priority): on a narrow terminal the lowest priorities go first.
HEADLINE = (
    ("reward/mean", "reward", "{:.3f}", 9),
    ("rollout/accuracy", "acc", "{:.2f}", 4),
    ("eval/accuracy", "held-out acc", "{:.3f}", 9),
    ("train/kl", "kl", "{:.4f}", 7),
    ("train/loss", "loss", "{:.4f}", 7),
    ("train/accuracy", "pref acc", "{:.2f}", 7),
    ("ppo/explained_variance", "critic ev", "{:.2f}", 4),
    ("rollout/turns_mean", "turns", "{:.1f}", 6),
    ("rollout/tool_calls", "tools", "{:.0f}", 5),
    ("rollout/tool_errors", "tool errors", "{:.0f}", 4),
    ("rollout/truncated", "truncated", "{:.2f}", 3),
)
# Phases, in the order an iteration runs them: (metric, label).
PHASES = (
    ("time/generation", "gen"), ("time/teacher", "teacher"), ("time/reward", "reward"),
    ("time/logprobs", "ref"), ("time/reference", "ref"), ("time/critic_values", "values"),
    ("time/critic_train", "critic"), ("time/train", "train"), ("time/sync", "sync"),
)


def _number(metrics: dict, key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def iteration_fields(metrics: dict[str, float], eta_s: float | None) -> list[tuple[str, int]]:
    """The (text, priority) fields of one iteration's line, in display order."""
    fields = [(f"{label} {fmt.format(v)}", priority) for key, label, fmt, priority in HEADLINE
              if (v := _number(metrics, key)) is not None]
    seen = set()
    phases = []
    for key, label in PHASES:
        if (v := _number(metrics, key)) is not None and label not in seen:
            seen.add(label)
            phases.append(f"{label} {v:.1f}s")
    if phases:
        fields.append(("| " + " ".join(phases), 3))
    if (v := _number(metrics, "time/iteration")) is not None:
        fields.append((f"| {v:.1f} s/it", 5))
    if eta_s is not None:
        fields.append((f"ETA {clock(eta_s)}", 6))
    return fields


def fit(head: str, fields: list[tuple[str, int]], width: int | None) -> str:
    """`head` and the fields; without a width all of them, else the most important that fit."""
    kept = list(fields)
    line = "  ".join([head, *(text for text, _ in kept)])
    while width is not None and len(line) > width and kept:
        kept.remove(min(kept, key=lambda f: f[1]))
        line = "  ".join([head, *(text for text, _ in kept)])
    return line


def clock(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def format_results(results: dict) -> str:
    """Held-out results as `name value` pairs, counts without decimals."""
    parts = []
    for key, value in results.items():
        if isinstance(value, float) and not value.is_integer():
            parts.append(f"{key} {value:.4g}")
        else:
            parts.append(f"{key} {value:g}" if isinstance(value, (int, float)) else f"{key} {value}")
    return "  ".join(parts)


class ProgressDisplay:
    def __init__(self, total: int, enabled: bool = True, unit: str = "iteration", start: int = 0) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.unit, self.enabled, self.total, self.done = unit, enabled, total, start
        self.live = enabled and self.console.is_terminal
        self.seconds: list[float] = []
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, disable=not self.live,
            transient=True,
        )
        self.task = self.progress.add_task(unit, total=total, completed=start)

    def __enter__(self) -> "ProgressDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def phase(self, name: str) -> None:
        """The phase in flight, on the live bar (a pipe gets only the finished lines)."""
        self.progress.update(self.task, description=f"{self.unit} {self.done + 1}: {name}")

    def advance(self, metrics: dict[str, float]) -> None:
        self.done += 1
        if (v := _number(metrics, "time/iteration")) is not None:
            self.seconds.append(v)
        eta = sum(self.seconds) / len(self.seconds) * (self.total - self.done) if self.seconds else None
        head = f"{self.unit} {self.done}/{self.total}"
        self.progress.update(self.task, advance=1, description=self.unit)
        self.write(fit(head, iteration_fields(metrics, eta), self.console.width if self.live else None))

    def note(self, text: str) -> None:
        self.write(text)

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.live:
            self.progress.console.print(line, markup=False, overflow="ellipsis", no_wrap=True, crop=True)
        else:
            print(line, file=sys.stderr, flush=True)
