"""SIGTERM/SIGINT handling of a run, with real signals sent to this process: the first asks for
a stop and lets the work in flight go on; a second, or the grace running out while the main
thread is blocked, raises `RunStopped` in the main thread; the previous handlers come back."""

import os
import signal
import time

import pytest

from rlsys.errors import RunStopped
from rlsys.loops.stop_request import StopRequest


def test_first_signal_asks_second_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequest(grace_s=60)
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # the handler runs between bytecodes; nothing was raised
        assert stop.requested and stop.signal == "SIGTERM"
        with pytest.raises(RunStopped, match="a second SIGINT after SIGTERM") as raised:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert raised.value.checkpointed is False
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_grace_ends_a_blocked_main_thread():
    stop = StopRequest(grace_s=0.3)
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        started = time.monotonic()
        with pytest.raises(RunStopped, match=r"run.stop_grace_s \(0.3s\) passed after SIGINT"):
            time.sleep(10)  # a Ray call in flight, as far as the handler can tell
        assert 0.2 < time.monotonic() - started < 3
    finally:
        stop.restore()


def test_no_signal_no_stop():
    stop = StopRequest(grace_s=1)
    stop.install()
    stop.restore()
    assert not stop.requested
