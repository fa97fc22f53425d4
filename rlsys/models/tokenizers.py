"""Tokenizer adaptation for a low-resource language: fewer tokens per word, same model.

`adapt_tokenizer` measures tokens per word on the language's words, picks frequent
substrings (letters such as ð and ø, and endings such as -inum) that the tokenizer splits
into several pieces, adds those that lower the count as new tokens, resizes the embeddings
and starts each new row at the mean of the rows of the pieces it replaces. The result is an
ordinary model folder: the learner and the vLLM engines both load it, so they agree on the
vocabulary. New tokens are new BPE merges (appended after the existing ones), not "added
tokens": those bypass byte-level decoding and would print ð as mojibake.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ASCII_LETTERS = set("abcdefghijklmnopqrstuvwxyz")


def tokens_per_word(tokenizer, words: list[str]) -> float:
    """Tokens per word of the words as running text (space-separated)."""
    if not words:
        return 0.0
    return len(tokenizer(" ".join(words), add_special_tokens=False).input_ids) / len(words)


def _backend_tokens_per_word(backend, text: str, n_words: int) -> float:
    return len(backend.encode(text, add_special_tokens=False).ids) / max(1, n_words)


def candidate_substrings(words: list[str], max_len: int = 6, top: int = 600) -> list[str]:
    """Frequent substrings with a non-ASCII letter, or word endings, ranked by frequency x
    length; a word's first letters are proposed with the space that precedes them in text."""
    counts: Counter[str] = Counter()
    for w in words:
        for n in range(1, max_len + 1):
            for i in range(0, len(w) - n + 1):
                piece = w[i : i + n]
                if not piece.isalpha():
                    continue
                if any(ch not in ASCII_LETTERS for ch in piece) or (n >= 3 and i + n == len(w)):
                    counts[(" " if i == 0 else "") + piece] += 1
    return [p for p, _ in sorted(counts.items(), key=lambda kv: -kv[1] * len(kv[0].strip()))[:top]]


@dataclass
class Adaptation:
    new_tokens: list[str]
    """Every vocabulary entry added (the tokenizer's own byte-level spelling)."""
    pieces: dict[str, list[int]]
    """Each new entry's pieces in the original vocabulary (for initialising its embedding)."""
    tokenizer_json: str
    tokens_per_word_before: float
    tokens_per_word_after: float


class _BpeExtension:
    """New merges appended after the existing ones (so they apply last): a candidate's
    original pieces p1..pk become p1p2, p1p2p3, ..., one new vocabulary entry per merge."""

    def __init__(self, tokenizer) -> None:
        from tokenizers import Tokenizer

        self.Tokenizer = Tokenizer
        self.original = tokenizer.backend_tokenizer
        self.data = json.loads(self.original.to_str())
        model = self.data["model"]
        if model.get("type") != "BPE":
            raise ValueError(f"the tokenizer adapter extends BPE tokenizers; this one is {model.get('type')}")
        self.pair_as_string = bool(model["merges"]) and isinstance(model["merges"][0], str)
        ids = list(model["vocab"].values()) + [t["id"] for t in self.data.get("added_tokens", [])]
        self.next_id = max(ids) + 1
        self.pieces: dict[str, list[int]] = {}

    def add(self, text: str) -> list[str]:
        """Add the merges for `text`; returns the new vocabulary entries (may be none)."""
        vocab, merges = self.data["model"]["vocab"], self.data["model"]["merges"]
        enc = self.original.encode(text, add_special_tokens=False)
        added = []
        current, ids = enc.tokens[0], [enc.ids[0]]
        for token, tid in zip(enc.tokens[1:], enc.ids[1:]):
            merges.append(f"{current} {token}" if self.pair_as_string else [current, token])
            current, ids = current + token, ids + [tid]
            if current not in vocab:
                vocab[current] = self.next_id
                self.next_id += 1
                self.pieces[current] = list(ids)
                added.append(current)
        return added

    def remove(self, text: str, added: list[str]) -> None:
        vocab, merges = self.data["model"]["vocab"], self.data["model"]["merges"]
        n = len(self.original.encode(text, add_special_tokens=False).tokens) - 1
        del merges[len(merges) - n :]
        for token in added:
            del vocab[token]
            del self.pieces[token]
        self.next_id -= len(added)

    def build(self):
        return self.Tokenizer.from_str(json.dumps(self.data))


def choose_new_tokens(tokenizer, words: list[str], num_tokens: int, seed: int = 0, sample: int = 4000) -> Adaptation:
    """Greedily keep the candidates whose merges lower tokens per word on a sample of the
    words, until `num_tokens` vocabulary entries are added."""
    rng = random.Random(seed)
    measure = rng.sample(words, min(sample, len(words)))
    text = " ".join(measure)
    ext = _BpeExtension(tokenizer)
    base = current = _backend_tokens_per_word(ext.original, text, len(measure))
    kept: list[str] = []
    for candidate in candidate_substrings(measure):
        if len(ext.pieces) >= num_tokens:
            break
        if len(ext.original.encode(candidate, add_special_tokens=False).ids) < 2:
            continue
        added = ext.add(candidate)
        if not added:
            ext.remove(candidate, added)
            continue
        score = _backend_tokens_per_word(ext.build(), text, len(measure))
        if score < current - 1e-9 and len(ext.pieces) <= num_tokens:
            kept.extend(added)
            current = score
        else:
            ext.remove(candidate, added)
    return Adaptation(kept, dict(ext.pieces), json.dumps(ext.data), base, current)


def resize_with_mean_init(model, pieces: dict[int, list[int]], new_size: int) -> None:
    """Grow the embeddings (and an untied output layer) to `new_size`; row i starts as the
    mean of the old rows `pieces[i]`."""
    import torch

    model.resize_token_embeddings(new_size, mean_resizing=False)
    tied = model.config.tie_word_embeddings
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        out = None if tied else model.get_output_embeddings().weight
        for idx, old in pieces.items():
            emb[idx] = emb[old].mean(0)
            if out is not None:
                out[idx] = out[old].mean(0)


def adapt_model(model_path: str, words: list[str], num_tokens: int, out_dir: str | Path, seed: int = 0) -> Adaptation:
    """Write an adapted copy of `model_path` to `out_dir` (via `out_dir.partial`, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output folder")
    old_tok = AutoTokenizer.from_pretrained(model_path)
    adaptation = choose_new_tokens(old_tok, words, num_tokens, seed)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    vocab = json.loads(adaptation.tokenizer_json)["model"]["vocab"]
    pieces = {vocab[t]: ids for t, ids in adaptation.pieces.items()}
    new_size = max(model.get_input_embeddings().weight.shape[0], max(pieces, default=-1) + 1)
    resize_with_mean_init(model, pieces, new_size)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    old_tok.save_pretrained(tmp)
    # The saved tokenizer.json is what AutoTokenizer (and vLLM) load: replace it with the
    # extended one.
    (tmp / "tokenizer.json").write_text(adaptation.tokenizer_json, encoding="utf-8")
    tmp.rename(out)
    return adaptation


def read_words(path: str | Path, limit: int | None = None, seed: int = 0) -> list[str]:
    p = Path(path)
    if not p.is_file():
        hint = " (Faroese: `apt-get install wfaroese` gives /usr/share/dict/faroese)"
        raise FileNotFoundError(f"word list {p} not found{hint}")
    words = [w.strip().lower() for w in p.read_text(encoding="utf-8").splitlines() if w.strip()]
    if limit and len(words) > limit:
        words = random.Random(seed).sample(words, limit)
    return words
