"""Extracting and comparing final answers in completions."""

from __future__ import annotations

import re

ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)
HASHES = re.compile(r"####\s*([^\n]*)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_answer(text: str, strict: bool = False) -> str | None:
    """The answer inside the last <answer> tag, else after the last '####'; unless
    `strict`, fall back to the last number in the text."""
    tagged = ANSWER_TAG.findall(text)
    if tagged:
        return tagged[-1].strip()
    hashed = HASHES.findall(text)
    if hashed:
        return hashed[-1].strip()
    if strict:
        return None
    numbers = NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _as_number(text: str) -> float | None:
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    match = NUMBER.fullmatch(cleaned)
    if match is None:
        # An answer like "= 42" or "42 apples": take its only number.
        found = NUMBER.findall(cleaned)
        if len(found) != 1:
            return None
        cleaned = found[0].replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def answers_match(predicted: str | None, reference: str) -> bool:
    if predicted is None:
        return False
    a, b = _as_number(predicted), _as_number(reference)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return predicted.strip().lower() == reference.strip().lower()
