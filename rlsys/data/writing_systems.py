"""Writing systems for script-purity checks: which letters belong to a script, and the
share of a text's letters that do.

Only letters count (digits, punctuation, spaces and symbols are neutral), so "2 + 3 = 5"
neither passes nor fails a script; a text with no letters has share 1.0.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

# Modern Mongolian is written in Cyrillic with two extra vowels, Ө ө and Ү ү (both in the
# Cyrillic block, U+04E8/9 and U+04AE/F); the traditional script is U+1800-U+18AF.
_CYRILLIC = (0x0400, 0x04FF)
_MONGOLIAN_CYRILLIC_EXTRA = set("ӨөҮү")
_MONGOLIAN = (0x1800, 0x18AF)
_FAROESE_EXTRA = set("ÁáÐðÍíÓóÚúÝýÆæØø")


def _in(ch: str, block: tuple[int, int]) -> bool:
    return block[0] <= ord(ch) <= block[1]


def _basic_latin(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _latin(ch: str) -> bool:
    return _basic_latin(ch) or unicodedata.name(ch, "").startswith("LATIN ")


SCRIPTS: dict[str, Callable[[str], bool]] = {
    "mongolian_cyrillic": lambda ch: _in(ch, _CYRILLIC) or ch in _MONGOLIAN_CYRILLIC_EXTRA,
    "mongolian_traditional": lambda ch: _in(ch, _MONGOLIAN),
    "latin": _latin,
    "faroese_latin": lambda ch: _basic_latin(ch) or ch in _FAROESE_EXTRA,
}


def script_share(text: str, script: str) -> float:
    """Share of the letters of `text` that belong to `script` (1.0 when it has no letters)."""
    if script not in SCRIPTS:
        raise ValueError(f"unknown script {script!r}; known: {', '.join(SCRIPTS)}")
    belongs = SCRIPTS[script]
    # Traditional Mongolian letters are category Lo; combining marks (Mn) such as its
    # free variation selectors are not letters of their own.
    letters = [ch for ch in text if unicodedata.category(ch).startswith("L")]
    if not letters:
        return 1.0
    return sum(1 for ch in letters if belongs(ch)) / len(letters)
