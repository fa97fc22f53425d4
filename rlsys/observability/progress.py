"""A live progress line in the terminal: iteration bar plus the headline metrics."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

HEADLINE = (
    ("reward/mean", "reward", "{:.3f}"),
    ("rollout/accuracy", "acc", "{:.2f}"),
    ("train/kl", "kl", "{:.4f}"),
    ("train/loss", "loss", "{:.4f}"),
    ("train/accuracy", "pref acc", "{:.2f}"),
    ("heldout/accuracy", "held-out acc", "{:.2f}"),
    ("time/iteration", "s/it", "{:.1f}"),
)


def headline(metrics: dict[str, float]) -> str:
    parts = []
    for key, label, fmt in HEADLINE:
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{label} {fmt.format(metrics[key])}")
    return "  ".join(parts)


class ProgressDisplay:
    def __init__(self, total: int, enabled: bool = True, unit: str = "iteration", start: int = 0) -> None:
        self.console = Console(stderr=True)
        self.unit = unit
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> "ProgressDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def phase(self, name: str) -> None:
        self.progress.update(self.task, description=name)

    def advance(self, metrics: dict[str, float]) -> None:
        info = headline(metrics)
        self.progress.update(self.task, advance=1, info=info, description="train")
        # Also a plain line, so logs of `ray job submit` (no live terminal) show progress.
        self.console.log(f"{self.unit} {int(self.progress.tasks[0].completed)}: {info}")

    def note(self, text: str) -> None:
        self.console.log(text)
