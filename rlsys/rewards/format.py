"""Format rewards: the XML answer layout (or a '####' line), and reasoning being present.

A completion is well formatted only if it has exactly the layout asked for: one
reasoning block then one answer block and nothing else (XML), or one final line
'#### N' with a number (hash). Stray closing tags, a second answer block or '#### ???'
do not count.
"""

from __future__ import annotations

import re

# Block contents may not themselves contain <reasoning>/<answer> tags.
_BODY = r"((?:(?!</?(?:reasoning|answer)>).)+)"
XML_LAYOUT = re.compile(rf"^\s*<reasoning>{_BODY}</reasoning>\s*<answer>{_BODY}</answer>\s*$", re.DOTALL)
HASH_LAYOUT = re.compile(r"####[ \t]*[-+]?\$?\d[\d,]*(?:\.\d+)?[ \t]*$")
REASONING = re.compile(r"<reasoning>(.*?)</reasoning>", re.DOTALL)
STYLES = ("xml", "hash", "any")


def is_well_formatted(completion: str, style: str) -> bool:
    if style not in STYLES:
        raise ValueError(f"format style {style!r}: use one of {', '.join(STYLES)}")
    xml = XML_LAYOUT.match(completion) is not None
    hashed = completion.count("####") == 1 and HASH_LAYOUT.search(completion.rstrip()) is not None
    return {"xml": xml, "hash": hashed, "any": xml or hashed}[style]


def format_reward(prompts: list[str], completions: list[str], answers: list[str], style: str = "xml", **_) -> list[float]:
    """1.0 for a completion that is exactly <reasoning>..</reasoning><answer>..</answer>
    (style 'xml', the default), ends in one '#### N' line (style 'hash'), or either
    (style 'any'). A run's reward worker picks the style of `data.template` unless the
    reward's kwargs name one."""
    return [float(is_well_formatted(c, style)) for c in completions]


def reasoning_present(prompts: list[str], completions: list[str], answers: list[str], min_chars: int = 10, **_) -> list[float]:
    """1.0 when the completion holds a reasoning block of at least `min_chars` characters."""
    out = []
    for c in completions:
        blocks = REASONING.findall(c)
        out.append(float(any(len(b.strip()) >= min_chars for b in blocks)))
    return out
