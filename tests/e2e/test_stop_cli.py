"""Stopped on purpose (what `ray job stop`, SLURM preemption and Kubernetes eviction do): SIGTERM
to the driver in the middle of a run that checkpoints only at its end. The run must finish
the iteration in flight, checkpoint exactly that iteration, stop every process it started and
exit with 75 ("stopped, resumable") within the grace, with no crash dump; the same command
then resumes from that checkpoint and its first iteration is the one after it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import REPO
from .process_watch import ProcessWatch

pytestmark = pytest.mark.slow

ITERATIONS = 8
ARGS = ["configs/tiny/smoke.yaml", f"run.iterations={ITERATIONS}", "run.checkpoint_every=0", "run.stop_grace_s=120",
        "tracking.console=false"]


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_sigterm_checkpoints_the_iteration_in_flight_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlsys", "train", *ARGS, f"run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    watch, metrics = ProcessWatch(proc), run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not (metrics.exists() and len(_rows(metrics)) >= 3):  # a few iterations in: mid-run
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        watch.poll()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    signalled = time.monotonic()
    code = watch.run(timeout_s=180)
    seconds = time.monotonic() - signalled
    output = proc.stdout.read()
    assert code == 75, output[-3000:]
    assert seconds < 120, seconds
    assert "SIGTERM received" in output and "*** SIGTERM" not in output and "Traceback" not in output, output[-3000:]
    assert not watch.survivors(), watch.survivors()

    rows = _rows(metrics)
    last = rows[-1]["iteration"]
    assert 3 <= last < ITERATIONS and [r["iteration"] for r in rows] == list(range(1, last + 1))
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == [f"iter-{last:06d}"], checkpoints  # the iteration in flight, nothing else
    state = json.loads((run_dir / "checkpoints" / checkpoints[0] / "state.json").read_text())
    assert state["iteration"] == last and state["version"] == last
    assert f"stopped by SIGTERM after iteration {last}" in output
    assert "run the same command again" in output and not (run_dir / "summary.json").exists()

    # The same command again: it resumes from that checkpoint and goes on to the end.
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {run_dir / 'checkpoints' / checkpoints[0]}" in again.stdout + again.stderr
    rows = _rows(metrics)
    assert [r["iteration"] for r in rows] == list(range(1, ITERATIONS + 1))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"].endswith(checkpoints[0]) and summary["final_weight_version"] == ITERATIONS
