"""Worked solutions for make-teacher, and the seed table's mean and spread (numbers by hand)."""

import pytest

from rlsys.data.solutions import chain_sum_solution, worked_solution
from rlsys.data.sources import Task, load_reasoning_gym
from rlsys.errors import DataError
from rlsys.observability.seed_summary import markdown_table, seed_summary


def test_chain_sum_solution_steps_left_to_right():
    assert chain_sum_solution("0 - 4 - 8") == "0 - 4 = -4, -4 - 8 = -12. So the answer is -12."
    assert chain_sum_solution("5 + 7 + 6") == "5 + 7 = 12, 12 + 6 = 18. So the answer is 18."
    assert chain_sum_solution("9 - 3") == "9 - 3 = 6. So the answer is 6."


def test_chain_sum_solutions_end_in_reasoning_gyms_answers():
    tasks = load_reasoning_gym("chain_sum", 50, 3, min_terms=2, max_terms=4, min_digits=1, max_digits=2)
    for t in tasks:
        assert worked_solution(t).endswith(f"So the answer is {t.answer}.")


def test_other_sources_and_refusals():
    assert worked_solution(Task("q", "3", {"solution": "1 + 2 = 3\n#### 3"})) == "1 + 2 = 3\n#### 3"
    gsm = load_reasoning_gym("gsm_symbolic", 2, 0)[0]
    assert worked_solution(gsm).rstrip().endswith(f"#### {gsm.answer}")
    with pytest.raises(DataError, match="basic_arithmetic task 0: no worked solution"):
        worked_solution(load_reasoning_gym("basic_arithmetic", 1, 0)[0])
    with pytest.raises(DataError, match="not a chain"):
        chain_sum_solution("3 * 4")


def test_seed_summary_mean_sd_and_change():
    runs = {
        0: {"eval_before": {"accuracy": 0.30, "n": 100}, "eval_after": {"accuracy": 0.40, "n": 100}, "wall_seconds": 100},
        1: {"eval_before": {"accuracy": 0.30, "n": 100}, "eval_after": {"accuracy": 0.50, "n": 100}, "wall_seconds": 110},
        2: {"eval_before": {"accuracy": 0.30, "n": 100}, "eval_after": {"accuracy": 0.60, "n": 100}, "wall_seconds": 120},
    }
    s = seed_summary(runs)
    assert "n" not in s
    assert s["accuracy"]["after"]["mean"] == pytest.approx(0.5)
    assert s["accuracy"]["after"]["sd"] == pytest.approx(0.1)  # sqrt((0.01 + 0 + 0.01) / 2)
    assert s["accuracy"]["change"]["mean"] == pytest.approx(0.2)
    assert (s["accuracy"]["change"]["min"], s["accuracy"]["change"]["max"]) == pytest.approx((0.1, 0.3))
    assert s["wall_seconds"]["after"]["mean"] == pytest.approx(110)
    table = markdown_table(s, [0, 1, 2], "demo")
    assert "| accuracy | 0.300 ± 0.000 [0.300, 0.300] | 0.500 ± 0.100 [0.400, 0.600] | 0.200 ± 0.100 [0.100, 0.300] |" in table


def test_seed_summary_one_run_is_labelled():
    s = seed_summary({0: {"eval_before": {"accuracy": 0.3}, "eval_after": {"accuracy": 0.4}}})
    assert "(one run)" in markdown_table(s, [0], "demo")


def test_question_template_wraps_train_and_held_out(tmp_path):
    import json

    from rlsys.config import Config, ConfigError  # noqa: F401
    from rlsys.data.sources import load_train_eval

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"source": f"word {i}", "reference": f"orð {i}"}) + "\n" for i in range(5)))
    cfg = Config.model_validate({"data": {"source": "datasets", "path": str(path), "question_field": "source",
                                          "answer_field": "reference", "eval_size": 2,
                                          "question_template": "Translate: {question}"}}).data
    train, held = load_train_eval(cfg, 0)
    assert [t.question for t in held] == ["Translate: word 0", "Translate: word 1"]
    assert [t.question for t in train] == ["Translate: word 2", "Translate: word 3", "Translate: word 4"]
    assert held[0].answer == "orð 0"
    with pytest.raises(Exception, match="must contain"):
        Config.model_validate({"data": {"question_template": "no slot"}})


def test_prompt_ids_get_a_bos_only_without_a_chat_template():
    from transformers import AutoTokenizer

    from rlsys.data.templates import prompt_token_ids, render_prompt
    from rlsys.models.catalog import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    text = render_prompt(tok, "What is 2 + 3?", "plain", "")
    assert text.startswith("<|im_start|>user")  # the chat template wrote the turn markers
    ids = prompt_token_ids(tok, text)
    assert tok.decode(ids) == text  # nothing added in front of what the template wrote
    tok.chat_template = None
    tok.bos_token = "<|im_start|>"
    tok.add_bos_token = True
    plain = render_prompt(tok, "What is 2 + 3?", "plain", "")
    assert plain == "What is 2 + 3?\n"
    ids = prompt_token_ids(tok, plain)
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.decode(ids[1:]) == plain
