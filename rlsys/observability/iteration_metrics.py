"""One iteration's metrics row and sample log, assembled from what the phases returned,
and the timer that measures each phase."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import torch

from rlsys.records import PromptItem, Sample, Trajectory


class PhaseTimer:
    """`with timer("generation"): ...` records seconds as `time/generation`, and tells
    `announce` (the live display) which phase is in flight."""

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.announce = announce

    def mark(self, phase: str) -> None:
        """A phase timed elsewhere (by the actors) begins."""
        if self.announce is not None:
            self.announce(phase)

    @contextmanager
    def __call__(self, phase: str):
        self.mark(phase)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[f"time/{phase}"] = time.perf_counter() - started


def iteration_metrics(samples: list[Sample], rewards: list[float], parts: dict[str, list[float]],
                      group_size: int, seconds: dict[str, float], *sections: dict[str, float]) -> dict[str, float]:
    """Rewards (mean, spread, each part), rollout accuracy and mixed groups (the share of
    groups with any reward signal), token counts and throughput, phase times, and the
    given sections (training, sync, distillation statistics)."""
    grouped = torch.tensor(rewards, dtype=torch.float64).view(-1, group_size)
    lengths = [len(s.completion_ids) for s in samples]
    metrics = {
        "reward/mean": float(grouped.mean()),
        "reward/std": float(grouped.std()) if grouped.numel() > 1 else 0.0,
        **{f"reward/{name}": sum(v) / len(v) for name, v in parts.items()},
        "rollout/accuracy": sum(parts.get("correctness", [0.0])) / len(samples),
        "rollout/mixed_groups": float((grouped.amax(dim=1) > grouped.amin(dim=1)).double().mean()),
        "rollout/tokens": float(sum(lengths)),
        "rollout/samples": float(len(samples)),
        "rollout/prompts": float(len({s.prompt_index for s in samples})),
        "rollout/mean_completion_tokens": sum(lengths) / len(lengths),
        "rollout/tokens_per_s": sum(lengths) / max(seconds.get("time/generation", 0.0), 1e-9),
    }
    for section in sections:
        metrics.update(section)
    metrics.update(seconds)
    return metrics


def shown_samples(items: list[PromptItem], samples: list[Sample], rewards: list[float], n: int,
                  data_index: list[int], trajectories: list[Trajectory] | None = None) -> list[dict]:
    """The first `n` samples as the sample log shows them; `data_index` (the prompts' indices in
    the training set) lets two runs be compared prompt by prompt. Multi-turn samples also show
    their episode: each turn, its reward and the environment's answer (`Trajectory.log_row`)."""
    rows = [{"data_index": data_index[s.prompt_index], "prompt_index": s.prompt_index,
             "answer": items[s.prompt_index].answer, "completion": s.text, "reward": r,
             "temperature": s.temperature, "finished": s.finish_reason == "stop"}
            for s, r in zip(samples[:n], rewards)]
    for row, t in zip(rows, trajectories or []):
        row.update(t.log_row())
    return rows
