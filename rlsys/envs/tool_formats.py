"""How a model family writes tool calls and reads their results.

`smollm2`: SmolLM2's instruct models (the 1.7B's tool template) describe the tools as JSON in
the system prompt and call one as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`;
the result comes back as a `tool` turn. `gemma`: Gemma 3's documented function-calling
format: calls as Python in a ```tool_code block, results as a ```tool_output block in a user
turn (Gemma's template has no tool role and wants user and model turns to alternate).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass


@dataclass
class ToolCall:
    name: str
    arguments: dict
    error: str | None = None
    """Why the call could not be read (the model sees it as the tool's answer)."""


class SmolLM2Tools:
    name = "smollm2"
    stop = ["</tool_call>"]
    _CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)

    def instructions(self, schemas: list[dict]) -> str:
        return ("You can call these tools:\n" + "\n".join(json.dumps(s) for s in schemas) +
                '\nTo call one, write <tool_call>{"name": "NAME", "arguments": {...}}</tool_call> and wait '
                "for its result.")

    def parse(self, text: str) -> list[ToolCall]:
        calls = []
        for body in self._CALL.findall(text):
            try:
                obj = json.loads(body.strip())
                if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                    raise ValueError("it needs a string `name`")
                args = obj.get("arguments", {})
                if not isinstance(args, dict):
                    raise ValueError("`arguments` must be an object")
                calls.append(ToolCall(obj["name"], args))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                calls.append(ToolCall("", {}, f"the tool call is not valid JSON ({exc})"))
        return calls

    def result_message(self, call: ToolCall, output: str) -> dict:
        return {"role": "tool", "content": output}

    def render_call(self, name: str, arguments: dict) -> str:
        return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class GemmaTools:
    name = "gemma"
    stop = ["```\n"]
    _CALL = re.compile(r"```tool_code\s*\n(.*?)(?:```|$)", re.S)

    def instructions(self, schemas: list[dict]) -> str:
        sigs = [f"def {s['name']}({', '.join(f'{k}: str' for k in s['parameters']['properties'])}):\n"
                f'    """{s["description"]}"""' for s in schemas]
        return ("You can call these Python functions:\n```python\n" + "\n\n".join(sigs) + "\n```\n"
                "To call one, write it in a ```tool_code block, e.g.\n```tool_code\n"
                f"{schemas[0]['name']}(...)\n```\nand wait for its ```tool_output.") if schemas else ""

    def parse(self, text: str) -> list[ToolCall]:
        calls = []
        for body in self._CALL.findall(text):
            try:
                node = ast.parse(body.strip(), mode="eval").body
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args):
                    raise ValueError("write one call with keyword arguments, e.g. calculator(expression='1+2')")
                calls.append(ToolCall(node.func.id, {k.arg: ast.literal_eval(k.value) for k in node.keywords}))
            except (SyntaxError, ValueError) as exc:
                calls.append(ToolCall("", {}, f"the tool call could not be read ({exc})"))
        return calls

    def result_message(self, call: ToolCall, output: str) -> dict:
        return {"role": "user", "content": f"```tool_output\n{output}\n```"}

    def render_call(self, name: str, arguments: dict) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"```tool_code\n{name}({args})\n```"


FORMATS = {f.name: f for f in (SmolLM2Tools(), GemmaTools())}


def tool_format(name: str):
    if name not in FORMATS:
        raise ValueError(f"unknown tool format {name!r}; known: {sorted(FORMATS)}")
    return FORMATS[name]
