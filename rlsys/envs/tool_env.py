"""A tool-calling environment: the model asks for tools in its family's format, the tools
answer, and the episode ends at the first turn with no call (that turn is the answer the
reward functions score)."""

from __future__ import annotations

from rlsys.envs.base import Environment, StepResult
from rlsys.envs.tool_formats import ToolCall, tool_format
from rlsys.envs.tools.base import Tool, ToolOutput, run_tool


class ToolEnvironment(Environment):
    def __init__(self, tools: list[Tool], format_name: str = "smollm2", system_prompt: str = "",
                 max_output_chars: int = 2000, examples: list[dict] | None = None) -> None:
        """`examples`: worked exchanges shown before the task, each {question, tool, arguments}:
        the question, the model's call, the tool's real answer and "The answer is ..."."""
        self.tools = {t.name: t for t in tools}
        self.format = tool_format(format_name)
        self.system_prompt, self.max_output_chars = system_prompt, max_output_chars
        self.examples = [m for ex in examples or [] for m in self._example(ex)]

    @property
    def stop(self) -> list[str]:
        """Strings that end a model turn after a tool call (vLLM stops there; the call runs)."""
        return self.format.stop

    def reset(self, task: dict) -> list[dict]:
        system = "\n\n".join(s for s in (task.get("system", ""), self.system_prompt, self.format.instructions(
            [t.schema() for t in self.tools.values()])) if s)
        return [{"role": "system", "content": system}, *self.examples, {"role": "user", "content": task["question"]}]

    def _example(self, ex: dict) -> list[dict]:
        call = ToolCall(ex["tool"], dict(ex["arguments"]))
        out = self._run(call)
        if out.error:
            raise ValueError(f"env.examples: the example {ex['question']!r} fails with its tool: {out.text}")
        return [{"role": "user", "content": ex["question"]},
                {"role": "assistant", "content": self.format.render_call(call.name, call.arguments)},
                self.format.result_message(call, out.text),
                {"role": "assistant", "content": f"The answer is {out.text}."}]

    def step(self, assistant_text: str) -> StepResult:
        calls = self.format.parse(assistant_text)
        if not calls:
            return StepResult(done=True)
        outputs = [self._run(call) for call in calls]
        return StepResult(messages=[self.format.result_message(c, o.text) for c, o in zip(calls, outputs)],
                          tool_calls=len(calls), tool_errors=sum(o.error for o in outputs))

    def _run(self, call: ToolCall) -> ToolOutput:
        if call.error:
            return ToolOutput(f"error: {call.error}", error=True)
        if call.name not in self.tools:
            return ToolOutput(f"error: no tool named {call.name!r}; the tools are {sorted(self.tools)}", error=True)
        return run_tool(self.tools[call.name], call.arguments, self.max_output_chars)
