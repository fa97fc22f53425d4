"""`rlsys adapt-tokenizer` as a user runs it: a Faroese word list in, a resized model folder out."""

import json

from ..conftest import DATA
from .test_train_cli import rlsys


def test_adapt_tokenizer_writes_a_model_and_reports_readable_tokens(tmp_path, tiny_model_path):
    out = tmp_path / "adapted"
    run = rlsys("adapt-tokenizer", "--model", tiny_model_path, "--words", str(DATA / "faroese_words.txt"),
                "--num-tokens", "16", "--out", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["new_tokens"] == 16 and report["tokens_per_word_after"] < report["tokens_per_word_before"]
    assert not any("Ã" in t for t in report["examples"])  # decoded, not byte-level spellings
    assert any(ch in "".join(report["examples"]) for ch in "ðøáíóúýæ")
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()

    again = rlsys("adapt-tokenizer", "--model", tiny_model_path, "--words", str(DATA / "faroese_words.txt"),
                  "--out", str(out))
    assert again.returncode == 1 and "exists" in again.stderr
    missing = rlsys("adapt-tokenizer", "--model", tiny_model_path, "--words", str(tmp_path / "none.txt"),
                    "--out", str(tmp_path / "x"))
    assert missing.returncode == 1 and "apt-get install wfaroese" in missing.stderr
