"""Where a vLLM engine's core runs (rlsys.workers.engine_process): the rule, case by case, and
the variable vLLM reads, which a user's own setting overrides only under `auto`."""

import pytest

from rlsys.workers.engine_process import engine_in_actor, place_engine_core


@pytest.mark.parametrize("mode, tp, on_cpu, inline", [
    ("auto", 1, True, True),       # a CPU engine of one shard: inside its actor
    ("auto", 2, True, False),      # tensor parallel: a process per shard
    ("auto", 1, False, False),     # a GPU: scheduling overlaps the device
    ("actor", 1, False, True),
    ("actor", 2, True, True),
    ("separate", 1, True, False),
])
def test_the_rule(mode, tp, on_cpu, inline):
    assert engine_in_actor(mode, tp, on_cpu) is inline


def test_the_variable_vllm_reads(monkeypatch):
    import os

    from vllm.platforms import current_platform

    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    on_cpu = current_platform.is_cpu()
    assert place_engine_core("auto", 1) is on_cpu
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == ("0" if on_cpu else "1")
    assert place_engine_core("separate", 1) is False and os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    # a user's own setting wins over auto, not over an explicit mode
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    assert place_engine_core("auto", 1) is False and os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    assert place_engine_core("actor", 1) is True and os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
