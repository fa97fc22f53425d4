"""The smoke run submitted with the Ray Jobs SDK to a local head started by `ray start`
on 127.0.0.1, with token authentication, as a user submits to a cluster."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_head(tmp_path):
    venv_bin = Path(sys.executable).parent
    ray_bin = str(venv_bin / "ray")
    # As if the virtualenv were activated: the job's `python` is the one `ray start` sees.
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash, metrics = _free_port(), _free_port(), _free_port()
    subprocess.run([ray_bin, "get-auth-token", "--generate"], env=env, capture_output=True, timeout=60)
    started = subprocess.run(
        [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", f"--metrics-export-port={metrics}", "--num-cpus=4", "--disable-usage-stats"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"http://127.0.0.1:{dash}", metrics, env
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_smoke_job_succeeds_and_exports_metrics(local_head, tmp_path, monkeypatch):
    address, metrics_port, env = local_head
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    ray._raylet.Config.initialize("")  # Ray read its settings when first imported (maybe at collection)

    runtime_env = yaml.safe_load((REPO / "cluster" / "runtime_env.yaml").read_text())
    runtime_env["working_dir"] = str(REPO)
    runtime_env["env_vars"]["RLSYS_CACHE"] = os.environ["RLSYS_CACHE"]
    run_dir = tmp_path / "job-run"
    client = JobSubmissionClient(address)
    job = client.submit_job(
        entrypoint=f"python -m rlsys train configs/tiny/smoke.yaml run.dir={run_dir} tracking.console=false",
        runtime_env=runtime_env,
    )
    deadline = time.time() + 600
    seen_metric = False
    while time.time() < deadline:
        status = client.get_job_status(job)
        if not seen_metric:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
                seen_metric = "ray_rlsys_reward_mean" in body
            except OSError:
                pass
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            break
        time.sleep(2)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 2 and "accuracy" in summary["eval_after"]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert seen_metric, "the rlsys gauges never appeared on the Ray metrics export port"
