"""`ray job submit` to a 3-node `rlsys local-cluster` with Ray's token authentication, as a
user submits to a cluster: the job's driver runs on the head, the rollout worker on node 1
and the learner on node 2 (pinned by the config), the run folder is where every node sees
it, and the rlsys gauges reach Ray's metrics export port. `ray job stop` (SIGTERM, then
SIGKILL after the runtime env's RAY_JOB_STOP_WAIT_TIME_S) leaves a checkpoint of the
iteration in flight, and submitting the same job again finishes the run from it."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO

pytestmark = pytest.mark.slow

# Enough iterations (about a second each here) that `ray job stop`, sent once the first is
# logged, lands while the run is still going.
ITERATIONS = 20


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _submit(ray_bin, state, env, run_dir) -> str:
    runtime_env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    runtime_env["env_vars"]["RLSYS_CACHE"] = os.environ["RLSYS_CACHE"]  # the test session's models
    submitted = subprocess.run(
        [ray_bin, "job", "submit", "--address", state["dashboard"], "--no-wait", "--working-dir", ".",
         "--runtime-env-json", json.dumps(runtime_env), "--", "rlsys", "train", "configs/tiny/smoke.yaml",
         f"run.iterations={ITERATIONS}", f"run.dir={run_dir}", "tracking.console=false",
         "rollout.resources={node1: 1}", "learner.resources={node2: 1}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    return next(w.strip("'") for w in submitted.stdout.split() if w.strip("'").startswith("raysubmit_"))


def _wait(client, job, until, timeout_s=600, metrics_url=None):
    from ray.job_submission import JobStatus

    deadline, seen_metric = time.time() + timeout_s, False
    while time.time() < deadline:
        status = client.get_job_status(job)
        if metrics_url and not seen_metric:
            try:
                seen_metric = "ray_rlsys_reward_mean" in urllib.request.urlopen(metrics_url, timeout=5).read().decode()
            except OSError:
                pass
        if until() or status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return status, seen_metric
        time.sleep(1)
    raise AssertionError(f"job {job} still {status} after {timeout_s}s")


def test_submitted_job_runs_across_the_nodes_stops_resumably_and_resumes(tmp_path, monkeypatch):
    from rlsys.distributed.local_cluster import state_file

    venv_bin = Path(sys.executable).parent
    ray_bin = str(venv_bin / "ray")
    # As if the virtualenv were activated: the job's `rlsys` and `python` are this one's.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    started = subprocess.run([sys.executable, "-m", "rlsys", "local-cluster", "start", "--nodes", "3",
                              "--cpus-per-node", "2", "--auth", "token"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-3000:]
    address = started.stdout.strip().splitlines()[-1]
    state = json.loads(state_file(address).read_text())
    run_dir = tmp_path / "job-run"
    try:
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        import ray
        from ray.job_submission import JobStatus, JobSubmissionClient

        ray._raylet.Config.initialize("")  # Ray read its settings when first imported
        client = JobSubmissionClient(state["dashboard"])
        first = _submit(ray_bin, state, env, run_dir)
        status, _ = _wait(client, first, lambda: len(_rows(run_dir / "metrics.jsonl")) >= 1)
        assert status == JobStatus.RUNNING, client.get_job_logs(first)[-3000:]
        stopped = subprocess.run([ray_bin, "job", "stop", "--address", state["dashboard"], first], env=env,
                                 capture_output=True, text=True, timeout=400)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        assert client.get_job_status(first) == JobStatus.STOPPED
        first_logs = client.get_job_logs(first)
        kept = sorted(p.name for p in (run_dir / "checkpoints").glob("iter-*"))
        assert len(kept) == 1 and "stopped by SIGTERM after iteration" in first_logs, first_logs[-3000:]
        assert "run the same command again" in first_logs

        second = _submit(ray_bin, state, env, run_dir)
        status, seen_metric = _wait(client, second, lambda: False,
                                    metrics_url=f"http://127.0.0.1:{state['metrics_port']}/metrics")
        assert status == JobStatus.SUCCEEDED, client.get_job_logs(second)[-4000:]
        driver_node = client.get_job_info(second).driver_node_id
    finally:
        subprocess.run([sys.executable, "-m", "rlsys", "local-cluster", "stop", address], cwd=REPO, env=env,
                       capture_output=True, timeout=120)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == ITERATIONS and "accuracy" in summary["eval_after"]
    assert summary["resumed_from"].endswith(kept[0])
    heads, node1, node2 = state["node_ids"]
    assert driver_node == heads
    assert summary["placement"]["rollout"] == [node1] and summary["placement"]["learner"] == [node2]
    assert [r["iteration"] for r in _rows(run_dir / "metrics.jsonl")] == list(range(1, ITERATIONS + 1))
    assert seen_metric, "the rlsys gauges never appeared on the Ray metrics export port"
