"""`rlsys doctor`: what this machine is (instruction sets, cores, memory, GPUs), the dtypes
(measured: fp32 against bf16 for the learner and vLLM) and threads rlsys will pick on it, the versions it runs on, whether Ray starts on 127.0.0.1, and how
long the demo should take here (from a quick matmul measurement). The first command to run when
something is off; the last line printed is one JSON object. Exit 1 when a check fails."""

from __future__ import annotations

import json
import platform

NAME, HELP = "doctor", "check this machine: CPU, memory, GPUs, versions, Ray on loopback, expected demo time"
MIN_MEMORY_GIB = 8.0  # the demo's learner, vLLM engine and Ray together, with room for the OS


def add_arguments(p) -> None:
    p.add_argument("--no-ray", action="store_true", help="skip starting a local Ray")


def report(args) -> dict:
    import os

    from rlsys.commands.bench import matmul_peak_flops_per_s
    from rlsys.config.dtypes import choose_dtype
    from rlsys.config.dtype_calibration import cache_file, calibration
    from rlsys.diagnostics.demo_time import estimate_demo_seconds
    from rlsys.diagnostics.machine import cpu_info, gpus, machine_kind, memory_gib, usable_cores, versions
    from rlsys.diagnostics.ray_check import loopback_ray
    from rlsys.distributed.cluster import actor_env

    cpu, found_gpus = cpu_info(), gpus()
    kind, cores = machine_kind(cpu["isa"]), usable_cores()
    student, why_student = choose_dtype("auto", bool(found_gpus), "model.dtype", "student")
    teacher, why_teacher = choose_dtype("auto", bool(found_gpus), "teacher.dtype", "teacher")
    cal = None if found_gpus else calibration()
    gflops = matmul_peak_flops_per_s("float32", seconds=2.0) / 1e9
    demo_s, reference = estimate_demo_seconds(kind, gflops)
    return {
        "cpu": cpu["model"], "isa": cpu["isa"], "kind": kind, "cores": cores, "cores_online": os.cpu_count(),
        "memory_gib": memory_gib(), "gpus": found_gpus, "python": platform.python_version(), "versions": versions(),
        "picks": {"model.dtype auto": student, "teacher.dtype auto": teacher, "torch threads per learner rank": cores,
                  **{k: v for k, v in actor_env().items() if k.startswith("VLLM_CPU")}},
        "ray": None if args.no_ray else loopback_ray(),
        "fp32_matmul_gflops": round(gflops, 1),
        "dtype_calibration": None if cal is None else {"gflops": cal.gflops, "vllm_kernel": cal.vllm_kernel,
                                                       "cache": str(cache_file())},
        "dtype_reasons": [why_student, why_teacher],
        "demo_estimate_s": round(demo_s), "demo_reference": reference,
    }


def problems(r: dict) -> list[str]:
    out = []
    if not r["isa"].get("avx2"):
        out.append("this CPU has no AVX2: vLLM-CPU needs it; use a newer machine")
    if r["memory_gib"].get("MemTotal", MIN_MEMORY_GIB) < MIN_MEMORY_GIB:
        out.append(f"{r['memory_gib']['MemTotal']} GiB of memory: the demo needs about {MIN_MEMORY_GIB:g}")
    if r["ray"] is not None and not r["ray"]["ok"]:
        out.append(f"Ray did not start on 127.0.0.1 ({r['ray']['problem']}): see docs/troubleshooting.md")
    if missing := [name for name, v in r["versions"].items() if v is None]:
        out.append(f"not installed: {', '.join(missing)}: run ./run.sh once (it builds .venv)")
    return out


def lines(r: dict) -> list[str]:
    yes = ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in r["isa"].items())
    memory = r["memory_gib"]
    gpu = ", ".join(r["gpus"]) or "no GPU"
    picks = ", ".join(f"{k}: {v}" for k, v in r["picks"].items())
    out = [f"machine    {r['cpu']}, {r['cores']} usable cores ({r['cores_online']} online), "
           f"{memory.get('MemTotal', '?')} GiB memory ({memory.get('MemAvailable', '?')} available), {gpu}",
           f"CPU kind   {r['kind']} ({yes})",
           f"picks      {picks}",
           "versions   python " + r["python"] + ", " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in r["versions"].items())]
    if r["ray"] is not None:
        ray = r["ray"]
        where = ", ".join(ray["listening"]) or "nothing"
        out.append(f"ray        {'started on ' + str(ray['node_ip']) if ray['node_ip'] else 'did not start'} in "
                   f"{ray['seconds']} s; listening on {where}" + ("" if ray["ok"] else f" ({ray['problem']})"))
    ref = r["demo_reference"]
    if (cal := r["dtype_calibration"]) is not None:
        rates = "; ".join(f"{role} fp32 {v['float32']:g} / bf16 {v['bfloat16']:g}" for role, v in cal["gflops"].items())
        out.append(f"dtypes     measured GFLOP/s: {rates} (vLLM kernels: {cal['vllm_kernel']}; cached in {cal['cache']})")
    out += [f"dtype      {reason}" for reason in r["dtype_reasons"]]
    out += [f"matmul     fp32 {r['fp32_matmul_gflops']} GFLOP/s on {r['cores']} threads",
            f"demo       about {r['demo_estimate_s'] / 60:.0f} min for `./run.sh demo` once .venv exists (an estimate: "
            f"the measured {ref['kind']} run, {ref['seconds'] / 60:.1f} min at {ref['gflops']:g} GFLOP/s, scaled by "
            f"this machine's rate; {ref['run']})"]
    return out


def run(args) -> int:
    r = report(args)
    found = problems(r)
    print("\n".join(lines(r) + [f"PROBLEM    {p}" for p in found] + ([] if found else ["all checks passed"])))
    print(json.dumps({**r, "problems": found}))
    return 1 if found else 0
