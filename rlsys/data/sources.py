"""Load tasks (question, answer, metadata) from reasoning-gym, GSM8K-format JSONL or `datasets`.

Bad rows are reported with the file, the line and the missing field, before any actor starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlsys.config import DataConfig


class DataError(ValueError):
    pass


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


def load_gsm8k_jsonl(path: str | Path, question_field: str = "question", answer_field: str = "answer") -> list[Task]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {p} does not exist")
    tasks = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for key in (question_field, answer_field):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise DataError(f"{p}:{lineno}: field {key!r} is missing or not a non-empty string")
            final = gsm8k_final_answer(row[answer_field])
            if final is None:
                raise DataError(f"{p}:{lineno}: field {answer_field!r} does not end in '#### <answer>'")
            tasks.append(Task(row[question_field], final, {"solution": row[answer_field], "line": lineno}))
    if not tasks:
        raise DataError(f"data file {p} holds no rows")
    return tasks


def load_reasoning_gym(name: str, size: int, seed: int, **kwargs: Any) -> list[Task]:
    import reasoning_gym

    try:
        dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **kwargs)
    except Exception as exc:  # reasoning-gym raises several types for unknown names and bad kwargs
        raise DataError(f"reasoning-gym task {name!r} with {kwargs}: {exc}") from exc
    return [Task(str(e["question"]), str(e["answer"]), {"source": name}) for e in dataset]


def load_datasets(path: str, question_field: str, answer_field: str) -> list[Task]:
    import datasets

    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        ds = datasets.load_dataset("json", data_files=path, split="train")
    elif suffix == ".parquet":
        ds = datasets.load_dataset("parquet", data_files=path, split="train")
    else:
        ds = datasets.load_dataset(path, split="train")
    tasks = []
    for i, row in enumerate(ds):
        for key in (question_field, answer_field):
            if row.get(key) in (None, ""):
                raise DataError(f"{path}: row {i + 1}: field {key!r} is missing or empty")
        answer = str(row[answer_field])
        tasks.append(Task(str(row[question_field]), gsm8k_final_answer(answer) or answer.strip(), {}))
    return tasks


def load_train_eval(cfg: DataConfig, seed: int) -> tuple[list[Task], list[Task]]:
    """Training tasks and a disjoint held-out evaluation set."""
    if cfg.source == "reasoning_gym":
        # The held-out set comes first and training drops every question in it: small
        # problem spaces (one-digit sums) repeat questions across seeds.
        held = load_reasoning_gym(cfg.task, cfg.eval_size * 4, seed + 7919, **cfg.task_kwargs)
        evaluation = list({t.question: t for t in held}.values())[: cfg.eval_size]
        held_out = {t.question for t in evaluation}
        train = [t for t in load_reasoning_gym(cfg.task, cfg.train_size, seed, **cfg.task_kwargs)
                 if t.question not in held_out]
        if not train:
            raise DataError(f"reasoning-gym task {cfg.task!r}: every training problem is in the held-out set; "
                            "lower data.eval_size or widen data.task_kwargs")
        return train, evaluation
    if cfg.source == "gsm8k_jsonl":
        tasks = load_gsm8k_jsonl(cfg.path, cfg.question_field, cfg.answer_field)
    else:
        tasks = load_datasets(cfg.path, cfg.question_field, cfg.answer_field)
    if len(tasks) < cfg.eval_size + 1:
        raise DataError(f"{cfg.path}: {len(tasks)} rows, need more than data.eval_size={cfg.eval_size}")
    evaluation, train = tasks[: cfg.eval_size], tasks[cfg.eval_size :]
    return train[: cfg.train_size], evaluation
