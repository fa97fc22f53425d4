"""An actor whose vLLM engine died ends its process once, with one message, whichever path saw
the death first (the watch thread, or a call that met vLLM's EngineDeadError): both paths run
here at once in a child process, whose output and exit status are checked. The watch's
`check`, run by a rollout worker's ping, sees a killed engine process without waiting for the
next poll."""

import subprocess
import sys
import textwrap

from ...conftest import REPO


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_two_paths_seeing_one_death_print_one_message_and_exit_1():
    out = _run("""
        import threading, time
        from rlsys.workers.engine_watch import exit_actor
        start = threading.Barrier(3)
        def path(msg):
            start.wait()
            exit_actor(msg)
        for m in ("watch says", "call says"):
            threading.Thread(target=path, args=(m,)).start()
        start.wait()
        time.sleep(30)
        print("not ended")
    """)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0] in ("watch says", "call says"), out.stdout


def test_engine_dead_error_inside_a_call_ends_the_process():
    out = _run("""
        from vllm.v1.engine.exceptions import EngineDeadError
        from rlsys.workers.engine_watch import exit_if_engine_died
        with exit_if_engine_died("teacher"):
            raise EngineDeadError()
        print("not ended")
    """)
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("teacher: its vLLM engine died (") and "not ended" not in out.stdout


def test_other_errors_pass_through():
    out = _run("""
        from rlsys.workers.engine_watch import exit_if_engine_died
        try:
            with exit_if_engine_died("rollout-0"):
                raise ValueError("bad prompt")
        except ValueError as exc:
            print("caught", exc)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "caught bad prompt"


def test_check_sees_a_killed_engine_process_at_once_and_not_after_stop():
    """`check` (what a rollout worker's ping runs) reports a child killed a moment ago, long
    before the watch thread's next poll (an hour here); a stopped watch reports nothing."""
    out = _run("""
        import subprocess, sys, time
        from rlsys.workers.engine_watch import EngineWatch
        children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
        time.sleep(0.5)
        seen = []
        watch = EngineWatch("rollout-0", poll_s=3600, on_death=lambda dead: seen.append(sorted(p.pid for p in dead)))
        print("before", watch.check(), seen)
        children[1].kill(); children[1].wait()
        print("after", watch.check(), seen == [[children[1].pid]])
        watch.stop(); seen.clear()
        print("stopped", watch.check(), seen)
        children[0].kill()
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["before False []", "after True True", "stopped False []"], out.stdout
