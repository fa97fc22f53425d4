"""Worked solutions of training tasks: the targets `rlsys make-teacher` fine-tunes a teacher on.

A GSM8K-format row carries its own (the answer field); reasoning-gym's `gsm_symbolic` keeps
one in its metadata (`answer_cot`); `chain_sum` is worked left to right from its expression.
Tasks without one are refused by name, so a teacher is never trained on bare answers by
accident."""

from __future__ import annotations

import re

from rlsys.data.sources import Task
from rlsys.errors import DataError

_TERM = re.compile(r"\s*([+-])\s*(-?\d+)")


def chain_sum_solution(expression: str) -> str:
    """'5 + 7 - 6' -> '5 + 7 = 12, 12 - 6 = 6. So the answer is 6.' (evaluated left to right,
    which is how chain_sum defines its answers)."""
    head = re.match(r"\s*(-?\d+)", expression)
    if head is None:
        raise DataError(f"chain_sum expression {expression!r} does not start with a number")
    value, rest, steps = int(head.group(1)), expression[head.end():], []
    for match in _TERM.finditer(rest):
        sign, term = match.group(1), int(match.group(2))
        new = value + term if sign == "+" else value - term
        steps.append(f"{value} {sign} {term} = {new}")
        value = new
    if not steps or "".join(m.group(0) for m in _TERM.finditer(rest)).strip() != rest.strip():
        raise DataError(f"chain_sum expression {expression!r} is not a chain of + and - terms")
    return f"{', '.join(steps)}. So the answer is {value}."


def worked_solution(task: Task) -> str:
    """The worked solution of `task`, ending in its final answer."""
    meta = task.metadata
    if meta.get("solution"):
        return str(meta["solution"])
    if meta.get("answer_cot"):
        return str(meta["answer_cot"])
    if meta.get("source") == "chain_sum" and meta.get("expression"):
        return chain_sum_solution(str(meta["expression"]))
    raise DataError(
        f"{meta.get('where', 'a task')}: no worked solution to train a teacher on; make-teacher needs "
        "GSM8K-format rows (question, answer with the working and '#### N'), reasoning-gym "
        "chain_sum or gsm_symbolic"
    )
