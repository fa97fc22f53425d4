"""Format rewards: the XML answer layout (or a '####' line), and reasoning being present."""

from __future__ import annotations

import re

XML_LAYOUT = re.compile(r"^\s*<reasoning>(.+?)</reasoning>\s*<answer>(.+?)</answer>\s*$", re.DOTALL)
HASH_LAYOUT = re.compile(r"####\s*\S+\s*$")
REASONING = re.compile(r"<reasoning>(.*?)</reasoning>", re.DOTALL)


def format_reward(prompts: list[str], completions: list[str], answers: list[str], style: str = "any", **_) -> list[float]:
    """1.0 for a completion that is exactly <reasoning>..</reasoning><answer>..</answer>
    (style 'xml'), ends in '#### N' (style 'hash'), or either (style 'any')."""
    out = []
    for c in completions:
        xml = XML_LAYOUT.match(c) is not None
        hashed = HASH_LAYOUT.search(c) is not None
        ok = {"xml": xml, "hash": hashed, "any": xml or hashed}[style]
        out.append(float(ok))
    return out


def reasoning_present(prompts: list[str], completions: list[str], answers: list[str], min_chars: int = 10, **_) -> list[float]:
    """1.0 when the completion holds a reasoning block of at least `min_chars` characters."""
    out = []
    for c in completions:
        blocks = REASONING.findall(c)
        out.append(float(any(len(b.strip()) >= min_chars for b in blocks)))
    return out
