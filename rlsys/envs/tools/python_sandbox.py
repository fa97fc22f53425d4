"""A Python tool: the model's code runs in a child process with a wall-clock limit, a memory
limit, a cap on its output and no network, and is killed (its whole process group) when it
overruns.

The network is cut by giving the child a network namespace of its own (only a loopback that
is down) where the kernel allows it (root, or unprivileged user namespaces); elsewhere
Python's `socket` module is disabled in the child, which stops ordinary code but not a
program that reaches the system calls another way (ctypes): run untrusted models' code on
machines where the namespace works (`rlsys doctor` does not check this).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from rlsys.envs.tools.base import Tool, ToolError

CLONE_NEWNET = 0x40000000
_NO_SOCKETS = (
    "import socket as _s\n"
    "def _refuse(*a, **k):\n"
    "    raise OSError('network access is disabled in this sandbox')\n"
    "_s.socket = _s.create_connection = _s.socketpair = _refuse\n"
    "del _s, _refuse\n"
)


def _limit_child(memory_bytes: int, output_bytes: int, cpu_seconds: int, own_network: bool) -> None:
    """Runs in the child before Python starts: its own process group (killed as one), its
    limits, and its own network namespace where the kernel allows one."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if own_network and ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
        raise OSError("could not give the tool's process a network namespace of its own")


def run_python(code: str, timeout_s: float = 5.0, memory_mb: int = 256, max_output_bytes: int = 65536) -> bytes:
    """Run `code` with `python -I` in a fresh temporary folder; its stdout and stderr, at
    most `max_output_bytes` of them. A limit that is hit raises ToolError saying which."""
    own_network = network_namespace_works()
    with tempfile.TemporaryDirectory(prefix="rlsys-python-tool-") as folder:
        out_path, program = Path(folder) / "output", Path(folder) / "main.py"
        program.write_text(("" if own_network else _NO_SOCKETS) + code)
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-I", str(program)], cwd=folder, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
                preexec_fn=lambda: _limit_child(memory_mb * 2**20, max_output_bytes + 1,
                                                max(1, int(timeout_s) + 1), own_network),
            )
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise ToolError(f"the code ran past its {timeout_s:g} s limit and was stopped") from None
            finally:
                _kill_group(proc)  # what it started (its process group) does not outlive the call
        output = out_path.read_bytes()
    if proc.returncode == -signal.SIGXFSZ or len(output) > max_output_bytes:
        raise ToolError(f"the code printed more than {max_output_bytes} bytes and was stopped; "
                        f"its output began: {output[:200].decode('utf-8', errors='replace')!r}")
    if proc.returncode == -signal.SIGXCPU:
        raise ToolError("the code used more CPU time than allowed and was stopped")
    if proc.returncode < 0 or b"MemoryError" in output[-2000:]:
        raise ToolError(f"the code was killed (signal {-proc.returncode}) or ran out of its {memory_mb} MB of memory"
                        if proc.returncode < 0 else f"the code ran out of its {memory_mb} MB of memory")
    if proc.returncode != 0:
        raise ToolError(f"the code exited with status {proc.returncode}:\n"
                        + output[-2000:].decode("utf-8", errors="replace"))
    return output


_NAMESPACE_WORKS: list[bool] = []


def network_namespace_works() -> bool:
    """Whether a child can have a network namespace of its own here (asked once per process)."""
    if not _NAMESPACE_WORKS:
        probe = subprocess.run([sys.executable, "-c", "import ctypes,sys; sys.exit(ctypes.CDLL(None).unshare("
                                f"{CLONE_NEWNET}) != 0)"], capture_output=True, timeout=30)
        _NAMESPACE_WORKS.append(probe.returncode == 0)
    return _NAMESPACE_WORKS[0]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class PythonSandbox(Tool):
    def __init__(self, timeout_s: float = 5.0, memory_mb: int = 256, max_output_bytes: int = 65536) -> None:
        super().__init__("python", "Run a Python program and return what it prints.",
                         {"code": {"type": "string", "description": "the program"}})
        self.timeout_s, self.memory_mb, self.max_output_bytes = timeout_s, memory_mb, max_output_bytes

    def __call__(self, code: str = "", **unexpected) -> bytes:
        if unexpected:
            raise ToolError(f"unknown arguments {sorted(unexpected)}; the python tool takes `code`")
        return run_python(str(code), self.timeout_s, self.memory_mb, self.max_output_bytes)
