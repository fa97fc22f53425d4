"""Rollout workers added and removed inside one running job with `rlsys scale`: 1 -> 2 -> 1
workers, the weight-sync group following (2 -> 3 -> 2 members), every iteration sampling
its prompts exactly once, and the prompt order that of the run's sampler (each epoch of the
training set visited once)."""

import json
import os
import subprocess
import sys
import time

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _rows(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait(predicate, proc, seconds=600):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, "the run ended first"
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _scale(run_dir, n):
    out = subprocess.run([sys.executable, "-m", "rlsys", "scale", str(run_dir), "--rollout", str(n)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{n} rollout worker(s) requested" in out.stdout


def test_scale_rollout_workers_up_and_down_inside_one_run(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlsys", "train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}", "run.iterations=36",
           "tracking.console=false", "ray.num_cpus=4"]
    log = (tmp_path / "train.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        metrics = run_dir / "metrics.jsonl"
        _wait(lambda: len(_rows(metrics)) >= 1, proc)
        _scale(run_dir, 2)
        _wait(lambda: sum(r.get("rollout/workers") == 2.0 for r in _rows(metrics)) >= 3, proc)
        _scale(run_dir, 1)
        proc.wait(timeout=900)
    finally:
        proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "train.log").read_text()[-3000:]
    rows = _rows(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, 37))
    workers = [int(r["rollout/workers"]) for r in rows]
    world = [int(r["sync/world_size"]) for r in rows]
    # 1, then 2, then 1 again, each a contiguous stretch; the sync group is the learner + workers.
    changes = [w for i, w in enumerate(workers) if i == 0 or w != workers[i - 1]]
    assert changes == [1, 2, 1]
    assert world == [w + 1 for w in workers]
    assert all(r["rollout/prompts"] == 4 and r["rollout/samples"] == 16 for r in rows)
    assert [r["sync/version"] for r in rows] == [float(i) for i in range(1, 37)]
    order = [i for r in _rows(run_dir / "data_order.jsonl") for i in r["data_index"]]
    assert len(order) == 144
    for epoch in range(0, 128, 64):  # 64 training prompts: each epoch visits every one once
        assert sorted(order[epoch: epoch + 64]) == list(range(64))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(e["from"], e["to"]) for e in summary["restart_events"] if e["event"] == "scale"] == [(1, 2), (2, 1)]
    assert summary["restarts"] == 0
