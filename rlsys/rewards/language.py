"""Language fidelity for low-resource languages (Faroese by default).

Small models writing Faroese often replace its letters with ASCII look-alikes (ð->d, ø->o,
á->a, ...). The reward is the share of words found in a dictionary minus a penalty for
words that are not in it but are a dictionary word with its letters flattened to ASCII.
The default dictionary is the Debian `wfaroese` list (425k inflected forms).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from rlsys.errors import WordListError

FAROESE_WORDLIST = "/usr/share/dict/faroese"
FAROESE_LOOKALIKES = {"ð": "d", "ø": "o", "á": "a", "í": "i", "ó": "o", "ú": "u", "ý": "y", "æ": "a"}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def flatten(word: str, lookalikes: dict[str, str] = FAROESE_LOOKALIKES) -> str:
    return "".join(lookalikes.get(ch, ch) for ch in word)


@lru_cache(maxsize=4)
def load_lexicon(path: str = FAROESE_WORDLIST) -> tuple[frozenset[str], frozenset[str]]:
    """(words, flattened forms that differ from their word), lower-cased."""
    p = Path(path)
    if not p.is_file():
        hint = "Install it with `apt-get install wfaroese`, or pass" if path == FAROESE_WORDLIST else "Pass"
        raise WordListError(f"word list {p} not found. {hint} kwargs.wordlist: a file with one word per line.")
    words = frozenset(w.strip().lower() for w in p.read_text(encoding="utf-8").splitlines() if w.strip())
    flattened = frozenset(f for f in (flatten(w) for w in words) if f not in words)
    return words, flattened


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


def fidelity(text: str, words: frozenset[str], flattened: frozenset[str],
             coverage_weight: float = 1.0, lookalike_penalty: float = 1.0) -> float:
    found = words_of(text)
    if not found:
        return 0.0
    known = sum(w in words for w in found) / len(found)
    degraded = sum(w not in words and w in flattened for w in found) / len(found)
    return coverage_weight * known - lookalike_penalty * degraded


def language_fidelity(prompts: list[str], completions: list[str], answers: list[str],
                      wordlist: str = FAROESE_WORDLIST, coverage_weight: float = 1.0,
                      lookalike_penalty: float = 1.0, **_) -> list[float]:
    """Dictionary coverage minus the share of ASCII-flattened words, per completion."""
    words, flattened = load_lexicon(wordlist)
    return [fidelity(c, words, flattened, coverage_weight, lookalike_penalty) for c in completions]
