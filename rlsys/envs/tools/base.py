"""What a tool is, and how a call's output becomes a bounded, valid observation."""

from __future__ import annotations

from dataclasses import dataclass, field


class ToolError(Exception):
    """A call the tool could not answer (bad arguments, an error in the user's code, a limit
    hit); its message is shown to the model as the tool's output."""


@dataclass
class ToolOutput:
    text: str
    error: bool = False
    """The call failed (raised, hit a limit, gave invalid UTF-8): counted in `rollout/tool_errors`."""


@dataclass
class Tool:
    """A named function the model may call with keyword arguments."""

    name: str
    description: str
    parameters: dict = field(default_factory=dict)
    """JSON-schema `properties` of its arguments, e.g. {"expression": {"type": "string"}}."""

    def __call__(self, **arguments) -> str | bytes:
        raise NotImplementedError

    def schema(self) -> dict:
        return {"name": self.name, "description": self.description,
                "parameters": {"type": "object", "properties": self.parameters, "required": list(self.parameters)}}


def bounded_text(raw: str | bytes, max_chars: int) -> ToolOutput:
    """Tool output as text the model can read: bytes that are not UTF-8 are replaced (and the
    call counted as failed), and anything past `max_chars` is cut with a note saying so."""
    error = False
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text, error = raw.decode("utf-8", errors="replace"), True
    else:
        text = raw
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n[output cut at {max_chars} of {len(text)} characters]"
    if error:
        text = "[the output was not valid UTF-8; invalid bytes are shown as \ufffd]\n" + text
    return ToolOutput(text, error)


def run_tool(tool: Tool, arguments: dict, max_chars: int) -> ToolOutput:
    """Call `tool`; any exception becomes an error observation naming it (the episode goes on)."""
    try:
        raw = tool(**arguments)
    except ToolError as exc:
        return ToolOutput(f"error: {exc}"[:max_chars], error=True)
    except Exception as exc:  # noqa: BLE001 (a user's tool may raise anything; the model sees what)
        return ToolOutput(f"error: {type(exc).__name__}: {exc}"[:max_chars], error=True)
    if not isinstance(raw, (str, bytes)):
        raw = str(raw)
    return bounded_text(raw, max_chars)
