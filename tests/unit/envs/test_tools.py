"""The calculator and the sandboxed Python tool, and how a call's output is bounded: a tool
that raises, hangs, prints 10 MB or returns invalid UTF-8 gives an error observation, counted,
and the call returns within its limit."""

import time
from fractions import Fraction

import pytest

from rlsys.envs.tools.base import Tool, ToolError, bounded_text, run_tool
from rlsys.envs.tools.calculator import Calculator, evaluate
from rlsys.envs.tools.python_sandbox import PythonSandbox


def test_calculator_is_exact_and_refuses_what_is_not_arithmetic():
    calc = Calculator()
    assert calc(expression="12 - 45 + 7") == "-26"
    assert calc(expression="(3 + 4) * -2") == "-14"
    assert calc(expression="1 / 3") == "0.3333333333"
    assert calc(expression="2 ** 10 // 3 % 7") == str((2**10 // 3) % 7)
    assert evaluate("0.1 + 0.2") == Fraction(3, 10)
    for bad in ["__import__('os')", "x + 1", "2 ** 1000", "1 / 0", "3 +", "[1, 2]"]:
        out = run_tool(calc, {"expression": bad}, 500)
        assert out.error and out.text.startswith("error: "), (bad, out)
    assert run_tool(calc, {"expr": "1"}, 500).error  # a wrong argument name is the model's error, said so


def test_bounded_text_cuts_and_flags_invalid_utf8():
    out = bounded_text(b"ok \xff\xfe end", 100)
    assert out.error and "not valid UTF-8" in out.text and "ok \ufffd\ufffd end" in out.text
    out = bounded_text("x" * 50, 10)
    assert not out.error and out.text.startswith("x" * 10) and "cut at 10 of 50" in out.text
    assert bounded_text("fine", 10).text == "fine"


class Raises(Tool):
    def __call__(self, **kw):
        raise RuntimeError("boom")


def test_a_tool_that_raises_is_an_error_observation():
    out = run_tool(Raises("bad", "raises"), {}, 500)
    assert out.error and out.text == "error: RuntimeError: boom"


def test_python_runs_code_and_returns_what_it_printed():
    assert PythonSandbox()(code="print(sum(range(10)))") == b"45\n"


def test_python_that_hangs_is_killed_at_its_limit_with_its_children():
    tool = PythonSandbox(timeout_s=1.0)
    started = time.perf_counter()
    out = run_tool(tool, {"code": "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)"}, 500)
    assert out.error and "1 s limit" in out.text
    assert time.perf_counter() - started < 5
    import psutil

    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "60"]]


def test_python_that_prints_10_mb_is_stopped_at_the_cap():
    out = run_tool(PythonSandbox(max_output_bytes=4096), {"code": "import sys\nsys.stdout.write('y' * 10_000_000)"}, 1000)
    assert out.error and "more than 4096 bytes" in out.text and len(out.text) <= 1100


def test_python_invalid_utf8_memory_errors_and_failures_are_flagged():
    out = run_tool(PythonSandbox(), {"code": "import sys\nsys.stdout.buffer.write(b'a\\xffb')"}, 500)
    assert out.error and "not valid UTF-8" in out.text and "a\ufffdb" in out.text
    out = run_tool(PythonSandbox(memory_mb=200), {"code": "x = bytearray(1_000_000_000)"}, 500)
    assert out.error and "200 MB" in out.text
    out = run_tool(PythonSandbox(), {"code": "raise ValueError('no')"}, 2000)
    assert out.error and "status 1" in out.text and "ValueError: no" in out.text


def test_python_has_no_network():
    import socket

    # a server this process listens on: reachable from any ordinary child process
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    try:
        out = run_tool(PythonSandbox(), {"code": code}, 2000)
        assert out.error and "connected" not in out.text, out
        import subprocess
        import sys

        plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert plain.stdout.strip() == "connected"  # the same code outside the sandbox does connect
    finally:
        server.close()
