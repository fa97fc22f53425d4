"""Exact resume through the CLI: run A goes 6 iterations straight; run B is killed with
SIGKILL after its iteration-3 checkpoint and started again with the same command
(run.resume=auto). B's iterations 4-6 must be A's: the same prompts, the same loss, grad
norm and learning rate (the CPU path is deterministic: compared exactly), and B's engines
right after the resume must write A's greedy completions after iteration 3. B's first three
iterations also show that two runs with one seed give the same numbers."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

MIN_LR_RATIO = 0.1  # learner.min_lr_ratio, its default (configs/tiny/smoke.yaml leaves it)

ARGS = ["configs/tiny/smoke.yaml", "run.iterations=6", "run.checkpoint_every=3", "run.eval_every=3",
        "run.resume_check_prompts=8", "tracking.console=false"]


def _cmd(run_dir, extra=()):
    return [sys.executable, "-m", "rlsys", "train", *ARGS, *extra, f"run.dir={run_dir}"]


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _damage(run_dir) -> str:
    """What a crash and a real model leave in a run folder (see the module docstring)."""
    import shutil

    odd = "x\u2028y\u0085z"
    with (run_dir / "samples.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"iteration": 2, "completion": odd, "injected": True}, ensure_ascii=False) + "\n")
    with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"iteration": 4, "train/lo')
    ckpts = run_dir / "checkpoints"
    for it in (4, 5):
        shutil.copytree(ckpts / "iter-000003", ckpts / f"iter-{it:06d}")
    (ckpts / "iter-000004" / "state.json").write_text("")
    state = json.loads((ckpts / "iter-000005" / "state.json").read_text())
    (ckpts / "iter-000005" / "state.json").write_text(json.dumps({**state, "iteration": 5}))
    shard = next(n for n in state["files"] if n.endswith("optim_states.pt"))
    (ckpts / "iter-000005" / shard).unlink()
    return odd


def _kill_after_checkpoint(run_dir, iteration: int, extra=()) -> None:
    """Start the run, SIGKILL its driver once checkpoint `iteration` is whole, and end what the
    driver leaves behind (its local Ray's processes)."""
    import psutil

    proc = subprocess.Popen(_cmd(run_dir, extra), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    state = run_dir / "checkpoints" / f"iter-{iteration:06d}" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists():
        assert proc.poll() is None, "run B ended before its checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    for child in children:
        if child.is_running():
            child.kill()


def _by_iteration(rows):
    return {r["iteration"]: r for r in rows}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Run A: six iterations without a fault, the reference of the tests below."""
    a = tmp_path_factory.mktemp("straight") / "a"
    out = subprocess.run(_cmd(a), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return a


def test_killed_run_resumes_exactly_where_a_straight_run_went(straight, tmp_path):
    a, b = straight, tmp_path / "b"
    _kill_after_checkpoint(b, 3)
    odd = _damage(b)
    out = subprocess.run(_cmd(b) + ["run.iterations=7", "run.keep_checkpoints=3"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    said = out.stdout + out.stderr
    assert "resumed from" in said and "metrics.jsonl: dropped its last line" in said
    assert "iter-000004 is damaged (its state.json does not read" in said
    assert "iter-000005 is damaged (learner/state/" in said and "resuming from iter-000003" in said
    assert "keeps the length it was saved with (" in said
    assert [r["completion"] for r in _rows(b / "samples.jsonl") if r.get("injected")] == [odd]
    aside = [p.name for p in (b / "checkpoints").glob("set-aside-*/*")]
    assert sorted(aside) == ["iter-000004", "iter-000005"]

    # The same prompts, in the same order, in every iteration.
    assert [r["data_index"] for r in _rows(b / "data_order.jsonl")][:6] == [r["data_index"] for r in _rows(a / "data_order.jsonl")]
    assert [r["iteration"] for r in _rows(b / "data_order.jsonl")][:6] == [1, 2, 3, 4, 5, 6]
    # Iterations 4-6 after the resume: the same loss, grad norm, learning rate and rewards.
    ma, mb = _by_iteration(_rows(a / "metrics.jsonl")), _by_iteration(_rows(b / "metrics.jsonl"))
    assert sorted(mb) == [1, 2, 3, 4, 5, 6, 7]
    for it in (4, 5, 6):
        for key in ("train/policy_loss", "train/grad_norm", "train/lr", "train/kl", "reward/mean", "rollout/tokens",
                    "sync/version"):
            assert mb[it][key] == ma[it][key], (it, key)
    assert ma[4]["train/lr"] != ma[3]["train/lr"]  # the schedule moves: its position was restored
    # 4 optimiser steps an iteration (16 samples, mini-batch 8, 2 epochs): A's schedule spans 24
    # steps; after B's 28th the cosine has ended at its floor, lr x min_lr_ratio (by hand).
    assert mb[7]["train/optimizer_steps"] == 28 and mb[7]["train/lr"] == pytest.approx(1e-3 * MIN_LR_RATIO, rel=1e-9)
    # The same seed in two processes: B's iterations 1-3 (before the kill) are A's, sampled text
    # included (vLLM's seeded engine and the CPU learner are deterministic in fp32).
    for it in (1, 2, 3):
        for key in ("train/policy_loss", "train/grad_norm", "reward/mean", "rollout/tokens"):
            assert mb[it][key] == ma[it][key], (it, key)
    def texts(run):
        return [(r["iteration"], r["completion"]) for r in _rows(run / "samples.jsonl")
                if r["iteration"] <= 3 and not r.get("injected")]

    assert texts(b) == texts(a) and len(texts(a)) > 0
    # Greedy completions of B's engines right after the resume = A's after iteration 3.
    evals_a, evals_b = _rows(a / "eval_samples.jsonl"), _rows(b / "eval_samples.jsonl")
    def greedy(rows, keep):  # completion and its log-prob under the engine's weights
        return {r["eval_index"]: (r["completion"], r["logprob"]) for r in rows if keep(r)}

    after3 = greedy(evals_a, lambda r: r["iteration"] == 3)
    resumed = greedy(evals_b, lambda r: r.get("when") == "resumed")
    assert len(resumed) == 8 and resumed == after3
    assert after3 != greedy(evals_a, lambda r: r["iteration"] == 0)  # the weights did move
    # The optimiser state B saved at iteration 3 (and loaded) is A's, bit for bit.
    import torch

    def optim(run):
        files = sorted((run / "checkpoints" / "iter-000003" / "learner" / "state").glob("*optim_states.pt"))
        assert files
        return [torch.load(f, weights_only=False)["optimizer_state_dict"] for f in files]

    def flat(x):
        if isinstance(x, torch.Tensor):
            return [x]
        if isinstance(x, dict):
            return [t for k in sorted(x, key=str) for t in flat(x[k])]
        if isinstance(x, (list, tuple)):
            return [t for v in x for t in flat(v)]
        return []

    ta, tb = flat(optim(a)), flat(optim(b))
    assert len(ta) == len(tb) > 0 and all(torch.equal(x, y) for x, y in zip(ta, tb))
    summary = json.loads((b / "summary.json").read_text())
    assert summary["resumed_from"].endswith("iter-000003") and summary["restarts"] == 0
    assert [p.rsplit("/", 1)[-1] for p in summary["checkpoints"]] == ["iter-000003", "iter-000006", "iter-000007"]


def test_a_killed_learner_is_recovered_inside_the_job_from_its_newest_checkpoint(straight, tmp_path):
    """run.max_failures=1: the learner's process is SIGKILLed (as a lost node would end it)
    once checkpoint 3 is whole. The same job restarts every role from that checkpoint, pushes
    its weights to new engines and finishes; iterations 4-6 are the straight run's, and the
    summary counts one recovery."""
    import psutil

    a, c = straight, tmp_path / "c"
    log = tmp_path / "c.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(_cmd(c, ["run.max_failures=1"]), cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        state = c / "checkpoints" / "iter-000003" / "state.json"
        deadline = time.monotonic() + 600
        while not state.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        learners = [p for p in psutil.Process(proc.pid).children(recursive=True)
                    if p.cmdline() and p.cmdline()[0].startswith("ray::Learner")]
        assert len(learners) == 1
        learners[0].kill()
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    said = log.read_text()
    assert "rlsys: recovery 1 of run.max_failures=1: the run failed (" in said and "learner-0" in said
    summary = json.loads((c / "summary.json").read_text())
    assert [r["from"].rsplit("/", 1)[-1] for r in summary["recoveries"]] == ["iter-000003"]
    assert summary["recoveries"][0]["roles_back_s"] > 0
    ma, mc = _by_iteration(_rows(a / "metrics.jsonl")), _by_iteration(_rows(c / "metrics.jsonl"))
    assert [r["iteration"] for r in _rows(c / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]  # each once
    assert [r["data_index"] for r in _rows(c / "data_order.jsonl")][:6] == \
        [r["data_index"] for r in _rows(a / "data_order.jsonl")]
    for it in (1, 2, 3, 4, 5, 6):
        for key in ("train/policy_loss", "train/grad_norm", "train/lr", "reward/mean", "rollout/tokens", "sync/version"):
            assert mc[it][key] == ma[it][key], (it, key)


def test_async_run_resumes_with_the_same_prompts_and_fresh_weights(tmp_path):
    """The guarantee for asynchronous rollouts (k = 1), as the README states it: a killed run
    resumed from its checkpoint trains on the same prompts in the same order as a straight run,
    every iteration once, the weight versions without a gap; the batches that were drawn but
    not trained are drawn again with the checkpoint's weights (staleness 0 for the first one),
    so their samples are new ones, not the lost ones. The rollouts are multi-turn episodes
    (reasoning-gym's environment, a second attempt after a wrong answer, which the random model
    always gives): trajectories in flight at the kill are run again once, none twice."""
    args = ["rollout.max_staleness=1", "env.type=reasoning_gym", "env.kwargs.attempts=2", "env.max_turns=2",
            "env.max_tokens=160"]
    a, b = tmp_path / "a", tmp_path / "b"
    out = subprocess.run(_cmd(a) + args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    _kill_after_checkpoint(b, 3, args)
    out = subprocess.run(_cmd(b) + args, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    order = lambda run: [(r["iteration"], r["data_index"]) for r in _rows(run / "data_order.jsonl")]  # noqa: E731
    assert order(b) == order(a) and [it for it, _ in order(a)] == [1, 2, 3, 4, 5, 6]
    ma, mb = _by_iteration(_rows(a / "metrics.jsonl")), _by_iteration(_rows(b / "metrics.jsonl"))
    assert sorted(mb) == [1, 2, 3, 4, 5, 6]
    assert [mb[i]["sync/version"] for i in range(1, 7)] == [float(i) for i in range(1, 7)]
    assert mb[4]["rollout/staleness_max"] == 0.0  # drawn again after the resume, with its weights
    assert max(ma[i]["rollout/staleness_max"] for i in range(2, 7)) == 1.0  # A did run ahead
    # the episodes had two model turns (the environment's ids between them), a right first answer aside
    assert all(m[i]["rollout/turns_mean"] > 1.5 and m[i]["rollout/env_tokens"] > 0 for m in (ma, mb) for i in m)
