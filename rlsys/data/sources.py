"""Load tasks (question, answer, metadata) from reasoning-gym, GSM8K-format JSONL or `datasets`.

Bad rows are reported with the file, the line and the missing field, before any actor starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlsys.config import DataConfig
from rlsys.errors import DataError


@dataclass
class Task:
    question: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)


def gsm8k_final_answer(solution: str) -> str | None:
    """The number after the last '####' of a GSM8K solution, without thousands separators."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def read_text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file; a leading byte-order mark is dropped and a line
    that is not UTF-8 is a `file:line` error, not a traceback."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {p} does not exist")
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{p}:{lineno}: not valid UTF-8 (byte {exc.start + 1} of the line: {exc.reason}); "
                                "re-save the file as UTF-8") from None
            yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSONL file."""
    for lineno, line in read_text_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def load_gsm8k_jsonl(path: str | Path, question_field: str = "question", answer_field: str = "answer") -> list[Task]:
    tasks = []
    for lineno, row in read_jsonl(path):
        for key in (question_field, answer_field):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(f"{path}:{lineno}: field {key!r} is missing or not a non-empty string")
        final = gsm8k_final_answer(row[answer_field])
        if final is None:
            raise DataError(f"{path}:{lineno}: field {answer_field!r} does not end in '#### <answer>'")
        tasks.append(Task(row[question_field], final, {"solution": row[answer_field], "where": f"{path}:{lineno}"}))
    if not tasks:
        raise DataError(f"data file {path} holds no rows")
    return tasks


def load_reasoning_gym(name: str, size: int, seed: int, **kwargs: Any) -> list[Task]:
    import reasoning_gym

    try:
        dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **kwargs)
    except Exception as exc:  # reasoning-gym raises several types for unknown names and bad kwargs
        raise DataError(f"reasoning-gym task {name!r} with {kwargs}: {exc}") from exc
    kept = ("expression", "answer_cot")  # what a worked solution is built from (rlsys.data.solutions)
    return [Task(str(e["question"]), str(e["answer"]),
                 {"source": name, "where": f"{name} task {i}", "reasoning_gym_metadata": e.get("metadata", {}),
                  **{k: e["metadata"][k] for k in kept if k in e.get("metadata", {})}})
            for i, e in enumerate(dataset)]


def load_datasets(path: str, question_field: str, answer_field: str) -> list[Task]:
    """Rows of a local JSONL/JSON/Parquet file or a `datasets` name; an answer ending in
    '#### N' (GSM8K style) is reduced to N."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":  # read here, so bad bytes and rows are named by line
        rows = [(f"{path}:{lineno}", row) for lineno, row in read_jsonl(path)]
    else:
        import datasets

        if suffix in (".json", ".parquet"):
            ds = datasets.load_dataset(suffix[1:], data_files=path, split="train")
        else:
            ds = datasets.load_dataset(path, split="train")
        rows = [(f"{path}: row {i + 1}", row) for i, row in enumerate(ds)]
    tasks = []
    for where, row in rows:
        for key in (question_field, answer_field):
            if row.get(key) in (None, ""):
                raise DataError(f"{where}: field {key!r} is missing or empty")
        answer = str(row[answer_field])
        tasks.append(Task(str(row[question_field]), gsm8k_final_answer(answer) or answer.strip(), {"where": where}))
    if not tasks:
        raise DataError(f"data file {path} holds no rows")
    return tasks


def _load_file(cfg: DataConfig, path: str) -> list[Task]:
    if cfg.source == "gsm8k_jsonl":
        return load_gsm8k_jsonl(path, cfg.question_field, cfg.answer_field)
    return load_datasets(path, cfg.question_field, cfg.answer_field)


def without_held_out(train: list[Task], evaluation: list[Task]) -> list[Task]:
    """Training tasks whose question is not in the held-out set (compared after trimming)."""
    held = {t.question.strip() for t in evaluation}
    return [t for t in train if t.question.strip() not in held]


def load_train_eval(cfg: DataConfig, seed: int) -> tuple[list[Task], list[Task]]:
    """Training tasks and a disjoint held-out evaluation set, each question inside
    `data.question_template`."""
    train, evaluation = _train_eval(cfg, seed)
    if cfg.question_template != "{question}":
        for t in train + evaluation:
            t.metadata["raw_question"] = t.question  # what a teacher's template sees as {raw_question}
            t.question = cfg.question_template.replace("{question}", t.question)
    return train, evaluation


def _train_eval(cfg: DataConfig, seed: int) -> tuple[list[Task], list[Task]]:
    if cfg.source == "reasoning_gym":
        # The held-out set comes first and training drops every question in it: small
        # problem spaces (one-digit sums) repeat questions across seeds.
        held = load_reasoning_gym(cfg.task, cfg.eval_size * 4, seed + 7919, **cfg.task_kwargs)
        evaluation = list({t.question: t for t in held}.values())[: cfg.eval_size]
        kwargs = cfg.task_kwargs if cfg.train_task_kwargs is None else cfg.train_task_kwargs
        train = without_held_out(load_reasoning_gym(cfg.task, cfg.train_size, seed, **kwargs), evaluation)
        if not train:
            raise DataError(f"reasoning-gym task {cfg.task!r}: every training problem is in the held-out set; "
                            "lower data.eval_size or widen data.task_kwargs (or data.train_task_kwargs)")
        return train, evaluation
    tasks = _load_file(cfg, cfg.path)
    if cfg.eval_path:
        evaluation = _load_file(cfg, cfg.eval_path)[: cfg.eval_size]
        train = tasks
    else:
        if len(tasks) < cfg.eval_size + 1:
            raise DataError(f"{cfg.path}: {len(tasks)} rows, need more than data.eval_size={cfg.eval_size}")
        evaluation, train = tasks[: cfg.eval_size], tasks[cfg.eval_size :]
    train = without_held_out(train, evaluation)
    if not train:
        raise DataError(f"{cfg.path}: every training question is also in the held-out set")
    return train[: cfg.train_size], evaluation
