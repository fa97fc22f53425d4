"""Distillation runs through the CLI on tiny models: GRPO x MiniLLM with L_PT, and the
teacher-side bad inputs that must fail before any actor starts."""

import pytest

from .test_train_cli import check_run_dir, rlsys

pytestmark = pytest.mark.slow


def test_minillm_run_reports_teacher_metrics_and_lpt(tmp_path):
    run_dir = tmp_path / "run"
    out = rlsys("train", "configs/grpo_minillm_tiny.yaml", f"run.dir={run_dir}", "tracking.console=false")
    assert out.returncode == 0, out.stderr[-3000:]
    rows, summary = check_run_dir(run_dir, 2)
    for r in rows:
        assert r["distill/teacher_logprob_per_token"] < 0
        assert r["teacher/sequences_per_s"] > 0 and r["time/teacher"] > 0
        assert r["teacher/mean_batch"] >= 4  # 4-sequence requests merged into bigger batches
        assert r["train/lpt_loss"] > 0
        assert r["train/loss"] == pytest.approx(r["train/policy_loss"] + 0.1 * r["train/lpt_loss"], abs=1e-6)
    for key in ("eval_before", "eval_after"):
        assert summary[key]["teacher_logprob_per_token"] < 0
        # Same model, different prompts: the two distributions differ, so the KL is positive.
        assert summary[key]["reverse_kl"] > 0


def test_teacher_bad_inputs_fail_before_start(tmp_path):
    out = rlsys("train", "configs/grpo_minillm_tiny.yaml", f"run.dir={tmp_path / 'a'}", "teacher.path=/no/teacher")
    assert out.returncode == 1 and "model path /no/teacher does not exist" in out.stderr
    assert not (tmp_path / "a").exists()
    out = rlsys("train", "configs/grpo_teacher_ll_tiny.yaml", f"run.dir={tmp_path / 'b'}",
                "reward.terms=[{name: language_fidelity, kwargs: {wordlist: /no/words.txt}}]")
    assert out.returncode == 1 and "word list /no/words.txt not found" in out.stderr
    assert not (tmp_path / "b").exists()
