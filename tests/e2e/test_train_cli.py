"""Whole runs through the CLI, as a user starts them: the smoke recipe on a tiny model."""

import json
import os
import subprocess
import sys

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow


def rlsys(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rlsys", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def check_run_dir(run_dir, iterations):
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.yaml", "control.json", "data_order.jsonl", "eval_samples.jsonl", "logs", "metrics.jsonl", "model",
        "plots", "samples.jsonl", "summary.json"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, iterations + 1))
    for r in rows:
        assert r["rollout/tokens"] > 0 and r["train/optimizer_steps"] > 0
        assert r["sync/bytes"] > 0 and r["sync/bytes_per_s"] > 0
        for phase in ("generation", "reward", "reference", "old_logprobs", "train", "sync", "iteration"):
            assert r[f"time/{phase}"] > 0, phase
        assert 0 <= r["train/clip_fraction"] <= 1 and r["train/entropy"] > 0
    assert [r["sync/version"] for r in rows] == [float(i) for i in range(1, iterations + 1)]
    shown = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(shown) == iterations * 2 * 4 and all(isinstance(s["completion"], str) for s in shown)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == iterations and summary["wall_seconds"] > 0
    for key in ("eval_before", "eval_after"):
        assert 0.0 <= summary[key]["accuracy"] <= 1.0 and summary[key]["n"] == 8
    return rows, summary


def test_smoke_train_writes_metrics_summary_and_a_loadable_model(tmp_path):
    run_dir = tmp_path / "run"
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows, _ = check_run_dir(run_dir, 2)
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["run_dir"] == str(run_dir)
    check_quiet_console(out.stdout + out.stderr, rows, run_dir)

    from transformers import AutoModelForCausalLM

    from rlsys.models.catalog import resolve_model

    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    moved = sum(float((a - b).abs().sum().detach()) for a, b in zip(model.parameters(), base.parameters()))
    assert moved > 0  # the saved model is the trained one

    # `rlsys plan`, its rates taken from this run, against what this run measured: the
    # phases it models plus the overhead it measured must add up to the iteration
    out = rlsys("plan", str(run_dir / "config.yaml"), "--calibrate", str(run_dir), "--check", str(run_dir),
                "--gpus", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(plan["check"]["relative_error"]) < 0.25, plan["check"]
    assert sum(plan["synchronous"]["split"].values()) == 4
    assert plan["asynchronous"]["seconds_per_iteration"] <= plan["synchronous"]["seconds_per_iteration"]


def check_quiet_console(printed: str, rows: list[dict], run_dir) -> None:
    """Piped output: a few lines of rlsys's own, each iteration on one full line with its loss,
    KL and phase times as metrics.jsonl has them; the third-party output is in logs/."""
    lines = printed.splitlines()
    assert len(lines) < 25, printed
    for r in rows:
        line = next(line for line in lines if line.startswith(f"iteration {r['iteration']}/2 "))
        assert f"loss {r['train/loss']:.4f}" in line and f"kl {r['train/kl']:.4f}" in line, line
        assert f"gen {r['time/generation']:.1f}s" in line and f"train {r['time/train']:.1f}s" in line, line
        assert f"sync {r['time/sync']:.1f}s" in line and f"{r['time/iteration']:.1f} s/it" in line, line
    assert "WARNING" not in printed and "Loading safetensors" not in printed and "(RolloutWorker" not in printed
    rollout_log = "".join(p.read_text() for p in (run_dir / "logs").glob("rollout-0-*.log"))
    assert rollout_log.count("WARNING") >= 3  # vLLM's start-up warnings landed in the rollout worker's file
    warned = sum(" WARNING " in line for p in (run_dir / "logs").glob("*.log") for line in p.read_text().splitlines())
    summary_line = next(line for line in lines if line.startswith("rlsys: logs of vLLM"))
    assert str(run_dir / "logs") in summary_line and int(summary_line.split(" warning lines")[0].split()[-1]) >= warned


def test_bad_inputs_fail_before_any_actor_starts(tmp_path):
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={tmp_path / 'a'}", "model.path=/no/such/model")
    assert out.returncode == 1 and "model path /no/such/model does not exist" in out.stderr
    assert not (tmp_path / "a").exists()  # nothing half-written

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"}\n')
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={tmp_path / 'b'}", "data.source=gsm8k_jsonl", f"data.path={bad}")
    assert out.returncode == 1 and f"{bad}:2: field 'answer' is missing" in out.stderr
    assert not (tmp_path / "b").exists()

    out = rlsys("train", "configs/tiny/smoke.yaml", "rollout.grup_size=3")
    assert out.returncode == 2 and "rollout.grup_size: unknown key" in out.stderr and "configs/tiny/smoke.yaml" in out.stderr

    out = rlsys("train", "configs/tiny/smoke.yaml", "reward.terms=[{name: no_such_reward}]")
    assert out.returncode == 1 and "unknown reward 'no_such_reward'" in out.stderr

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("x")
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={tmp_path / 'c'}")
    assert out.returncode == 1 and "is not empty" in out.stderr and (tmp_path / "c" / "keep.txt").exists()


def test_validate_prints_the_resolved_config():
    out = rlsys("validate", "configs/tiny/smoke.yaml", "learner.lr=0.25")
    assert out.returncode == 0 and "lr: 0.25" in out.stdout and "group_size: 4" in out.stdout
