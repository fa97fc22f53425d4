"""How long `./run.sh demo` should take on this machine: a measured demo run of the same machine
kind, scaled by this machine's measured fp32 matmul rate against that run's. An estimate (it
assumes every phase scales with the matmul rate, which generation on AVX2 does not quite do),
and printed as one."""

from __future__ import annotations

# `./run.sh demo` (configs/demo/grpo.yaml, seed 0) once .venv exists, per machine kind; a
# kind with no run of the current recipe is scaled from another kind's (and says so).
DEMO_RUNS = {
    "AVX2": {"kind": "AVX2", "seconds": 627.0, "gflops": 90.0,
             "run": "2-core AMD EPYC, AVX2 only, fp32, 2026-12-05: 12.9 min from nothing, 147 s of it the set-up"},
    "AVX-512": {"kind": "AVX-512", "seconds": 423.0, "gflops": 202.0,
                "run": "2-core AMD EPYC with AVX-512, bf16, 2026-12-05: 8.6 min from nothing, 94 s of it the set-up"},
    "AVX-512 + AMX": {"kind": "AVX-512 + AMX", "seconds": 349.0, "gflops": 417.0,
                      "run": "2-core Intel Xeon with AMX, bf16, 2026-12-06: 7.7 min from nothing, 111 s of it the set-up"},
}


def estimate_demo_seconds(kind: str, gflops: float) -> tuple[float, dict]:
    """Seconds the demo should take at `gflops` (fp32 matmul, all cores) on a machine of `kind`,
    and the measured run it is scaled from."""
    reference = DEMO_RUNS.get(kind, DEMO_RUNS["AVX2"])
    return reference["seconds"] * reference["gflops"] / gflops, reference
