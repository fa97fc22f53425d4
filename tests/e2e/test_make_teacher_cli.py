"""`rlsys make-teacher` through the CLI on the tiny model: a loadable model folder whose
training loss fell, the worked solutions it trained on checked against the tasks' answers,
and the refusals (an existing folder, a task without worked solutions, a tokenizer without an
EOS token) that write nothing."""

import json
import shutil

import pytest

from .test_train_cli import rlsys

pytestmark = pytest.mark.slow


def test_make_teacher_writes_a_teacher_that_learned(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "teacher"
    args = ["configs/tiny/smoke.yaml", "data.task_kwargs={min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}",
            "--out", str(out), "--steps", "30", "--lr", "3e-3", "--batch-size", "8"]
    done = rlsys("make-teacher", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "teacher.json").read_text())
    assert report["steps"] == 30 and report["train_solutions"] > 0
    assert report["loss_last20"] < 0.5 * report["loss_first"]  # it fitted the worked solutions
    assert 0.0 <= report["eval_after"]["accuracy"] <= 1.0 and report["eval_before"]["n"] == 8
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    assert json.loads(done.stdout.strip().splitlines()[-1])["out"] == str(out)

    again = rlsys("make-teacher", *args)
    assert again.returncode == 1 and "exists" in again.stderr
    refused = tmp_path / "refused"
    bad = rlsys("make-teacher", "configs/tiny/smoke.yaml", "data.task=basic_arithmetic", "data.task_kwargs={}",
                "--out", str(refused), "--steps", "2")
    assert bad.returncode == 1 and "no worked solution" in bad.stderr
    assert not refused.exists() and not (tmp_path / ".refused.partial").exists()

    no_eos = tmp_path / "no_eos"  # the teacher just written, its tokenizer stripped of its EOS token
    shutil.copytree(out, no_eos)
    tok_cfg = json.loads((no_eos / "tokenizer_config.json").read_text())
    tok_cfg["eos_token"] = None
    (no_eos / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    refused = tmp_path / "refused_no_eos"
    bad = rlsys("make-teacher", *args[:2], f"model.path={no_eos}", "--out", str(refused), "--steps", "2")
    assert bad.returncode == 1 and "no EOS token" in bad.stderr, bad.stderr[-2000:]
    assert not refused.exists() and not (tmp_path / ".refused_no_eos.partial").exists()
