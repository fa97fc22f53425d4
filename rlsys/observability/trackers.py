"""Metric sinks. Each takes `log(step, metrics)` and `close()`."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in metrics.items()}


class JsonlTracker:
    """One JSON object per iteration, flushed at once so a crash keeps every finished line."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("a", encoding="utf-8")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.fh.write(json.dumps({"iteration": step, **_finite(metrics)}) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class SampleLog:
    """A few completions per iteration (whole groups), to read what the policy writes."""

    def __init__(self, path: Path, groups_per_iteration: int = 2) -> None:
        self.fh = path.open("a", encoding="utf-8")
        self.groups = groups_per_iteration

    def log(self, step: int, rows: list[dict]) -> None:
        for row in rows:
            self.fh.write(json.dumps({"iteration": step, **row}, ensure_ascii=False) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class RayMetricsTracker:
    """Sets `ray.util.metrics` gauges; they reach the dashboard as `ray_rlsys_*`."""

    def __init__(self, run_name: str) -> None:
        self.run_name = run_name
        self.gauges = {}

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from ray.util.metrics import Gauge

        for key, value in metrics.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            name = "rlsys_" + "".join(c if c.isalnum() else "_" for c in key)
            if name not in self.gauges:
                self.gauges[name] = Gauge(name, description=f"rlsys {key}", tag_keys=("run",))
            self.gauges[name].set(float(value), tags={"run": self.run_name})

    def close(self) -> None:
        pass


class TensorBoardTracker:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, project: str, run_dir: Path, config: dict, run_id: str | None = None) -> None:
        import wandb

        # A resumed run continues its W&B run (same id), so the curves go on where they stopped.
        resume = {"id": run_id, "resume": "allow"} if run_id else {}
        self.run = wandb.init(project=project, dir=str(run_dir), config=config, **resume)

    def ids(self) -> dict:
        return {"wandb_run_id": self.run.id}

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class Trackers:
    def __init__(self, sinks: list) -> None:
        self.sinks = sinks

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.log(step, metrics)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def ids(self) -> dict:
        """What a resumed run needs to continue the same tracker runs (W&B run id)."""
        out = {}
        for sink in self.sinks:
            out.update(sink.ids() if hasattr(sink, "ids") else {})
        return out


def open_trackers(cfg, run_dir: Path, resumed: dict | None = None) -> Trackers:
    """The sinks `cfg.tracking` asks for: JSONL always, Ray gauges, TensorBoard, W&B (`resumed`:
    the ids a checkpoint saved, to continue the same runs)."""
    sinks = [JsonlTracker(run_dir / "metrics.jsonl")]
    if cfg.tracking.ray_metrics:
        sinks.append(RayMetricsTracker(run_dir.name))
    if cfg.tracking.tensorboard:
        sinks.append(TensorBoardTracker(run_dir / "tensorboard"))
    if cfg.tracking.wandb_project:
        sinks.append(WandbTracker(cfg.tracking.wandb_project, run_dir, cfg.model_dump(mode="json"),
                                  (resumed or {}).get("wandb_run_id")))
    return Trackers(sinks)
