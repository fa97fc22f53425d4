import json

import pytest

from rlsys.config import DataConfig
from rlsys.data.samplers import PromptSampler
from rlsys.data.sources import gsm8k_final_answer, load_gsm8k_jsonl, load_train_eval
from rlsys.errors import DataError

from ...conftest import DATA


def test_real_gsm8k_rows_load():
    tasks = load_gsm8k_jsonl(DATA / "gsm8k_sample.jsonl")
    assert len(tasks) == 40
    assert tasks[0].answer == "18"  # Janet's ducks
    assert all(t.answer.lstrip("-").replace(".", "").isdigit() for t in tasks)


def test_gsm8k_final_answer():
    assert gsm8k_final_answer("a\nb\n#### 1,000") == "1000"
    assert gsm8k_final_answer("no marker") is None


@pytest.mark.parametrize("line,message", [
    ('{"question": "q"}', "line 2: field 'answer' is missing"),
    ('{"question": "q", "answer": "no marker"}', "line 2: field 'answer' does not end in '#### <answer>'"),
    ("{not json", "line 2: not valid JSON"),
    ('["a"]', "line 2: expected a JSON object"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, line, message):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"question": "ok", "answer": "x #### 1"}) + "\n" + line + "\n")
    with pytest.raises(DataError) as err:
        load_gsm8k_jsonl(f)
    assert str(f) in str(err.value) and message.replace("line 2", ":2") in str(err.value).replace("line 2", ":2")


def test_missing_file():
    with pytest.raises(DataError, match="does not exist"):
        load_gsm8k_jsonl("/nonexistent/x.jsonl")


def test_train_and_eval_are_disjoint_for_reasoning_gym():
    train, held = load_train_eval(DataConfig(task="chain_sum", train_size=200, eval_size=30), seed=0)
    assert len(train) > 150 and len(held) == 30
    assert not {t.question for t in train} & {t.question for t in held}
    # A small problem space (one-digit pairs): the held-out set keeps its size, unique.
    small = DataConfig(task="chain_sum", train_size=500, eval_size=40,
                       task_kwargs={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    train, held = load_train_eval(small, seed=0)
    assert len(held) == 40 == len({t.question for t in held}) and train
    assert not {t.question for t in train} & {t.question for t in held}


def test_jsonl_split_and_datasets_source():
    cfg = DataConfig(source="gsm8k_jsonl", path=str(DATA / "gsm8k_sample.jsonl"), eval_size=10, train_size=100)
    train, held = load_train_eval(cfg, 0)
    assert len(held) == 10 and len(train) == 30
    cfg = DataConfig(source="datasets", path=str(DATA / "gsm8k_sample.jsonl"), eval_size=10, train_size=100)
    train2, held2 = load_train_eval(cfg, 0)
    assert [t.answer for t in held2] == [t.answer for t in held]


def test_sampler_is_resumable_and_covers_each_epoch():
    a = PromptSampler(10, seed=3)
    first = a.next(7)
    state = a.state_dict()
    rest = a.next(8)
    b = PromptSampler(10, seed=3)
    b.load_state_dict(state)
    assert b.next(8) == rest
    assert sorted(first + rest[:3]) == list(range(10))


def _row(q, a):
    return json.dumps({"question": q, "answer": f"work #### {a}"}, ensure_ascii=False)


def test_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + (_row("Hvussu nógv?", 3) + "\n" + _row("q2", 4) + "\n").encode("utf-8"))
    tasks = load_gsm8k_jsonl(f)
    assert [t.question for t in tasks] == ["Hvussu nógv?", "q2"] and [t.answer for t in tasks] == ["3", "4"]


def test_invalid_utf8_is_a_file_line_error(tmp_path):
    f = tmp_path / "latin1.jsonl"
    f.write_bytes((_row("q1", 1) + "\n").encode() + _row("Hvussu nógv?", 2).encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=rf"{f}:2: not valid UTF-8"):
        load_gsm8k_jsonl(f)
    with pytest.raises(DataError, match=rf"{f}:2: not valid UTF-8"):
        load_train_eval(DataConfig(source="datasets", path=str(f), eval_size=1), 0)
    from rlsys.data.text import load_texts

    txt = tmp_path / "t.txt"
    txt.write_bytes("line one\n".encode() + "tvær\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{txt}:2: not valid UTF-8"):
        load_texts(str(txt))


@pytest.mark.parametrize("source", ["gsm8k_jsonl", "datasets"])
def test_training_never_holds_a_held_out_question(tmp_path, source):
    f = tmp_path / "d.jsonl"
    rows = [_row(f"q{i}", i) for i in range(6)] + [_row("q1", 1), _row(" q0 ", 0), _row("q9", 9)]
    f.write_text("\n".join(rows) + "\n")
    train, held = load_train_eval(DataConfig(source=source, path=str(f), eval_size=2, train_size=100), 0)
    assert [t.question for t in held] == ["q0", "q1"]
    assert [t.question for t in train] == ["q2", "q3", "q4", "q5", "q9"]


def test_eval_path_is_a_separate_held_out_file(tmp_path):
    train_f, eval_f = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train_f.write_text("\n".join(_row(f"q{i}", i) for i in range(5)) + "\n")
    eval_f.write_text("\n".join(_row(q, 7) for q in ("q3", "t1", "t2")) + "\n")
    cfg = DataConfig(source="gsm8k_jsonl", path=str(train_f), eval_path=str(eval_f), eval_size=2, train_size=100)
    train, held = load_train_eval(cfg, 0)
    assert [t.question for t in held] == ["q3", "t1"]
    assert [t.question for t in train] == ["q0", "q1", "q2", "q4"]  # q3 is held out


def test_training_problems_can_be_a_narrower_kind_than_the_held_out_set():
    """train_task_kwargs: three-term sums to train on, two and three terms held out (terms
    counted in each question by a regular expression); a file source refuses the key."""
    import re

    kwargs = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1}
    cfg = DataConfig(task="chain_sum", task_kwargs=kwargs, train_task_kwargs={**kwargs, "min_terms": 3},
                     train_size=200, eval_size=60)
    train, held = load_train_eval(cfg, seed=0)

    def terms(question: str) -> int:
        return len(re.findall(r"\d+", question.split(":")[-1].split("=")[0]))

    assert {terms(t.question) for t in train} == {3}
    assert {terms(t.question) for t in held} == {2, 3}
    assert not {t.question for t in train} & {t.question for t in held}
    with pytest.raises(ValueError, match="train_task_kwargs"):
        DataConfig(source="gsm8k_jsonl", path="x.jsonl", train_task_kwargs={"min_terms": 3})
