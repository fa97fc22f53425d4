"""Suite files, task data and model specs are checked before any model loads, with the file and
line (or key) named; tasks score completions as worked out by hand."""

import json

import pytest

from rlsys.errors import ConfigError
from rlsys.errors import DataError
from rlsys.eval.models import check_adapter_fits, resolve_eval_model
from rlsys.eval.suite import load_suite
from rlsys.eval.tasks import build_task
from rlsys.errors import ModelNotFoundError
from tests.conftest import DATA, REPO


def _suite(tmp_path, text: str):
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def test_unknown_kind_names_file_and_line(tmp_path):
    p = _suite(tmp_path, "tasks:\n  - name: a\n    kind: accuracy\n    path: x.jsonl\n  - name: b\n    kind: blue\n")
    with pytest.raises(ConfigError) as err:
        load_suite(p)
    assert f"{p}:5: tasks.1: unknown kind 'blue'" in str(err.value)
    assert "accuracy, qa, generation, language, perplexity" in str(err.value)


def test_unknown_key_and_missing_field_name_their_lines(tmp_path):
    p = _suite(tmp_path, "tasks:\n  - name: a\n    kind: qa\n    pth: q.jsonl\n")
    with pytest.raises(ConfigError) as err:
        load_suite(p)
    msg = str(err.value)
    assert f"{p}:4: tasks.0.pth: unknown key" in msg
    assert f"{p}:2: tasks.0.path: Field required" in msg


def test_missing_reference_field_in_data_is_file_line(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"source": "Iceland", "reference": "Ísland"}) + "\n" + json.dumps({"source": "Norway"}) + "\n")
    p = _suite(tmp_path, f"tasks:\n  - {{name: t, kind: generation, path: {data}}}\n")
    with pytest.raises(DataError, match=rf"{data}:2: field 'reference' is missing"):
        build_task(load_suite(p).tasks[0])


def test_qa_answers_of_both_layouts_and_a_bad_row(tmp_path):
    data = tmp_path / "qa.jsonl"
    rows = [{"context": "Tórshavn is the capital.", "question": "What is the capital?", "answers": ["Tórshavn"]},
            {"context": "c", "question": "q", "answers": {"text": ["Havn", "Tórshavn"], "answer_start": [0, 0]}}]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    p = _suite(tmp_path, f"tasks:\n  - {{name: qa, kind: qa, path: {data}}}\n")
    task = build_task(load_suite(p).tasks[0])
    assert [e.reference for e in task.examples] == [["Tórshavn"], ["Havn", "Tórshavn"]]
    scored = task.score([["The Tórshavn.\nmore text"], ["Klaksvík"]], [[3], [2]])
    assert scored.metrics["exact_match"].value == 0.5
    assert scored.rows[0]["prediction"] == "The Tórshavn."
    data.write_text(json.dumps({"context": "c", "question": "q", "answers": []}) + "\n")
    with pytest.raises(DataError, match=rf"{data}:1: field 'answers' must be a non-empty list"):
        build_task(load_suite(p).tasks[0])


def test_accuracy_task_scores_and_pass_at_k(tmp_path):
    p = _suite(tmp_path, f"tasks:\n  - {{name: g, kind: accuracy, path: {DATA / 'gsm8k_sample.jsonl'}, samples: 2, "
                         "pass_at: [1, 2], limit: 2}\n")
    task = build_task(load_suite(p).tasks[0])
    a0, a1 = task.examples[0].reference, task.examples[1].reference
    assert (a0, a1) == ("18", "3")  # GSM8K's first two test answers
    scored = task.score([[f"so #### {a0}", "#### 1"], ["#### 7", "it is 8"]], [[4, 2], [2, 3]])
    m = scored.metrics
    assert m["accuracy"].value == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert m["pass@1"].value == pytest.approx(0.25)
    assert m["pass@2"].value == pytest.approx(0.5)
    assert m["format_rate"].value == pytest.approx(0.75)  # three of four end in '#### N'
    assert m["completion_tokens"].value == pytest.approx(2.75)


def test_language_metrics_on_faroese(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("góðan\ndag\nfólk\n")
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"source": "Good day"}) + "\n")
    p = _suite(tmp_path, f"tasks:\n  - name: l\n    kind: language\n    path: {data}\n    language: "
                         f"{{wordlist: {words}, script: faroese_latin}}\n")
    task = build_task(load_suite(p).tasks[0])
    # words: godan (flattened góðan), dag (known), folk (flattened fólk), hus (unknown)
    scored = task.score([["godan dag folk hus"]], [[4]])
    assert scored.metrics["word_coverage"].value == pytest.approx(1 / 4)
    assert scored.metrics["ascii_flattened"].value == pytest.approx(2 / 4)
    scored = task.score([["góðan dag хорошо"]], [[4]])
    # letters: góðandag (8, Faroese Latin) + хорошо (6, Cyrillic)
    assert scored.metrics["script_purity"].value == pytest.approx(8 / 14)


def test_shipped_suites_load(tmp_path):
    gsm = load_suite(REPO / "configs" / "eval" / "gsm8k.yaml")
    assert [t.kind for t in gsm.tasks] == ["accuracy", "accuracy", "accuracy", "perplexity"]
    fo = load_suite(REPO / "configs" / "eval" / "faroese.yaml")
    task = build_task(fo.tasks[1])
    assert len(task.documents) == 650


def test_model_that_is_not_a_model(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelNotFoundError, match="is not a model: no config.json"):
        resolve_eval_model(str(tmp_path / "notes"))
    with pytest.raises(ModelNotFoundError, match="no such folder or built-in name"):
        resolve_eval_model("smollm3")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {path: tiny-random}\n")
    with pytest.raises(ModelNotFoundError, match="no model/ or adapter/"):
        resolve_eval_model(str(run))


def _adapter(folder, shapes: dict, base: str):
    import torch
    from safetensors.torch import save_file

    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 4}))
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(folder / "adapter_model.safetensors"))


def test_adapter_base_mismatch(tmp_path, tiny_model_path):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model_path)
    h, q = cfg.hidden_size, cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads)
    key = "base_model.model.model.layers.0.self_attn.q_proj"
    _adapter(tmp_path / "good", {f"{key}.lora_A.weight": [4, h], f"{key}.lora_B.weight": [q, 4]}, tiny_model_path)
    model = resolve_eval_model(str(tmp_path / "good"))
    assert (model.path, model.adapter) == (tiny_model_path, str((tmp_path / "good").resolve()))
    _adapter(tmp_path / "wide", {f"{key}.lora_A.weight": [4, 576], f"{key}.lora_B.weight": [576, 4]}, tiny_model_path)
    with pytest.raises(ModelNotFoundError, match=r"does not match base .*q_proj is \[64, 64\] in the base but the "
                                                 r"adapter expects \[576, 576\]"):
        resolve_eval_model(str(tmp_path / "wide"))
    other = "base_model.model.transformer.h.0.attn.c_attn"
    _adapter(tmp_path / "gpt2", {f"{other}.lora_A.weight": [4, h], f"{other}.lora_B.weight": [h, 4]}, tiny_model_path)
    with pytest.raises(ModelNotFoundError, match="the base has no layer transformer.h.0.attn.c_attn"):
        check_adapter_fits(tmp_path / "gpt2", __import__("pathlib").Path(tiny_model_path))


def test_a_prompt_too_long_for_the_engine_names_its_example(tmp_path, tiny_model_path):
    from transformers import AutoTokenizer

    from rlsys.eval.engine_tasks import prompt_items

    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"source": "short", "reference": "x"}) + "\n"
                    + json.dumps({"source": "word " * 300, "reference": "x"}) + "\n")
    p = _suite(tmp_path, f"tasks:\n  - {{name: t, kind: generation, path: {data}, max_new_tokens: 16}}\n")
    task = build_task(load_suite(p).tasks[0])
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    with pytest.raises(DataError, match=rf"{data}:2: the prompt is \d+ tokens; with max_new_tokens 16 it exceeds "
                                        r"the engine's max_model_len 128"):
        prompt_items(task, tok, 128)
    assert len(prompt_items(task, tok, 4096)) == 2
