"""Several Ray nodes on this machine (`rlsys local-cluster`: Ray's own GCS and raylets, not a
stand-in), on 127.0.0.1 only. A run pins its rollout worker to node1 and its learner to
node2: the weights cross raylets every iteration, the placement is reported per actor, every
socket the cluster listens on is on loopback, and `stop` ends exactly its processes. A job
submitted with a working_dir keeps its driver's folder while tasks start on the other nodes
(the nodes share this machine's session folder; each must unpack into its own)."""

import ipaddress
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _rlsys(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "rlsys", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _family(pids):
    import psutil

    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return out


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback


def _listening(procs):
    import psutil

    found = set()
    for p in procs:
        try:
            found |= {(p.name(), c.laddr.ip) for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    return found


# The driver notes its folder and file, runs a task on each worker node (each node then sets
# up the job's working_dir), and says whether its own folder and file are still the same.
_PROBE_JOB = textwrap.dedent("""
    import os, ray
    ray.init()
    here = os.getcwd()
    def inode():
        path = os.path.join(here, "probe.py")
        return os.stat(path).st_ino if os.path.exists(path) else None
    before = inode()
    @ray.remote(num_cpus=0)
    def cwd():
        return os.getcwd()
    there = ray.get([cwd.options(resources={f"node{k}": 0.01}).remote() for k in (1, 2)])
    print("PROBE", "kept" if inode() == before else "replaced", len({here, *there}))
""")


def _probe_job(dashboard: str, folder) -> str:
    (folder / "probe.py").write_text(_PROBE_JOB)
    ray_bin = str(Path(sys.executable).parent / "ray")
    done = subprocess.run([ray_bin, "job", "submit", "--address", dashboard, "--working-dir", str(folder), "--",
                           sys.executable, "probe.py"], capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


def test_three_nodes_on_loopback_run_a_job_across_them_and_stop(tmp_path):
    from rlsys.distributed.local_cluster import state_file

    started = _rlsys("local-cluster", "start", "--nodes", "3", "--cpus-per-node", "1", timeout=300)
    assert started.returncode == 0, started.stderr[-3000:]
    address = started.stdout.strip().splitlines()[-1]
    assert address.startswith("127.0.0.1:")
    state = json.loads(state_file(address).read_text())
    pids = state["pids"]
    try:
        listening = _listening(_family(pids))
        assert listening and all(_loopback(ip) for _, ip in listening), listening

        run_dir = tmp_path / "run"
        done = _rlsys("train", "configs/tiny/smoke.yaml", "run.iterations=2", "tracking.console=false",
                      f"run.dir={run_dir}", f"ray.address={address}", "rollout.resources={node1: 1}",
                      "learner.resources={node2: 1}")
        assert done.returncode == 0, done.stderr[-3000:]
        placement = json.loads((run_dir / "summary.json").read_text())["placement"]
        assert set(placement) == {"rollout", "reward", "learner"}
        assert all(len(ids) == 1 and len(ids[0]) == 56 for ids in placement.values()), placement
        assert placement["rollout"] != placement["learner"]  # two raylets: the sync crossed nodes
        rollout, reward, learner = (placement[r][0][:8] for r in ("rollout", "reward", "learner"))
        assert f"rlsys: placement: rollout on node {rollout}; reward on node {reward}; learner on node {learner}" \
            in done.stdout + done.stderr
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        assert [r["sync/version"] for r in rows] == [1.0, 2.0] and all(r["sync/probes"] == 3.0 for r in rows)
        after = _listening(_family(pids))  # the job's workers included
        assert all(_loopback(ip) for _, ip in after), after

        (tmp_path / "probe").mkdir()
        probed = _probe_job(state["dashboard"], tmp_path / "probe")
        assert "PROBE kept 3" in probed, probed[-3000:]  # three folders: the driver's and each node's
    finally:
        stopped = _rlsys("local-cluster", "stop", address, timeout=120)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert not [p for p in _family(pids) if p.is_running() and p.status() != "zombie"]
    assert not state_file(address).exists()
