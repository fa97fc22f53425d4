"""Processes killed at random moments of real runs (SIGKILL, as an OOM killer or a lost node
would): rollout worker actors, their vLLM engine processes (vLLM itself would hang on those),
the teacher's engine process and the reward worker, in a synchronous run and in an
asynchronous one (rollout.max_staleness=1). The engines run in processes of their own here
(engine_process=separate, as on a GPU; a CPU engine runs inside its actor by default, where
the actor kill covers its death). Each run finishes every iteration, each
iteration samples all its prompts exactly once, the weight versions run on without a gap,
and the summary counts one restart per kill, by role."""

import json
import os
import random
import subprocess
import sys
import time

import pytest

from ..conftest import REPO
from .process_watch import ProcessWatch

pytestmark = pytest.mark.slow


def _rows(path):
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()] if path.exists() else []


def _processes(driver, kind: str) -> list:
    """The driver's descendants of one kind: 'rollout' (worker actors), 'rollout-engine' and
    'teacher-engine' (vLLM's engine-core process under those actors), 'rollout-vllm-worker'
    (vLLM's model-runner process under the engine core), 'reward' (the reward worker)."""
    import psutil

    actor, inside = {"rollout": ("ray::RolloutWorker", None), "rollout-engine": ("ray::RolloutWorker", "VLLM::EngineCore"),
                     "rollout-vllm-worker": ("ray::RolloutWorker", "VLLM::Worker"),
                     "teacher-engine": ("ray::TeacherService", "VLLM::EngineCore"),
                     "reward": ("ray::RewardWorker", None)}[kind]
    out = []
    for p in driver.children(recursive=True):
        try:
            cmd = p.cmdline()
            if not cmd or not cmd[0].startswith(actor):
                continue
            if inside is None:
                out.append(p)
            else:
                out += [c for c in p.children(recursive=True) if c.cmdline() and c.cmdline()[0].startswith(inside)]
        except psutil.NoSuchProcess:
            pass
    return out


def _run_with_kills(tmp_path, args: list[str], iterations: int, plan: list[str], seed: int):
    """Run `rlsys train ARGS`, killing one process of each kind in `plan`, in order, each a random
    fraction of a second after a randomly chosen iteration is logged. Returns the kills by kind."""
    import psutil

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlsys", "train", *args, f"run.dir={run_dir}", f"run.iterations={iterations}",
           "tracking.console=false"]
    log = (tmp_path / "train.log").open("w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    driver, rng, done, watch = psutil.Process(proc.pid), random.Random(seed), [], ProcessWatch(proc)
    # Kills keyed to progress, not wall time: iterations may take half a second or half a minute.
    targets = sorted(rng.sample(range(2, iterations - 6), len(plan)))
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            watch.poll()
            if len(done) == len(plan) or len(_rows(run_dir / "metrics.jsonl")) < targets[len(done)]:
                continue
            time.sleep(rng.uniform(0.0, 2.0))
            victims = _processes(driver, plan[len(done)])
            if victims and proc.poll() is None:
                rng.choice(victims).kill()
                done.append(plan[len(done)])
        proc.wait(timeout=600)
    finally:
        proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert done == plan, done
    assert watch.survivors() == []  # no orphaned engine outlives the run
    return run_dir


def _check(run_dir, iterations: int, restarts: dict[str, int]) -> None:
    rows = _rows(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == list(range(1, iterations + 1))
    assert all(r["rollout/prompts"] == 4 and r["rollout/samples"] == 16 for r in rows)
    assert [r["sync/version"] for r in rows] == [float(i) for i in range(1, iterations + 1)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {k: v for k, v in summary["restarts_by_role"].items() if k in restarts} == restarts
    assert rows[-1]["rollout/restarts"] == restarts["rollout"]


def test_rollout_workers_and_their_engines_killed_at_random_moments(tmp_path):
    iterations = 20
    plan = ["rollout", "rollout-engine", "rollout-vllm-worker"]
    run_dir = _run_with_kills(tmp_path, ["configs/tiny/smoke.yaml", "rollout.num_workers=2", "rollout.max_restarts=5",
                                         "rollout.engine_process=separate",
                                         "ray.num_cpus=4"], iterations, plan, seed=1)
    _check(run_dir, iterations, {"rollout": 3})
    # the workers' own words are in their log files (the terminal keeps rlsys's driver lines)
    log = "".join(p.read_text() for p in [tmp_path / "train.log", *sorted((run_dir / "logs").glob("*.log"))])
    # Each engine kill ended its actor at once: by the watch (an engine core: vLLM says nothing)
    # or by vLLM's own EngineDeadError (a model runner: the engine core notices it), never by a
    # phase bound.
    assert log.count("its vLLM engine process(es)") + log.count("its vLLM engine died") == 2
    assert "its vLLM engine process(es)" in log
    assert "did not answer within" not in log


def test_async_run_survives_killed_engines_teacher_and_reward_worker(tmp_path):
    iterations = 16
    plan = ["rollout-engine", "teacher-engine", "reward", "rollout"]
    # one rollout worker (the survivor's path runs in the synchronous test): each kill leaves the
    # producer with no engine until the replacement is up, and one engine fewer to start
    run_dir = _run_with_kills(tmp_path, ["configs/tiny/grpo_teacher_ll.yaml", "rollout.num_workers=1",
                                         "rollout.max_staleness=1", "rollout.max_restarts=5", "ray.num_cpus=6",
                                         "rollout.engine_process=separate", "teacher.engine_process=separate",
                                         "run.phase_timeout_s=300"], iterations, plan, seed=2)
    _check(run_dir, iterations, {"rollout": 2, "teacher": 1, "reward": 1})
    rows = _rows(run_dir / "metrics.jsonl")
    assert max(r["rollout/staleness_max"] for r in rows) == 1.0  # it did run ahead
