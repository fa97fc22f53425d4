"""Whole nodes lost in the middle of a run on a 3-node `rlsys local-cluster` (every raylet
on 127.0.0.1). Worker node 1, which hosts one of three rollout workers spread over the
nodes, is SIGKILLed with everything on it (`rlsys local-cluster kill-node`): the run heals
on the surviving nodes and each iteration still samples its prompts exactly once. Then
worker node 2, the only node offering what the learner asks for (`learner.resources:
{node2: 1}`), is killed: `run.max_failures=1` restarts the roles from the newest checkpoint,
no node can host the learner, and the run stops naming the role and the resource, with the
checkpoint to continue from."""

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _rlsys(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "rlsys", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _wait(proc, log, ready, what, timeout_s=600):
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}: " + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {what} within {timeout_s}s"
        time.sleep(0.2)


@contextmanager
def _run_on_cluster(tmp_path, nodes: int, cpus_per_node: int, *overrides: str, config="configs/tiny/smoke.yaml"):
    """A `rlsys local-cluster` of `nodes` nodes and a run of `config` on it (6 iterations) with
    `overrides`; yields (the run's process, its log, its folder, the cluster's address, its
    node ids). The run and the cluster are ended on the way out."""
    from rlsys.distributed.local_cluster import state_file

    started = _rlsys("local-cluster", "start", "--nodes", str(nodes), "--cpus-per-node", str(cpus_per_node))
    assert started.returncode == 0, started.stderr[-3000:]
    address = started.stdout.strip().splitlines()[-1]
    node_ids = json.loads(state_file(address).read_text())["node_ids"]
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    cmd = [sys.executable, "-m", "rlsys", "train", config, "run.iterations=6",
           "tracking.console=false", f"run.dir={run_dir}", f"ray.address={address}", *overrides]
    proc = None
    try:
        with log.open("w") as fh:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            yield proc, log, run_dir, address, node_ids
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        _rlsys("local-cluster", "stop", address, timeout=120)


def test_lost_nodes_heal_the_rollout_and_stop_on_a_learner_no_node_can_host(tmp_path):
    with _run_on_cluster(tmp_path, 3, 2, "run.checkpoint_every=2", "run.max_failures=1",
                         "run.phase_timeouts={start: 90}", "rollout.num_workers=3", "rollout.scheduling=spread",
                         "learner.resources={node2: 1}") as (proc, log, run_dir, address, node_ids):
        _wait(proc, log, lambda: len(_rows(run_dir / "metrics.jsonl")) >= 2, "iteration 2")
        placed = re.search(r"rlsys: placement: rollout on ([^;]+);.* learner on node (\w+)", log.read_text())
        assert placed, log.read_text()[-2000:]
        assert node_ids[1][:8] in placed.group(1) and placed.group(2) == node_ids[2][:8], placed.group(0)

        killed = _rlsys("local-cluster", "kill-node", address, "1")
        assert killed.returncode == 0, killed.stderr[-2000:]
        lost_at = time.monotonic()
        assert json.loads(killed.stdout)["node_id"] == node_ids[1] and json.loads(killed.stdout)["killed"]
        _wait(proc, log, lambda: len(_rows(run_dir / "metrics.jsonl")) >= 3, "an iteration after the node loss")
        healed_in = time.monotonic() - lost_at

        state = run_dir / "checkpoints" / "iter-000004" / "state.json"
        _wait(proc, log, state.exists, "checkpoint 4")
        assert _rlsys("local-cluster", "kill-node", address, "2").returncode == 0
        assert proc.wait(timeout=600) == 1
    said = log.read_text()
    rows = _rows(run_dir / "metrics.jsonl")
    # Every iteration up to the learner's loss once, each with all its prompts sampled once.
    # Iteration 5 (0.4 s here) may finish before the kill of node 2 lands (`kill-node` is a
    # process of its own to start): then it is logged, not checkpointed, and redone on resume.
    last = rows[-1]["iteration"]
    assert [r["iteration"] for r in rows] == list(range(1, last + 1)) and last in (4, 5), said[-3000:]
    assert all(r["rollout/prompts"] == 4 and r["rollout/samples"] == 16 for r in rows)
    assert [r["sync/version"] for r in rows] == [float(i) for i in range(1, last + 1)]
    assert rows[-1]["rollout/restarts"] >= 1 and "died during" in said
    assert "rlsys: recovery 1 of run.max_failures=1" in said
    assert re.search(r"resource 'node2': the run asks for 1 \(learner 1\) and the cluster offers 0", said), said[-3000:]
    assert "the run can continue from" in said and "iter-000004" in said.split("resource 'node2'")[-1]
    print(f"node loss -> next iteration logged: {healed_in:.1f}s")


def test_a_lost_node_no_rollout_worker_can_replace_stops_with_a_checkpoint(tmp_path):
    """The rollout worker is pinned to node 1 (`rollout.resources: {node1: 1}`), the learner to
    the head (`node0`), and node 1 is lost after iteration 2: no live node can host a
    replacement, so the run writes a checkpoint of its last trained iteration (off its
    schedule, every 3) and stops naming the role and the resource; the same command
    continues from it."""
    with _run_on_cluster(tmp_path, 2, 3, "run.checkpoint_every=3", "rollout.resources={node1: 1}",
                         "learner.resources={node0: 1}") as (proc, log, run_dir, address, node_ids):
        assert len(node_ids) == 2
        _wait(proc, log, lambda: len(_rows(run_dir / "metrics.jsonl")) >= 2, "iteration 2")
        assert _rlsys("local-cluster", "kill-node", address, "1").returncode == 0
        assert proc.wait(timeout=600) == 1
    said = log.read_text()
    # Ray may report the loss during iteration 3's generation or during its weight sync
    # (after training): either way the last finished training is checkpointed and logged once.
    assert re.search(r"rlsys: (generation|weight sync): no live node offers what a rollout worker asks for "
                     r"\(rollout.resources \{'node1': 1.0\}\): its node was lost", said), said[-3000:]
    rows = _rows(run_dir / "metrics.jsonl")
    last = rows[-1]["iteration"]
    assert [r["iteration"] for r in rows] == list(range(1, last + 1)) and last in (2, 3)
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("iter-*"))] == [f"iter-{last:06d}"]
    state = json.loads((run_dir / "checkpoints" / f"iter-{last:06d}" / "state.json").read_text())
    assert state["iteration"] == last and state["version"] == last
    assert "the run can continue from" in said and said.rstrip().endswith("run the same command again (run.resume=auto)")
