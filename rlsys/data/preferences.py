"""Preference pairs (prompt, chosen, rejected) for DPO: read from JSONL or `datasets`, checked
row by row, and split into training and held-out pairs.

Every failed check is reported as `file:line: field: reason`. With `data.on_invalid: error`
the first failure stops the run (nothing is trained on a file with a bad row); with `drop`
the row is left out and counted under the first check it failed, and the summary says how
many rows went for which reason.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rlsys.config import DataConfig, PreferenceDataConfig
from rlsys.data.writing_systems import script_share
from rlsys.errors import DataError

FIELDS = ("prompt", "chosen", "rejected")
# The checks in the order they run; a dropped row counts under the first it fails.
REASONS = ("invalid_utf8", "invalid_json", "not_object", "missing_field", "not_string", "empty_field",
           "too_few_words", "too_many_tokens", "script", "chosen_equals_rejected", "duplicate")


@dataclass
class PreferencePair:
    prompt: str | list[dict]
    """The prompt text, or chat messages ending before the answer."""
    chosen: str
    rejected: str
    where: str

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else "\n".join(m["content"] for m in self.prompt)

    def to_row(self, names: tuple[str, str, str] = FIELDS) -> dict:
        return dict(zip(names, (self.prompt, self.chosen, self.rejected)))


@dataclass
class ValidationReport:
    rows: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """The first few failures, as `file:line: field: reason`."""

    def summary(self) -> str:
        parts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]))
        return f"{self.rows} preference rows: {self.kept} kept, {self.rows - self.kept} dropped" + (
            f" ({parts})" if parts else "")

    def to_dict(self) -> dict:
        return {"rows": self.rows, "kept": self.kept, "dropped": dict(self.dropped), "examples": self.examples}


class RowProblem(Exception):
    def __init__(self, reason: str, field_name: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.field_name, self.detail = reason, field_name, detail


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def read_raw_rows(path: str) -> Iterator[tuple[str, object]]:
    """(where, parsed object or RowProblem) for every non-blank line of a JSONL file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"preference file {p} does not exist")
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{p}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield where, RowProblem("invalid_utf8", "(row)", f"not valid UTF-8 (byte {exc.start + 1}: {exc.reason})")
                continue
            line = line.removeprefix("\ufeff") if lineno == 1 else line
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, RowProblem("invalid_json", "(row)", f"not valid JSON ({exc.msg})")


def read_dataset_rows(name: str, split: str) -> Iterator[tuple[str, object]]:
    import datasets

    suffix = Path(name).suffix.lower().lstrip(".")
    kind = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}.get(suffix)
    ds = datasets.load_dataset(kind, data_files=name, split="train") if kind else datasets.load_dataset(name, split=split)
    for i, row in enumerate(ds):
        yield f"{name}: row {i + 1}", row


def _text(value: object, field_name: str) -> str | list[dict]:
    """A field as text, or (prompt only) as chat messages; answers given as messages become
    the text of their assistant messages."""
    if value is None:
        raise RowProblem("missing_field", field_name, "missing")
    if isinstance(value, list):
        if not value or not all(isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m for m in value):
            raise RowProblem("not_string", field_name, "a list that is not chat messages ({role, content} with string content)")
        if field_name == "prompt":
            return [{"role": m["role"], "content": m["content"]} for m in value]
        answer = [m["content"] for m in value if m["role"] == "assistant"]
        if not answer:
            raise RowProblem("not_string", field_name, "chat messages without an assistant message")
        return "\n".join(answer)
    if not isinstance(value, str):
        raise RowProblem("not_string", field_name, f"expected text, got {type(value).__name__}")
    return value


def check_row(obj: object, cfg: PreferenceDataConfig, where: str, count_tokens: Callable | None) -> PreferencePair:
    """The row as a pair, or the RowProblem of the first check it fails (duplicates are
    checked by the caller, which sees every row)."""
    if isinstance(obj, RowProblem):
        raise obj
    if not isinstance(obj, dict):
        raise RowProblem("not_object", "(row)", f"expected a JSON object, got {type(obj).__name__}")
    names = dict(zip(FIELDS, (cfg.prompt_field, cfg.chosen_field, cfg.rejected_field)))
    values = {f: _text(obj.get(names[f]), names[f]) for f in FIELDS}
    pair = PreferencePair(values["prompt"], values["chosen"], values["rejected"], where)
    texts = {"prompt": pair.prompt_text(), "chosen": pair.chosen, "rejected": pair.rejected}
    for f in FIELDS:
        if not texts[f].strip():
            raise RowProblem("empty_field", names[f], "empty")
    for f in FIELDS:
        words, least = len(texts[f].split()), getattr(cfg.min_words, f)
        if words < least:
            raise RowProblem("too_few_words", names[f], f"{words} words, fewer than {least}")
    if count_tokens is not None and cfg.max_tokens is not None:
        tokens = count_tokens(pair)
        if tokens > cfg.max_tokens:
            raise RowProblem("too_many_tokens", "(row)", f"prompt + longer answer is {tokens} tokens, more than {cfg.max_tokens}")
    if cfg.script:
        for f in FIELDS:
            share = script_share(texts[f], cfg.script)
            if share < cfg.min_script_share:
                raise RowProblem("script", names[f], f"{share:.0%} of its letters are {cfg.script}, "
                                 f"fewer than {cfg.min_script_share:.0%}")
    if normalise(pair.chosen) == normalise(pair.rejected):
        raise RowProblem("chosen_equals_rejected", names["chosen"], "identical to the rejected answer")
    return pair


def validate_rows(rows: Iterator[tuple[str, object]], cfg: PreferenceDataConfig, on_invalid: str,
                  count_tokens: Callable | None = None) -> tuple[list[PreferencePair], ValidationReport]:
    report, pairs, seen = ValidationReport(), [], {}
    for where, obj in rows:
        report.rows += 1
        try:
            pair = check_row(obj, cfg, where, count_tokens)
            key = (normalise(pair.prompt_text()), normalise(pair.chosen), normalise(pair.rejected))
            if key in seen:
                raise RowProblem("duplicate", "(row)", f"the same pair as {seen[key]}")
            seen[key] = where
        except RowProblem as problem:
            message = f"{where}: {problem.field_name}: {problem.detail}"
            if on_invalid == "error":
                raise DataError(message + " (set data.on_invalid=drop to leave such rows out)") from None
            report.dropped[problem.reason] += 1
            if len(report.examples) < 20:
                report.examples.append(message)
            continue
        pairs.append(pair)
    report.kept = len(pairs)
    return pairs, report


def split_pairs(pairs: list[PreferencePair], heldout_fraction: float, seed: int
                ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Seeded (train, held-out) split by prompt: pairs that share a prompt stay on one side."""
    groups: dict[str, list[PreferencePair]] = {}
    for pair in pairs:
        groups.setdefault(normalise(pair.prompt_text()), []).append(pair)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    want = round(heldout_fraction * len(pairs))
    if heldout_fraction > 0 and len(keys) >= 2:
        want = max(1, want)
    heldout_keys, taken = set(), 0
    for key in keys:
        if taken >= want or len(heldout_keys) == len(keys) - 1:
            break
        heldout_keys.add(key)
        taken += len(groups[key])
    train = [p for p in pairs if normalise(p.prompt_text()) not in heldout_keys]
    heldout = [p for p in pairs if normalise(p.prompt_text()) in heldout_keys]
    return train, heldout


def load_preferences(data: DataConfig, seed: int, count_tokens: Callable | None = None
                     ) -> tuple[list[PreferencePair], list[PreferencePair], ValidationReport]:
    cfg = data.preferences
    rows = read_raw_rows(cfg.path) if cfg.path else read_dataset_rows(cfg.dataset, cfg.split)
    pairs, report = validate_rows(rows, cfg, data.on_invalid, count_tokens)
    source = cfg.path or cfg.dataset
    if not pairs:
        raise DataError(f"{source}: no usable preference rows; {report.summary()}; first problems: "
                        + "; ".join(report.examples[:5]))
    train, heldout = split_pairs(pairs, cfg.heldout_fraction, seed)
    return train, heldout, report


def write_pairs(path: str | Path, pairs: list[PreferencePair]) -> None:
    """Pairs as JSONL in the format `load_preferences` reads, written whole or not at all."""
    out = Path(path)
    tmp = out.with_name(out.name + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_row(), ensure_ascii=False) + "\n")
    tmp.rename(out)
