"""`rlsys doctor` as a user runs it: within 30 s, and what it says about this machine agrees
with what the operating system says when asked directly."""

import json
import os
import subprocess
import sys
import time

from ..conftest import REPO


def test_doctor_describes_this_machine_in_under_30_seconds():
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "rlsys", "doctor"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    seconds = time.perf_counter() - started
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert seconds < 30, seconds
    r = json.loads(out.stdout.strip().splitlines()[-1])
    flags = subprocess.run(["grep", "-m1", "^flags", "/proc/cpuinfo"], capture_output=True, text=True).stdout.split()
    assert r["kind"] == ("AVX-512" if "avx512bw" in flags else "AVX2")
    assert r["picks"]["model.dtype auto"] == ("bfloat16" if "avx512bw" in flags else "float32")
    assert r["cores"] == len(os.sched_getaffinity(0))
    total_kib = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
    assert abs(r["memory_gib"]["MemTotal"] - total_kib / 2**20) < 0.06
    assert r["ray"]["ok"] and r["ray"]["node_ip"] == "127.0.0.1" and r["ray"]["listening"]
    import torch

    assert r["versions"]["torch"] == torch.__version__
    # a 2-core machine of either kind does 20-600 GFLOP/s in fp32; the estimate follows from it
    assert 20 < r["fp32_matmul_gflops"] < 5000
    ref = r["demo_reference"]
    assert abs(r["demo_estimate_s"] - ref["seconds"] * ref["gflops"] / r["fp32_matmul_gflops"]) <= 1
    assert "all checks passed" in out.stdout and len(out.stdout.splitlines()) <= 10
