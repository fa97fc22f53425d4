"""Reading tool calls in SmolLM2's and Gemma 3's formats, and what a call that cannot be read
becomes (an error the model is shown, counted), checked on hand-written turns."""

from rlsys.envs.tool_env import ToolEnvironment
from rlsys.envs.tool_formats import tool_format
from rlsys.envs.tools.calculator import Calculator


def test_smollm2_calls_and_unreadable_ones():
    fmt = tool_format("smollm2")
    [c] = fmt.parse('I will compute. <tool_call>{"name": "calculator", "arguments": {"expression": "2*3"}}</tool_call>')
    assert (c.name, c.arguments, c.error) == ("calculator", {"expression": "2*3"}, None)
    # cut at the stop string: vLLM drops "</tool_call>" from the text it returns
    [c] = fmt.parse('<tool_call>{"name": "calculator", "arguments": {"expression": "1"}}')
    assert c.arguments == {"expression": "1"}
    [bad] = fmt.parse("<tool_call>{name: calculator}</tool_call>")
    assert bad.error and "not valid JSON" in bad.error
    assert fmt.parse("The answer is 6.") == []


def test_gemma_calls():
    fmt = tool_format("gemma")
    [c] = fmt.parse("Let me see.\n```tool_code\ncalculator(expression='12 - 45')\n```\n")
    assert (c.name, c.arguments) == ("calculator", {"expression": "12 - 45"})
    [bad] = fmt.parse("```tool_code\ncalculator('12')\n```")
    assert bad.error and "keyword arguments" in bad.error
    assert fmt.result_message(c, "-33") == {"role": "user", "content": "```tool_output\n-33\n```"}


def test_the_environment_answers_each_call_and_counts_errors():
    for name, call, unknown in [
        ("smollm2", '<tool_call>{"name": "calculator", "arguments": {"expression": "7 * 6"}}</tool_call>',
         '<tool_call>{"name": "search", "arguments": {}}</tool_call>'),
        ("gemma", "```tool_code\ncalculator(expression='7 * 6')\n```", "```tool_code\nsearch(q='x')\n```"),
    ]:
        env = ToolEnvironment([Calculator()], format_name=name)
        system, user = env.reset({"question": "What is 7 * 6?"})
        assert "calculator" in system["content"] and user == {"role": "user", "content": "What is 7 * 6?"}
        r = env.step(call + "\n" + unknown)
        assert not r.done and r.tool_calls == 2 and r.tool_errors == 1
        assert "42" in r.messages[0]["content"] and "no tool named 'search'" in r.messages[1]["content"]
        assert env.step("It is 42.").done


def test_a_worked_example_comes_before_the_task_with_the_tools_real_answer():
    for name in ("smollm2", "gemma"):
        env = ToolEnvironment([Calculator()], format_name=name,
                              examples=[{"question": "What is 2 - 9?", "tool": "calculator", "arguments": {"expression": "2 - 9"}}])
        messages = env.reset({"question": "What is 1 + 1?"})
        assert [m["role"] for m in messages][:2] == ["system", "user"] and messages[-1]["content"] == "What is 1 + 1?"
        call, result, answer = messages[2], messages[3], messages[4]
        # the example's call is one the environment itself reads back
        [parsed] = env.format.parse(call["content"])
        assert (parsed.name, parsed.arguments) == ("calculator", {"expression": "2 - 9"})
        assert "-7" in result["content"] and answer == {"role": "assistant", "content": "The answer is -7."}
