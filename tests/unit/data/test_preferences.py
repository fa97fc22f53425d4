"""Preference data: reading, every validation rule with exact drop counts (on a Mongolian
file the test writes), file:line errors, the seeded split, chat-form rows, scripts."""

import json

import pytest

from rlsys.config import DataConfig, PreferenceDataConfig
from rlsys.data.preferences import load_preferences, read_raw_rows, split_pairs, validate_rows, PreferencePair
from rlsys.data.writing_systems import script_share
from rlsys.errors import DataError

# Modern Mongolian (Cyrillic with Ө ө Ү ү).
PROMPTS = [
    "Монгол орны нийслэл хотын тухай товч ярина уу?",
    "Өвлийн улиралд малчид юу хийдэг вэ, тайлбарлана уу?",
    "Үндэсний баяр наадмын тухай хэдэн үг хэлнэ үү?",
    "Говийн бүсийн уур амьсгалыг тайлбарлаж өгнө үү?",
]
CHOSEN = ("Улаанбаатар бол Монгол Улсын нийслэл бөгөөд хамгийн том хот юм. Энэ хот Туул голын хөндийд оршдог. "
          "Хотод олон сургууль, их сургууль, музей, театр байдаг. Өвөл нь маш хүйтэн, зун нь сэрүүн, тааламжтай.")
REJECTED = "Би мэдэхгүй. Энэ талаар юу ч хэлж чадахгүй, уучлаарай, өөр асуулт асуугаарай."
LATIN = ("Ulaanbaatar is the capital and the largest city of Mongolia. It lies in the valley of the Tuul river, "
         "and it has many schools, universities, museums and theatres; winters are cold.")
MIXED = " ".join(a if i % 2 else b for i, (a, b) in enumerate(zip(CHOSEN.split(), LATIN.split())))


def _line(prompt=PROMPTS[0], chosen=CHOSEN, rejected=REJECTED, **extra) -> bytes:
    row = {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def _mongolian_file(path):
    lines = [
        _line(PROMPTS[0]),                                             # 1 kept
        _line(PROMPTS[1]),                                             # 2 kept
        _line(PROMPTS[2]),                                             # 3 kept
        _line(PROMPTS[3]),                                             # 4 kept
        b"[1, 2]",                                                     # 5 not_object
        b'{"prompt": ',                                                # 6 invalid_json
        _line(PROMPTS[0]).replace("Монгол".encode(), b"\xff\xfe", 1),  # 7 invalid_utf8
        json.dumps({"prompt": PROMPTS[0], "chosen": CHOSEN}, ensure_ascii=False).encode(),  # 8 missing_field
        _line(chosen=42),                                              # 9 not_string
        _line(prompt="   "),                                           # 10 empty_field
        _line(prompt="Нийслэл юу вэ?"),                                # 11 too_few_words (3 < 5)
        _line(chosen=LATIN),                                           # 12 script
        _line(rejected="  " + CHOSEN.replace(" ", "   \t") + "\n"),   # 13 chosen_equals_rejected
        _line(PROMPTS[0]),                                             # 14 duplicate of line 1
        _line(chosen=MIXED),                                           # 15 script (half Latin)
        _line(chosen=CHOSEN + " " + " ".join(["үнэхээр"] * 60)),      # 16 too_many_tokens
        b"",                                                           # blank: not a row
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _cfg(path, **kw) -> DataConfig:
    prefs = {"path": str(path), "script": "mongolian_cyrillic", "max_tokens": 70, **kw}
    return DataConfig(preferences=PreferenceDataConfig(**prefs), on_invalid="drop")


def _words(pair: PreferencePair) -> int:
    """A stand-in token count for the test: words of the prompt plus the longer answer."""
    return len(pair.prompt_text().split()) + max(len(pair.chosen.split()), len(pair.rejected.split()))


def test_mongolian_file_drops_exactly_the_bad_rows(tmp_path):
    path = _mongolian_file(tmp_path / "mn.jsonl")
    train, heldout, report = load_preferences(_cfg(path, heldout_fraction=0.0), seed=0, count_tokens=_words)
    assert report.rows == 16 and report.kept == 4
    assert dict(report.dropped) == {
        "not_object": 1, "invalid_json": 1, "invalid_utf8": 1, "missing_field": 1, "not_string": 1,
        "empty_field": 1, "too_few_words": 1, "script": 2, "chosen_equals_rejected": 1, "duplicate": 1,
        "too_many_tokens": 1,
    }
    assert [p.where for p in train] == [f"{path}:{n}" for n in (1, 2, 3, 4)] and heldout == []
    by_line = {e.split(": ", 1)[0].rsplit(":", 1)[1]: e for e in report.examples}
    assert by_line["5"] == f"{path}:5: (row): expected a JSON object, got list"
    assert by_line["8"] == f"{path}:8: rejected: missing"
    assert by_line["9"] == f"{path}:9: chosen: expected text, got int"
    assert by_line["11"] == f"{path}:11: prompt: 3 words, fewer than 5"
    assert by_line["12"].startswith(f"{path}:12: chosen: 0% of its letters are mongolian_cyrillic")
    assert by_line["14"] == f"{path}:14: (row): the same pair as {path}:1"
    assert "UTF-8" in by_line["7"] and "(row)" in by_line["7"]
    assert report.summary().startswith("16 preference rows: 4 kept, 12 dropped (script 2,")


def test_on_invalid_error_names_the_first_bad_row(tmp_path):
    path = _mongolian_file(tmp_path / "mn.jsonl")
    cfg = _cfg(path).model_copy(update={"on_invalid": "error"})
    with pytest.raises(DataError, match=rf"^{path}:5: \(row\): expected a JSON object, got list"):
        load_preferences(cfg, seed=0, count_tokens=_words)


def test_configurable_fields_minimum_words_and_byte_order_mark(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"q": f"вопрос number {i} with enough words", "good": "a b c d", "bad": "x y"} for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode() + b"\n")
    prefs = PreferenceDataConfig(path=str(path), prompt_field="q", chosen_field="good", rejected_field="bad",
                                 min_words={"prompt": 5, "chosen": 4, "rejected": 2}, heldout_fraction=0.0)
    train, _, report = load_preferences(DataConfig(preferences=prefs), seed=0)
    assert report.kept == 3 and train[0].prompt == "вопрос number 0 with enough words"
    strict = prefs.model_copy(update={"min_words": prefs.min_words.model_copy(update={"chosen": 5})})
    with pytest.raises(DataError, match=rf"{path}:1: good: 4 words, fewer than 5"):
        load_preferences(DataConfig(preferences=strict), seed=0)


def test_chat_form_rows(tmp_path):
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two three four five"}]
    rows = [(f"{tmp_path}:1", {"prompt": prompt, "chosen": [{"role": "assistant", "content": "good answer here"}],
                               "rejected": [{"role": "assistant", "content": "bad"}]}),
            (f"{tmp_path}:2", {"prompt": prompt, "chosen": [{"role": "user"}], "rejected": "x"})]
    cfg = PreferenceDataConfig(min_words={"prompt": 1, "chosen": 1, "rejected": 1})
    pairs, report = validate_rows(iter(rows), cfg, "drop")
    assert len(pairs) == 1 and pairs[0].prompt == prompt and pairs[0].chosen == "good answer here"
    assert pairs[0].prompt_text() == "Be brief.\none two three four five"
    assert report.examples == [f"{tmp_path}:2: chosen: a list that is not chat messages ({{role, content}} with "
                               "string content)"]


def test_split_is_seeded_and_keeps_a_prompt_on_one_side():
    pairs = [PreferencePair(f"prompt {p}", f"good {k}", "bad", f"f:{p}{k}") for p in range(10) for k in range(3)]
    train, heldout = split_pairs(pairs, 0.2, seed=3)
    assert len(heldout) == 6 and len(train) == 24
    assert not {p.prompt for p in train} & {p.prompt for p in heldout}
    assert split_pairs(pairs, 0.2, seed=3) == (train, heldout)
    assert {p.prompt for p in split_pairs(pairs, 0.2, seed=4)[1]} != {p.prompt for p in heldout}
    # A tiny file still holds one prompt out and keeps one for training.
    two = pairs[:3] + pairs[3:4]
    tr, ho = split_pairs(two, 0.1, seed=0)
    assert len({p.prompt for p in tr}) == 1 and len({p.prompt for p in ho}) == 1


def test_scripts():
    assert script_share("Өглөөний Үүр", "mongolian_cyrillic") == 1.0
    assert script_share("ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ", "mongolian_traditional") == 1.0
    assert script_share("ᠮᠣᠩᠭᠣᠯ", "mongolian_cyrillic") == 0.0
    assert script_share("Eg eri føroyingur, úti á bygd", "faroese_latin") == 1.0
    assert script_share("Eg eri ß", "faroese_latin") == pytest.approx(5 / 6)  # ß is not Faroese
    assert script_share("2 + 3 = 5", "latin") == 1.0  # no letters: neutral
    assert script_share("abc где", "latin") == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="unknown script"):
        script_share("x", "klingon")


def test_rows_are_read_with_their_line_numbers(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n')
    assert [(w, o) for w, o in read_raw_rows(str(path))] == [(f"{path}:1", {"a": 1}), (f"{path}:3", {"b": 2})]
