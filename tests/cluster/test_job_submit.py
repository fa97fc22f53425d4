"""`ray job submit` to a 3-node `rlsys local-cluster` with Ray's token authentication, as a
user submits to a cluster: the job's driver runs on the head, the rollout worker on node 1
and the learner on node 2 (pinned by the config), the run folder is where every node sees
it, and the rlsys gauges reach Ray's metrics export port. Every socket is on 127.0.0.1."""

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


def test_submitted_job_runs_across_the_nodes(tmp_path, monkeypatch):
    from rlsys.distributed.local_cluster import state_file

    venv_bin = Path(sys.executable).parent
    # As if the virtualenv were activated: the job's `rlsys` and `python` are this one's.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    started = subprocess.run([sys.executable, "-m", "rlsys", "local-cluster", "start", "--nodes", "3",
                              "--cpus-per-node", "2", "--auth", "token"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert started.returncode == 0, started.stderr[-3000:]
    address = started.stdout.strip().splitlines()[-1]
    state = json.loads(state_file(address).read_text())
    try:
        run_dir = tmp_path / "job-run"
        # cluster/runtime_env.yaml, plus the test session's model cache
        runtime_env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
        runtime_env["env_vars"]["RLSYS_CACHE"] = os.environ["RLSYS_CACHE"]
        submitted = subprocess.run(
            [str(venv_bin / "ray"), "job", "submit", "--address", state["dashboard"], "--no-wait",
             "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env),
             "--", "rlsys", "train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}", "tracking.console=false",
             "rollout.resources={node1: 1}", "learner.resources={node2: 1}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        job = next(w.strip("'") for w in submitted.stdout.split() if w.strip("'").startswith("raysubmit_"))

        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        import ray
        from ray.job_submission import JobStatus, JobSubmissionClient

        ray._raylet.Config.initialize("")  # Ray read its settings when first imported
        client = JobSubmissionClient(state["dashboard"])
        deadline, seen_metric = time.time() + 600, False
        while time.time() < deadline:
            status = client.get_job_status(job)
            if not seen_metric:
                try:
                    url = f"http://127.0.0.1:{state['metrics_port']}/metrics"
                    seen_metric = "ray_rlsys_reward_mean" in urllib.request.urlopen(url, timeout=5).read().decode()
                except OSError:
                    pass
            if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
                break
            time.sleep(2)
        logs = client.get_job_logs(job)
        assert status == JobStatus.SUCCEEDED, logs[-4000:]
        driver_node = client.get_job_info(job).driver_node_id
    finally:
        subprocess.run([sys.executable, "-m", "rlsys", "local-cluster", "stop", address], cwd=REPO, env=env,
                       capture_output=True, timeout=120)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 2 and "accuracy" in summary["eval_after"]
    heads, node1, node2 = state["node_ids"]
    assert driver_node == heads
    assert summary["placement"]["rollout"] == [node1] and summary["placement"]["learner"] == [node2]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert seen_metric, "the rlsys gauges never appeared on the Ray metrics export port"
