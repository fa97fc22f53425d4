"""Reading the run folder's JSONL logs (metrics, samples, data order, held-out samples).

Rows are split on "\\n" only: the writers keep sampled text as it is (`ensure_ascii=False`),
so a row may hold U+2028, U+0085 or other characters that `str.splitlines()` would take
for line ends. A writer killed mid-row leaves a torn last line (no closing newline): it is
dropped with a note, since the iteration it belonged to is redone or was never finished.
Any other row that is not a JSON object is damage, reported by file and line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from rlsys.errors import LogFileError


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_log_rows(path: Path, note: Callable[[str], None] = warn) -> list[dict]:
    """Every row of `path`, in order; a torn last line is dropped (and `note`d)."""
    return [row for _, row in read_log_lines(path, note)]


def read_log_lines(path: Path, note: Callable[[str], None] = warn) -> list[tuple[str, dict]]:
    """(line as written, row) for every row of `path`; a torn last line is dropped (and `note`d)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline, as every finished write does
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogFileError(f"{path}:{lineno}: not a JSON row ({exc.msg}); the log is damaged before its last "
                               "line: remove that line by hand, or start a new run") from None
        if not isinstance(row, dict):
            raise LogFileError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append((line, row))
    if torn.strip():
        try:  # a row whose write stopped just before its newline is whole
            row = json.loads(torn)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            return rows + [(torn, row)]
        note(f"rlsys: {path}: dropped its last line ({len(torn)} characters, no closing newline): a write "
             "cut short when the run stopped")
    return rows


def keep_log_lines(path: Path, keep: Callable[[dict], bool], note: Callable[[str], None] = warn) -> None:
    """Rewrite `path` with the rows `keep` accepts, each line as it was written; atomic (a crash
    leaves the old file or the new one), and the torn last line, if any, is gone after it."""
    lines = [line for line, row in read_log_lines(path, note) if keep(row)]
    tmp = path.with_suffix(path.suffix + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
