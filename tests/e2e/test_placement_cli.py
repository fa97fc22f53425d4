"""A role pinned by custom resources that the cluster lacks is refused before any actor starts,
naming the role, the resource and the amounts. Roles placed on the nodes that offer their
resources, and the placement reported, are in tests/cluster/test_local_cluster.py."""

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




def test_a_role_the_cluster_cannot_place_is_refused_at_once_naming_it(tmp_path):
    started = time.monotonic()
    done = _train(tmp_path / "run", "rollout.num_workers=2")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "resource 'rollout_node': the run asks for 2 (rollout 2) and the cluster offers 1" in done.stderr
    assert "ray status" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 120
