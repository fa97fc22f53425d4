"""Choosing the compute dtype: `auto` is bf16 on GPUs and on CPUs with fast bf16, fp32 otherwise.

vLLM-CPU's bf16 matmuls go through oneDNN, which needs AVX-512 (or AMX); on a CPU with only
AVX2 it logs "Failed to create oneDNN linear, fallback to torch linear" and generates many
times slower (seen here: the greedy pass of an eval of 200 short prompts had not finished
after 10 minutes; in fp32 the whole evaluation, teacher scoring included, took under 5).
The config resolves `auto` with this when it is loaded, so the resolved config says what ran.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

FAST_BF16_FLAGS = ("avx512bw", "avx512_bf16", "amx_bf16")


@cache
def cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    path = Path(cpuinfo)
    if not path.exists():  # not Linux: assume a modern CPU
        return True
    flags = next((line.split(":", 1)[1].split() for line in path.read_text().splitlines()
                  if line.startswith("flags")), [])
    return any(f in flags for f in FAST_BF16_FLAGS)


def resolve_dtype(requested: str, on_gpu: bool, key: str, fast_cpu_bf16: bool | None = None) -> str:
    """The dtype to run with for config key `key`; warns when bf16 is asked of a slow CPU."""
    fast = cpu_has_fast_bf16() if fast_cpu_bf16 is None else fast_cpu_bf16
    if requested == "auto":
        return "bfloat16" if on_gpu or fast else "float32"
    if requested == "bfloat16" and not on_gpu and not fast:
        print(f"rlsys: warning: {key}=bfloat16 on a CPU without AVX-512: vLLM falls back to very slow "
              f"matmuls; set {key}=auto or float32", file=sys.stderr)
    return requested
