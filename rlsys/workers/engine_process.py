"""Where a vLLM engine's core runs: inside its Ray actor's own process, or in processes of its own.

vLLM's V1 engine normally runs its scheduler loop (the engine core) and its model runner in two
processes of their own, so that on a GPU the next step is scheduled while the device runs this
one. On a CPU those processes compete with the model for the same cores: measured on a 2-core
AMD EPYC (AVX-512, SmolLM2-135M in bf16, 16 prompts x 8 samples x 128 tokens), the engine
started in 5 s instead of 22 s and generated 516 instead of 347 tokens/s once the core ran in
the actor (the same tokens, seed for seed). So `auto` keeps a CPU engine of one shard inside
its actor and leaves a GPU or tensor-parallel engine in processes of its own.
"""

from __future__ import annotations

import os
from typing import Literal

EngineProcess = Literal["auto", "actor", "separate"]
_VARIABLE = "VLLM_ENABLE_V1_MULTIPROCESSING"


def engine_in_actor(mode: EngineProcess, tensor_parallel_size: int, on_cpu: bool) -> bool:
    """True when the engine core and its model runner should run in the actor's process."""
    if mode != "auto":
        return mode == "actor"
    return on_cpu and tensor_parallel_size == 1


def place_engine_core(mode: EngineProcess, tensor_parallel_size: int) -> bool:
    """Set vLLM's switch for the engine this process is about to build (one engine per actor
    process; vLLM reads the variable when the engine starts). A user's own setting of the
    variable wins over `auto`. Returns True when the engine runs in this process."""
    from vllm.platforms import current_platform

    if mode == "auto" and _VARIABLE in os.environ:
        return os.environ[_VARIABLE] == "0"
    inline = engine_in_actor(mode, tensor_parallel_size, current_platform.is_cpu())
    os.environ[_VARIABLE] = "0" if inline else "1"
    return inline
