"""The SLURM script's head start line (`ray_head` in cluster/slurm_ray.sbatch), run here as
the script runs it on node 0, with 127.0.0.1 for the node's address: Ray comes up with
token authentication and the learner's resource, every socket it listens on is on
loopback, and ending the line (as SLURM ends the step) stops every process it started. Only the head runs here: a second
`ray start` on one machine needs a setting that moves Ray off loopback."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO
from .test_local_cluster import _listening, _loopback

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_head_line_starts_ray_on_loopback_with_the_learner_resource_and_stops_with_its_step(tmp_path):
    import psutil

    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RLSYS_SBATCH_FUNCTIONS_ONLY": "1",
           "RAY_AUTH_MODE": "token",  # the script turns it on; the `ray status` client needs it too
           "RAY_METRICS_PORT": str(_free_port()), "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    port, dashboard = _free_port(), _free_port()
    subprocess.run([str(venv_bin / "ray"), "get-auth-token", "--generate"], env=env, capture_output=True, timeout=60)
    step = subprocess.Popen(["bash", "-c", f"source cluster/slurm_ray.sbatch; ray_head 127.0.0.1 {port} {dashboard}"],
                            cwd=REPO, env=env, stdout=(tmp_path / "head.log").open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    family = []
    try:
        deadline, status = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            assert step.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            status = subprocess.run([str(venv_bin / "ray"), "status", f"--address=127.0.0.1:{port}"], env=env,
                                    capture_output=True, text=True, timeout=60)
            if status.returncode == 0 and "learner_node" in status.stdout:
                break
            time.sleep(2)
        assert status is not None and status.returncode == 0, status.stderr[-2000:]
        assert "0.0/4.0 learner_node" in status.stdout, status.stdout
        family = [psutil.Process(step.pid), *psutil.Process(step.pid).children(recursive=True)]
        listening = _listening(family)
        assert listening and all(_loopback(ip) for _, ip in listening), listening
    finally:
        os.killpg(step.pid, signal.SIGTERM)  # what SLURM does to the step's processes
        step.wait(timeout=120)
    _, alive = psutil.wait_procs(family, timeout=90)  # the raylet drains for up to 30 s first
    running = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]  # a zombie has ended: it awaits its reaper
    for p in running:
        p.kill()
    assert running == [], [(p.pid, p.name()) for p in running]  # the step's SIGTERM ended them all
