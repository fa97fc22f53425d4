"""A hung actor stops a whole run within its phase's bound, and the error names the actor
and the phase. The hang is real: a user reward function (loaded by dotted path into the
reward worker) that sleeps far longer than `run.phase_timeouts.reward`."""

import os
import subprocess
import sys
import time

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

SLOW_REWARD = '''
import time

def slow(prompts, completions, answers, **_):
    time.sleep(600)
    return [0.0] * len(completions)
'''


def test_a_reward_worker_that_hangs_stops_the_run_naming_actor_and_phase(tmp_path):
    (tmp_path / "slow_reward.py").write_text(SLOW_REWARD)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "rlsys", "train", "configs/tiny/smoke.yaml", f"run.dir={tmp_path / 'run'}",
         "tracking.console=false", "reward.terms=[{name: 'slow_reward:slow'}]", "run.phase_timeouts={reward: 5}"],
        cwd=REPO, capture_output=True, text=True, timeout=400, env=env)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "rlsys: reward: reward did not answer within 5s" in out.stderr
    assert time.monotonic() - started < 300  # stopped at the bound, not after the 600 s sleep
