"""Engines bigger than one device: vLLM tensor parallel inside one Ray actor.

The actor holds the engine's devices (`num_gpus` >= the tensor-parallel size on a GPU
cluster); vLLM's multiprocessing executor starts one worker process per shard inside it.
"""

from __future__ import annotations

import os


def parallel_engine_args(tensor_parallel_size: int) -> dict:
    """The `vllm.LLM` keyword arguments for an engine of `tensor_parallel_size` shards."""
    if tensor_parallel_size == 1:
        return {}
    _split_cpu_threads(tensor_parallel_size)
    return {"tensor_parallel_size": tensor_parallel_size, "distributed_executor_backend": "mp"}


def cpu_thread_groups(cpus: list[int], shards: int) -> str:
    """`VLLM_CPU_OMP_THREADS_BIND` for `shards` workers over `cpus`: contiguous, disjoint
    groups while there are enough CPUs, else shards share them round-robin."""
    if len(cpus) >= shards:
        groups = [cpus[i * len(cpus) // shards:(i + 1) * len(cpus) // shards] for i in range(shards)]
    else:
        groups = [[cpus[i % len(cpus)]] for i in range(shards)]
    return "|".join(",".join(str(c) for c in group) for group in groups)


def _split_cpu_threads(shards: int) -> None:
    """vLLM-CPU binds each shard's OpenMP threads to a NUMA node of its own and refuses when
    the machine has fewer nodes than shards (one socket, a container); a user's own binding
    is kept."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu() or os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") != "auto":
        return
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_thread_groups(sorted(os.sched_getaffinity(0)), shards)
