"""`rlsys eval`, `rlsys plot` and `rlsys compare` as a user runs them: a smoke training run with
an evaluation suite at every iteration, then the trained model and the base model evaluated side
by side, then the curves drawn. The in-training perplexity (vLLM prompt log-probs on the engine)
and `rlsys eval`'s (the HF model, in windows) of the same weights must agree."""

import json
import time

import pytest

from .test_train_cli import rlsys

pytestmark = pytest.mark.slow

SUITE = """
workers: 1
tasks:
  - name: chain
    kind: accuracy
    source: reasoning_gym
    task: chain_sum
    size: 6
    seed: 3
    template: xml
    max_new_tokens: 12
  - name: en_fo
    kind: generation
    path: {data}
    instruction: "Translate into Faroese: {{source}}"
    limit: 5
    max_new_tokens: 8
    language: {{wordlist: {words}, script: faroese_latin}}
  - name: fo_ppl
    kind: perplexity
    path: {data}
    text_field: reference
    limit: 12
    window: 16
    stride: 8
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from tests.conftest import DATA, REPO

    path = tmp_path_factory.mktemp("suite") / "suite.yaml"
    path.write_text(SUITE.format(data=REPO / "configs" / "data" / "en_fo_messages.jsonl",
                                 words=DATA / "faroese_words.txt"))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, suite):
    run_dir = tmp_path_factory.mktemp("run") / "run"
    out = rlsys("train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}", "tracking.console=false", f"eval.suite={suite}",
                "run.eval_every=1", "--verbose")
    assert out.returncode == 0, out.stderr[-3000:]
    # --verbose: vLLM's own warnings reach the terminal and no logs folder is written
    assert "(RolloutWorker" in out.stderr and "WARNING" in out.stderr and not (run_dir / "logs").exists()
    return run_dir


def test_training_logs_the_suite_and_draws_its_curves(trained):
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        for key in ("eval/chain/accuracy", "eval/en_fo/chrf", "eval/en_fo/script_purity", "eval/fo_ppl/word_perplexity"):
            assert isinstance(r[key], float), key
        assert r["eval/fo_ppl/token_perplexity"] > 1.0
    assert (trained / "plots" / "curves.png").stat().st_size > 10_000


def test_eval_prints_both_models_and_agrees_with_the_engine(trained, suite, tmp_path):
    out_dir = tmp_path / "eval"
    out = rlsys("eval", str(suite), "--model", "tiny-random", "--model", str(trained), "--out", str(out_dir),
                "--dtype", "float32", "--max-model-len", "512")
    assert out.returncode == 0, out.stderr[-3000:]
    header = next(line for line in out.stdout.splitlines() if "metric" in line)
    assert "tiny-random" in header and f"{trained.parent.name}/run" in header  # one column each
    result = json.loads((out_dir / "eval.json").read_text())
    assert set(result["models"]) == {"tiny-random", str(trained)}
    for per_task in result["models"].values():
        assert per_task["chain"]["accuracy"]["n"] == 6
        assert per_task["en_fo"]["bleu"]["n"] == 5
        assert per_task["fo_ppl"]["word_perplexity"]["n"] == 12
        assert per_task["fo_ppl"]["token_perplexity"]["low"] <= per_task["fo_ppl"]["token_perplexity"]["value"]
    base, tuned = (result["models"][m]["fo_ppl"]["token_perplexity"]["value"] for m in ("tiny-random", str(trained)))
    assert base != tuned  # the trained weights were evaluated, not the base model's
    # The engine scored the same windows of the same weights after the last iteration.
    last = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()][-1]
    assert tuned == pytest.approx(last["eval/fo_ppl/token_perplexity"], rel=1e-3)
    rows = [json.loads(line) for line in (out_dir / "eval_samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * (6 + 5 + 12)
    assert {r["task"] for r in rows} == {"chain", "en_fo", "fo_ppl"}


def test_plot_writes_a_real_picture_and_compare_prints_the_runs(trained, tmp_path):
    from PIL import Image, ImageStat

    png = tmp_path / "curves.png"
    out = rlsys("plot", str(trained), str(trained), "--out", str(png))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["png"] == str(png)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] >= 1000 and img.size[1] >= 700
        rgb = img.convert("RGB")
        assert max(ImageStat.Stat(rgb).stddev) > 20  # not a blank canvas
        assert len(rgb.getcolors(maxcolors=1 << 20)) > 50  # lines, text and a stacked area
    out = rlsys("compare", str(trained))
    assert out.returncode == 0 and "chain/accuracy" in out.stdout and "fo_ppl/word_perplexity" in out.stdout


def test_bad_suite_fails_before_any_model_loads(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - name: a\n    kind: translate\n    path: x.jsonl\n")
    started = time.perf_counter()
    out = rlsys("eval", str(bad), "--model", "tiny-random")
    assert out.returncode == 2
    assert f"{bad}:2: tasks.0: unknown kind 'translate'" in out.stderr
    assert time.perf_counter() - started < 30
    # a good suite that needs no file of the machine's, and a folder that is not a model
    good = tmp_path / "good.yaml"
    good.write_text("tasks:\n  - name: chain\n    kind: accuracy\n    source: reasoning_gym\n    task: chain_sum\n"
                    "    size: 4\n")
    out = rlsys("eval", str(good), "--model", str(tmp_path))
    assert out.returncode == 1 and "is not a model: no config.json" in out.stderr, out.stderr[-2000:]
