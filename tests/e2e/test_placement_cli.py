"""Roles pinned to nodes by custom resources, through the CLI on a local Ray that offers them:
the run reports where each actor landed (console and summary.json), and a role whose resource
the cluster lacks is refused before any actor starts, naming the role and the resource. One
node here: which of several nodes each role lands on is the multi-node tier's to show."""

import json
import subprocess
import sys
import time

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

PINNED = ["ray.resources={rollout_node: 1, learner_node: 1, reward_node: 1}", "rollout.resources={rollout_node: 1}",
          "learner.resources={learner_node: 1}", "reward.resources={reward_node: 1}"]


def _train(run_dir, *extra):
    cmd = [sys.executable, "-m", "rlsys", "train", "configs/tiny/smoke.yaml", "run.iterations=1",
           "tracking.console=false", f"run.dir={run_dir}", *PINNED, *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


def test_pinned_roles_run_where_the_resources_are_and_say_so(tmp_path):
    done = _train(tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    placement = json.loads((tmp_path / "run" / "summary.json").read_text())["placement"]
    assert set(placement) == {"rollout", "reward", "learner"}
    assert all(len(ids) == 1 and len(ids[0]) == 56 for ids in placement.values()), placement
    node = placement["rollout"][0]
    assert placement["learner"] == placement["reward"] == [node]  # the one node offers all three
    assert f"rlsys: placement: rollout on node {node[:8]}; reward on node {node[:8]}; learner on node {node[:8]}" \
        in done.stdout + done.stderr


def test_a_role_the_cluster_cannot_place_is_refused_at_once_naming_it(tmp_path):
    started = time.monotonic()
    done = _train(tmp_path / "run", "rollout.num_workers=2")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "resource 'rollout_node': the run asks for 2 (rollout 2) and the cluster offers 1" in done.stderr
    assert "ray status" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 120
