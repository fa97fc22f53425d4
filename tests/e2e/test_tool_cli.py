"""A multi-turn tool run through the CLI, as the issue's user starts it: GRPO with a calculator
on SmolLM2-135M (fp32). Tool calls happen, environment ids sit between the model's turns, and
the learner agrees with vLLM on the model's own ids (the environment's ids are not compared);
the trajectories a turn loop kept are what the learner trained on."""

import json
import re

import pytest

from .test_train_cli import rlsys

pytestmark = pytest.mark.slow


def test_tool_smoke_calls_tools_and_trains_on_the_sampled_ids(tmp_path):
    run_dir = tmp_path / "run"
    out = rlsys("train", "configs/tiny/tool_smoke.yaml", "model.dtype=float32", "run.iterations=2",
                f"run.dir={run_dir}", "tracking.dump_batches=true")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert max(r["rollout/turns_mean"] for r in rows) > 1
    assert sum(r["rollout/tool_calls"] for r in rows) > 0 and max(r["rollout/env_tokens"] for r in rows) > 0
    assert all(r["train/mismatch_kl"] < 1e-3 and r["train/logprob_mismatch"] < 1e-3 for r in rows), rows
    # the mismatch is measured on the model's ids only: fewer than every id after the prompts
    assert all(r["train/mismatch_tokens"] < r["rollout/tokens"] for r in rows)
    console = out.stdout + out.stderr
    assert " turns " in console and " tools " in console  # the console line
    batch = [json.loads(line) for line in (run_dir / "batches" / "iter-000001.jsonl").read_text().splitlines()]
    multi = [b for b in batch if b.get("loss_mask") and 0 in b["loss_mask"]]
    assert multi, "no trained item had environment ids"
    for b in multi:
        assert len(b["loss_mask"]) == len(b["completion_ids"]) and b["loss_mask"][0] == 1 and b["loss_mask"][-1] == 1
    # samples.jsonl shows each episode turn by turn: a calculator's answer is the expression in the
    # model's call, evaluated here by Python
    shown = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert shown and all(r["turns"] and r["status"] in ("done", "max_turns", "max_tokens", "failed") for r in shown)
    for r in shown:
        for turn in r["turns"][:-1]:
            call = re.search(r'"expression":\s*"([0-9+\-*/ ()]+)"', turn["model"])
            if call and "error" not in turn["env"] and float(eval(call.group(1))).is_integer():
                assert turn["env"].strip() == str(int(eval(call.group(1)))), turn
        assert r["turns"][-1]["model"] == r["completion"]
    assert sum(len(r["turns"]) > 1 for r in shown) > 0
