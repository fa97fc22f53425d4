"""Plain-text sources for the language-modelling loss (L_PT), cut into token blocks.

A source is a `.txt` file, a `.jsonl` file with one text per line (field named in config),
or `reasoning_gym:FILE` for the public-domain text reasoning-gym ships (the default).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rlsys.data.sources import read_jsonl, read_text_lines
from rlsys.errors import DataError


def resolve_text_path(source: str) -> Path:
    if source.startswith("reasoning_gym:"):
        spec = importlib.util.find_spec("reasoning_gym")
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"lpt.source {source!r}: the reasoning-gym package is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / "data" / source.split(":", 1)[1]
    return Path(source)


def load_texts(source: str, text_field: str = "text") -> list[str]:
    path = resolve_text_path(source)
    if not path.is_file():
        raise DataError(f"lpt.source: text file {path} does not exist")
    if path.suffix != ".jsonl":
        text = "".join(line for _, line in read_text_lines(path))
        if not text.strip():
            raise DataError(f"lpt.source: {path} is empty")
        return [text]
    texts = []
    for lineno, row in read_jsonl(path):
        value = row.get(text_field)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path}:{lineno}: field {text_field!r} is missing or not a non-empty string")
        texts.append(value)
    if not texts:
        raise DataError(f"lpt.source: {path} has no rows")
    return texts


def token_blocks(texts: list[str], tokenizer, block_tokens: int) -> list[list[int]]:
    """Texts joined by EOS and cut into blocks of `block_tokens` (the last partial one dropped)."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False).input_ids)
        if eos is not None:
            ids.append(eos)
    blocks = [ids[i : i + block_tokens] for i in range(0, len(ids) - block_tokens + 1, block_tokens)]
    if not blocks:
        raise DataError(f"lpt.source has {len(ids)} tokens, fewer than one block of lpt.block_tokens={block_tokens}")
    return blocks


class BlockStream:
    """Endless, resumable walk over blocks; rank r of K reads blocks r, r+K, r+2K, ..."""

    def __init__(self, blocks: list[list[int]], rank: int = 0, world_size: int = 1) -> None:
        self.blocks = blocks[rank::world_size] or blocks
        self.position = 0

    def take(self, n: int) -> list[list[int]]:
        out = [self.blocks[(self.position + i) % len(self.blocks)] for i in range(n)]
        self.position += n
        return out
