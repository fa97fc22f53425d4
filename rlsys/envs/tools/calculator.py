"""A calculator tool: arithmetic expressions evaluated exactly, without `eval`."""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

from rlsys.envs.tools.base import Tool, ToolError

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPONENT = 64
MAX_LENGTH = 200


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression (+ - * / // % ** and brackets)."""
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from exc

    def value(node) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return Fraction(repr(node.value))  # 0.1 as written, not its binary neighbour
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (right.denominator != 1 or abs(right) > MAX_EXPONENT):
                raise ToolError(f"exponents must be whole numbers up to {MAX_EXPONENT}")
            try:
                return Fraction(_BINARY[type(node.op)](left, right))
            except ZeroDivisionError as exc:
                raise ToolError("division by zero") from exc
        raise ToolError(f"only numbers and + - * / // % ** are allowed: {expression!r}")

    return value(tree.body)


def format_number(x: Fraction) -> str:
    """An integer as itself, anything else as a decimal (at most 10 places, trailing zeros cut)."""
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.10f}".rstrip("0").rstrip(".")


class Calculator(Tool):
    def __init__(self) -> None:
        super().__init__("calculator", "Evaluate an arithmetic expression, e.g. 12 - 45 + 7.",
                         {"expression": {"type": "string", "description": "the expression"}})

    def __call__(self, expression: str = "", **unexpected) -> str:
        if unexpected:
            raise ToolError(f"unknown arguments {sorted(unexpected)}; the calculator takes `expression`")
        return format_number(evaluate(str(expression)))
