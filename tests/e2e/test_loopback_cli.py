"""A local run opens nothing beyond loopback and leaves no process behind. Two learner ranks
(their process group's store and gloo sockets), two rollout workers (the weight-sync store)
and Ray's own daemons and agents are watched with psutil for the whole run; a failed run
(a reward worker that hangs past its phase bound) must leave nothing behind either."""

import os
import subprocess
import sys

import pytest

from ..conftest import REPO
from .process_watch import ProcessWatch

pytestmark = pytest.mark.slow

HANGING_REWARD = '''
import time

def hang(prompts, completions, answers, **_):
    time.sleep(600)
    return [0.0] * len(completions)
'''


def _start(args, env=None):
    # As a user runs it: without the test session's loopback variable.
    env = {k: v for k, v in (env or os.environ).items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    return subprocess.Popen([sys.executable, "-m", "rlsys", "train", "configs/tiny/smoke.yaml", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def test_a_run_listens_on_loopback_only_and_leaves_no_process(tmp_path):
    proc = _start([f"run.dir={tmp_path / 'run'}", "tracking.console=false", "learner.num_ranks=2",
                   "rollout.num_workers=2", "ray.num_cpus=4", "run.iterations=2"])
    watch = ProcessWatch(proc)
    assert watch.run(600) == 0, proc.stderr.read()[-3000:]
    names = {name for name, _, _ in watch.listening}
    assert any("Learner" in n for n in names) and any("raylet" in n or "gcs" in n for n in names), names
    assert watch.off_loopback() == []
    assert watch.survivors() == []


def test_a_failed_run_leaves_no_process(tmp_path):
    (tmp_path / "hanging_reward.py").write_text(HANGING_REWARD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = _start([f"run.dir={tmp_path / 'run'}", "tracking.console=false", "reward.terms=[{name: 'hanging_reward:hang'}]",
                   "run.phase_timeouts={reward: 5}"], env)
    watch = ProcessWatch(proc)
    assert watch.run(400) == 1
    assert "reward did not answer within 5s" in proc.stderr.read()
    assert len(watch.seen) > 3 and watch.off_loopback() == []
    assert watch.survivors() == []
