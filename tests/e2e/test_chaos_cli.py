"""Rollout workers killed at random moments of a real run (SIGKILL of their processes, as
an OOM killer or a lost node would): the run finishes every iteration, each iteration
samples all its prompts exactly once, the weight versions run on without a gap, and the
summary counts one restart per kill."""

import json
import os
import random
import subprocess
import sys
import time

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

ITERATIONS = 30


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _rollout_processes(driver):
    import psutil

    out = []
    for p in driver.children(recursive=True):
        try:
            if p.cmdline() and p.cmdline()[0].startswith("ray::RolloutWorker"):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def test_rollout_workers_killed_at_random_moments(tmp_path):
    import psutil

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlsys", "train", "configs/smoke.yaml", f"run.dir={run_dir}",
           f"run.iterations={ITERATIONS}", "rollout.num_workers=2", "rollout.max_restarts=5", "ray.num_cpus=4",
           "tracking.console=false"]
    log = (tmp_path / "train.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    driver, rng, kills = psutil.Process(proc.pid), random.Random(1), 0
    # Kills keyed to progress, not wall time: iterations may take half a second or half a
    # minute; each kill lands a random fraction of a second after its iteration is logged.
    targets = sorted(rng.sample(range(2, ITERATIONS - 8), 3))
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if kills == len(targets) or len(_rows(run_dir / "metrics.jsonl")) < targets[kills]:
                continue
            time.sleep(rng.uniform(0.0, 2.0))
            victims = _rollout_processes(driver)
            if victims and proc.poll() is None:
                rng.choice(victims).kill()
                kills += 1
        proc.wait(timeout=600)
    finally:
        proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert kills >= 2
    rows = _rows(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, ITERATIONS + 1))
    assert all(r["rollout/prompts"] == 4 and r["rollout/samples"] == 16 for r in rows)
    assert [r["sync/version"] for r in rows] == [float(i) for i in range(1, ITERATIONS + 1)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["restarts_by_role"]["rollout"] == kills == rows[-1]["rollout/restarts"]
