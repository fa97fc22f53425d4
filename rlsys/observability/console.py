"""What the terminal shows by default: rlsys's own lines. The output of vLLM, Ray, DeepSpeed,
transformers and torch (warnings, loading bars, kernel notes) goes to files in the run folder's
`logs/`, counted and named at the end; `tracking.console_level: verbose` (`--verbose`) lets it
through instead."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

LOGS = "logs"
DRIVER_LOG = "driver.log"
THIRD_PARTY_LOGGERS = ("ray", "vllm", "deepspeed", "DeepSpeed", "transformers", "torch", "datasets", "accelerate", "peft",
                       "urllib3", "filelock", "huggingface_hub")
WARNING_LINE = re.compile(r"\bWARN(ING)?\b|Warning:|\[W\d{4} ", re.IGNORECASE)
ERROR_LINE = re.compile(r"\bERROR\b|Traceback \(most recent call last\)|^\w*(Error|Exception):|\[E\d{4} ")


def log_dir(run_dir: str | Path, console_level: str) -> str | None:
    """Where the actors of a quiet run write their output (absolute, so every actor finds it);
    None when the terminal should get everything."""
    return None if console_level == "verbose" else str(Path(run_dir).resolve() / LOGS)


def send_output_to(path: Path) -> None:
    """This process's stdout and stderr, and so those of the processes it starts later (vLLM's
    engine core and workers), appended to `path`. Never fails the caller: output stays where it
    was when the file cannot be opened."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


@contextmanager
def driver_output_held(path: Path | None):
    """While the run folder does not exist yet (model conversion, tokenizers, data): the driver's
    own output, at file-descriptor level (loading bars, library warnings), into `path`; rlsys's
    lines from it are repeated on the terminal afterwards. Nothing is held when `path` is None."""
    if path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    send_output_to(path)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        ours = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("rlsys:")]
        if failed:
            ours.append(f"rlsys: what the libraries printed meanwhile is in {path}")
        if ours:
            print("\n".join(ours), file=sys.stderr, flush=True)


def quiet_driver(logs: Path, held: Path | None = None) -> None:
    """The driver's third-party logging and Python warnings into `logs/driver.log`, after what
    was `held` before the run folder existed; rlsys's own prints and errors are untouched."""
    logs.mkdir(parents=True, exist_ok=True)
    if held is not None and held.is_file():
        with (logs / DRIVER_LOG).open("a") as f:
            f.write(held.read_text(errors="replace"))
        held.unlink()
    handler = logging.FileHandler(logs / DRIVER_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in (*THIRD_PARTY_LOGGERS, "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the driver's loading bars (tokenizers, datasets)


def count_lines(logs: Path) -> dict[str, int]:
    """Warning and error lines over every log file in `logs`."""
    counts = {"files": 0, "warnings": 0, "errors": 0}
    for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        counts["files"] += 1
        with path.open(errors="replace") as f:
            for line in f:
                counts["errors"] += bool(ERROR_LINE.search(line))
                counts["warnings"] += bool(WARNING_LINE.search(line))
    return counts


def logs_line(logs: Path) -> str:
    c = count_lines(logs)
    return (f"rlsys: logs of vLLM, Ray, DeepSpeed and transformers: {logs} ({c['files']} files, "
            f"{c['warnings']} warning lines, {c['errors']} error lines; `--verbose` shows them here)")


def error_excerpt(logs: Path, max_lines: int = 40) -> list[str]:
    """The last error of each log file that has one (its traceback up to its last line): what a
    failed run shows on the terminal so that the cause is not hidden in a file."""
    out: list[str] = []
    for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        lines = path.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(lines) if ERROR_LINE.search(line)]
        if not hits:
            continue
        last = hits[-1]
        starts = [i for i in range(max(0, last - max_lines), last + 1) if "Traceback (most recent" in lines[i]]
        out += [f"--- {path} ---", *lines[starts[0] if starts else last:last + 1]]
    return out
