"""Faroese language fidelity and the tokenizer adapter."""

from pathlib import Path

import pytest

from rlsys.rewards.language import flatten, language_fidelity, load_lexicon
from rlsys.errors import WordListError

WORDS = Path(__file__).resolve().parents[2] / "data" / "faroese_words.txt"


def test_flatten_replaces_faroese_letters_with_ascii_lookalikes():
    assert flatten("fjørður") == "fjordur"
    assert flatten("høvdingur") == "hovdingur"


def test_fidelity_rewards_dictionary_words_and_penalises_ascii_lookalikes():
    r = language_fidelity([], ["við og tað", "vid og tad", "hello world", "", "Bátur, 12 bátinum!"], [],
                          wordlist=str(WORDS))
    assert r[0] == 1.0
    assert r[1] == pytest.approx(1 / 3 - 2 / 3)  # "og" known; "vid", "tad" are flattened Faroese
    assert r[2] == 0.0  # unknown words, but not Faroese look-alikes
    assert r[3] == 0.0
    assert r[4] == 1.0  # case, digits and punctuation ignored
    half = language_fidelity([], ["vid og"], [], wordlist=str(WORDS), coverage_weight=1.0, lookalike_penalty=0.5)
    assert half == [pytest.approx(0.5 - 0.25)]


def test_missing_word_list_says_how_to_install_it(tmp_path, monkeypatch):
    import rlsys.rewards.language as language

    # The default list is missing (as on a machine without wfaroese): the error says how to
    # install it. Pointing the default at a missing path makes this hold on every machine.
    default = str(tmp_path / "dict" / "faroese")
    monkeypatch.setattr(language, "FAROESE_WORDLIST", default)
    with pytest.raises(WordListError, match=r"not found\. Install it with `apt-get install wfaroese`"):
        load_lexicon(default)
    # Another missing file: no apt hint, but how to pass one.
    with pytest.raises(WordListError) as err:
        load_lexicon(str(tmp_path / "none.txt"))
    assert "kwargs.wordlist" in str(err.value) and "apt-get" not in str(err.value)


def test_tokenizer_adapter_lowers_tokens_per_word_and_inits_rows_from_pieces(tiny_model_path, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.models.tokenizers import adapt_model, read_words, tokens_per_word

    words = read_words(WORDS)
    result = adapt_model(tiny_model_path, words, num_tokens=24, out_dir=tmp_path / "adapted")
    assert 0 < len(result.new_tokens) <= 24
    assert result.tokens_per_word_after < result.tokens_per_word_before
    old_tok = AutoTokenizer.from_pretrained(tiny_model_path)
    new_tok = AutoTokenizer.from_pretrained(tmp_path / "adapted")
    assert tokens_per_word(new_tok, words) == pytest.approx(result.tokens_per_word_after, rel=0.05)
    assert len(new_tok) == len(old_tok) + len(result.new_tokens)
    # Text round-trips through the new tokenizer.
    assert new_tok.decode(new_tok("fjørðinum við húsið", add_special_tokens=False).input_ids) == "fjørðinum við húsið"
    old = AutoModelForCausalLM.from_pretrained(tiny_model_path).get_input_embeddings().weight
    new = AutoModelForCausalLM.from_pretrained(tmp_path / "adapted").get_input_embeddings().weight
    assert new.shape[0] == len(new_tok)
    assert torch.equal(new[: old.shape[0]], old)
    for token in result.new_tokens:
        pieces = result.pieces[token]
        assert len(pieces) >= 2 and max(pieces) < old.shape[0]
        assert torch.allclose(new[new_tok.convert_tokens_to_ids(token)], old[pieces].mean(0), atol=1e-6)
    # Words the adapter targeted really use the new entries.
    ids = new_tok(" ".join(words), add_special_tokens=False).input_ids
    assert any(i >= old.shape[0] for i in ids)
    with pytest.raises(FileExistsError):
        adapt_model(tiny_model_path, words, 4, tmp_path / "adapted")
