"""DPO and LoRA through the CLI on the tiny random model: `rlsys make-pairs` from the rollout
and reward workers, offline DPO + LoRA on those pairs (adapter loaded afterwards by PEFT and
by vLLM, independently), online DPO rounds and GRPO with adapter-only sync."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from .test_train_cli import REPO, rlsys

pytestmark = pytest.mark.slow

# The user reward the pairs are ranked by: the share of the letter e in the answer.
E_REWARD = '''
def score(prompts, completions, answers, **_):
    return [c.count("e") / max(1, len(c)) for c in completions]
'''
# r = 8 on 7 projections of the tiny model's 2 layers, fp32: what one adapter sync carries.
TINY_ADAPTER_BYTES = 2 * sum(8 * (i + o) for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128),
                                                      (64, 128), (128, 64)]) * 4


def _env(tmp_path):
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def _run(tmp_path, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rlsys", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=_env(tmp_path))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


VLLM_SCORE = '''
import json, sys
from vllm import LLM, SamplingParams
from vllm.lora.request import LoRARequest
base, adapter, prompt = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if __name__ == "__main__":
    llm = LLM(model=base, dtype="float32", max_model_len=512, enforce_eager=True, enable_lora=True,
              max_lora_rank=8, kv_cache_memory_bytes=2**28)
    out = llm.generate([{"prompt_token_ids": prompt}], SamplingParams(max_tokens=8, temperature=0, logprobs=0),
                       lora_request=LoRARequest("saved", 1, adapter), use_tqdm=False)[0].outputs[0]
    print(json.dumps({"ids": list(out.token_ids), "lp": [e[t].logprob for t, e in zip(out.token_ids, out.logprobs)]}))
'''


def test_make_pairs_then_offline_dpo_with_lora(tmp_path, tiny_model_path):
    (tmp_path / "e_reward.py").write_text(E_REWARD)
    pairs_file = tmp_path / "pairs.jsonl"
    out = _run(tmp_path, "make-pairs", "configs/tiny/smoke.yaml", "--out", str(pairs_file), "--prompts", "24",
               "reward.terms=[{name: 'e_reward:score'}]", "rollout.prompts_per_iteration=8")
    assert out.returncode == 0, out.stderr[-3000:]
    made = json.loads(out.stdout.strip().splitlines()[-1])
    rows = _rows(pairs_file)
    assert made["prompts"] == 24 and made["samples"] == 96 and made["pairs"] == len(rows) >= 16
    for row in rows:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        share = lambda c: c.count("e") / max(1, len(c))  # noqa: E731
        assert share(row["chosen"]) > share(row["rejected"])

    run_dir = tmp_path / "dpo"
    out = _run(tmp_path, "train", "configs/tiny/dpo_lora.yaml", f"run.dir={run_dir}", "tracking.console=false",
               f"data.preferences.path={pairs_file}", "data.preferences.min_words={prompt: 1, chosen: 0, rejected: 0}",
               "data.on_invalid=drop", "algorithm.epochs=3", "algorithm.task_eval=true",
               "learner.gradient_checkpointing=true")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{len(rows)} preference rows:" in out.stderr
    stats = json.loads((run_dir / "training_stats.json").read_text())
    before, after = stats["heldout_before"], stats["heldout_after"]
    # Step 0: the adapter's B is 0, so the policy is the reference to the bit.
    assert before["heldout/loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert before["heldout/rewards_chosen"] == 0.0 and before["heldout/rewards_rejected"] == 0.0
    assert stats["data"]["kept"] + sum(stats["data"]["dropped"].values()) == len(rows)
    assert stats["data"]["train_pairs"] + stats["data"]["heldout_pairs"] == stats["data"]["kept"]
    assert stats["loss_curve"]["last"] < stats["loss_curve"]["first"]
    assert after["heldout/margin"] != 0.0 and "task/accuracy" in after
    assert stats["parameters"]["trainable"] == TINY_ADAPTER_BYTES // 4
    steps = _rows(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in steps] == list(range(1, stats["steps"] + 1))
    assert all(0 <= r["train/accuracy"] <= 1 and r["train/lr"] > 0 for r in steps)
    gens = _rows(run_dir / "sample_generations.jsonl")
    assert len(gens) == min(16, stats["data"]["heldout_pairs"]) and all({"prompt", "base", "tuned"} <= set(g) for g in gens)

    # The saved adapter, loaded by PEFT on the base and, separately, by vLLM from its folder.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = run_dir / "adapter"
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in adapter.iterdir()}
    script = tmp_path / "vllm_score.py"
    script.write_text(VLLM_SCORE)
    prompt = [1, 406, 201, 19, 267, 287, 268, 2]
    got = subprocess.run([sys.executable, str(script), tiny_model_path, str(adapter), json.dumps(prompt)],
                         capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    assert got.returncode == 0, got.stderr[-3000:]
    engine = json.loads(next(line for line in got.stdout.splitlines() if line.startswith('{"ids"')))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32),
                                      str(adapter)).eval()
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([prompt + engine["ids"]])).logits[0].double(), -1)
    peft_lp = [lp[len(prompt) - 1 + k, t].item() for k, t in enumerate(engine["ids"])]
    assert peft_lp == pytest.approx(engine["lp"], abs=1e-3)
    with torch.no_grad(), model.disable_adapter():
        base_lp = torch.log_softmax(model(torch.tensor([prompt + engine["ids"]])).logits[0].double(), -1)
    assert max(abs(base_lp[len(prompt) - 1 + k, t].item() - p) for k, (t, p) in enumerate(zip(engine["ids"], peft_lp))) > 1e-3


def test_online_dpo_rounds_push_only_the_adapter(tmp_path):
    run_dir = tmp_path / "online"
    out = rlsys("train", "configs/tiny/online_dpo.yaml", f"run.dir={run_dir}", "tracking.console=false")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(run_dir / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert [r["sync/version"] for r in rows] == [1.0, 2.0, 3.0]
    assert all(r["sync/bytes"] == TINY_ADAPTER_BYTES for r in rows)
    assert all(r["pairs/made"] >= r["pairs/trained"] / 2 and r["pairs/made"] > 0 for r in rows)
    assert any(r["pairs/trained"] > 0 and 0 <= r["train/accuracy"] <= 1 for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_weight_version"] == 3 and summary["adapter_dir"].endswith("adapter")


def test_grpo_with_lora_syncs_only_the_adapter(tmp_path):
    run_dir = tmp_path / "grpo"
    out = rlsys("train", "configs/tiny/grpo_lora.yaml", f"run.dir={run_dir}", "tracking.console=false")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(run_dir / "metrics.jsonl")
    assert [r["sync/version"] for r in rows] == [1.0, 2.0]
    assert all(r["sync/bytes"] == TINY_ADAPTER_BYTES and r["time/sync"] > 0 for r in rows)
    # The reference is the policy with the adapter off: KL starts at 0 and moves once B moves.
    assert rows[0]["time/reference"] > 0 and rows[-1]["train/kl"] > 0
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


# A reward that splits groups: 1 for a completion whose first character's code is a multiple of 4.
FIRST_CHAR_REWARD = '''
def score(prompts, completions, answers, **_):
    return [float(bool(c) and ord(c[0]) % 4 == 0) for c in completions]
'''


def test_grpo_with_lora_merged_into_the_engine_and_equal_groups_dropped(tmp_path):
    """`engine_weights: merged` through the CLI: every weight travels (the tiny model's full
    size in fp32), and with equal-reward groups dropped the KL term still gets the
    reference's log-probs of every sample that trains."""
    from transformers import AutoModelForCausalLM

    from rlsys.models.catalog import resolve_model

    (tmp_path / "first_char.py").write_text(FIRST_CHAR_REWARD)
    run_dir = tmp_path / "merged"
    out = _run(tmp_path, "train", "configs/tiny/grpo_lora.yaml", f"run.dir={run_dir}", "tracking.console=false",
               "model.lora.engine_weights=merged", "algorithm.drop_uniform_groups=true",
               "reward.terms=[{name: 'first_char:score'}]", "learner.mini_batch_size=4")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(run_dir / "metrics.jsonl")
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32)
    assert all(r["sync/bytes"] == 4 * sum(p.numel() for p in model.parameters()) for r in rows)
    assert all(0 < r["train/kept_fraction"] <= 1 and r["time/logprobs"] > 0 for r in rows)
    assert rows[-1]["train/kl"] > 0  # the adapter moved the policy from the reference (adapter off)
