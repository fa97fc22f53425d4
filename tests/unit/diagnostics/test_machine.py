"""The doctor's reading of a machine, from written /proc files, and its demo-time arithmetic."""

from rlsys.commands.doctor import problems
from rlsys.diagnostics.demo_time import estimate_demo_seconds
from rlsys.diagnostics.machine import cpu_info, machine_kind, memory_gib
from rlsys.diagnostics.ray_check import is_loopback

AVX2_CPU = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
AVX512_CPU = "model name\t: Intel Xeon\nflags\t\t: avx2 avx512f avx512bw avx512_bf16 amx_bf16\n"


def test_the_cpu_kind_comes_from_its_flags(tmp_path):
    (tmp_path / "a").write_text(AVX2_CPU)
    (tmp_path / "b").write_text(AVX512_CPU)
    a, b = cpu_info(str(tmp_path / "a")), cpu_info(str(tmp_path / "b"))
    assert a == {"model": "AMD EPYC 7B13", "isa": {"avx2": True, "avx512f": False, "avx512bw": False,
                                                   "avx512_bf16": False, "amx_bf16": False}}
    assert machine_kind(a["isa"]) == "AVX2" and machine_kind(b["isa"]) == "AVX-512 + AMX"
    assert machine_kind({**b["isa"], "amx_bf16": False}) == "AVX-512"
    assert machine_kind({"avx2": False}) == "older than AVX2"


def test_memory_in_gib(tmp_path):
    (tmp_path / "m").write_text("MemTotal:       24641536 kB\nMemFree:  1 kB\nMemAvailable:   12320768 kB\n")
    assert memory_gib(str(tmp_path / "m")) == {"MemTotal": 23.5, "MemAvailable": 11.8}


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::ffff:127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("::")


def test_the_demo_estimate_scales_the_measured_run_of_the_same_kind():
    seconds, ref = estimate_demo_seconds("AVX2", 45.0)  # half the measured run's 90 GFLOP/s: twice its time
    assert seconds == 2 * 627.0 and ref["gflops"] == 90.0
    seconds, ref = estimate_demo_seconds("AVX-512", 101.0)  # half the AVX-512 run's 202 GFLOP/s
    assert seconds == 2 * 423.0 and ref["kind"] == "AVX-512"
    # a kind with no measured run: the AVX2 run, scaled by the rates (and named as the AVX2 run)
    seconds, ref = estimate_demo_seconds("AVX-512 + AMX", 417.0)  # the AMX run's own rate: its own time
    assert seconds == 349.0 and ref["kind"] == "AVX-512 + AMX"
    seconds, ref = estimate_demo_seconds("other", 180.0)
    assert seconds == 627.0 / 2 and ref["kind"] == "AVX2"


def test_problems_name_what_to_do():
    report = {"isa": {"avx2": True}, "memory_gib": {"MemTotal": 4.0}, "versions": {"torch": "2", "vllm": None},
              "ray": {"ok": False, "problem": "Ray reports node 10.0.0.2"}}
    found = problems(report)
    assert len(found) == 3
    assert "4.0 GiB of memory" in found[0] and "10.0.0.2" in found[1] and found[2].startswith("not installed: vllm")
    assert problems({"isa": {"avx2": True}, "memory_gib": {"MemTotal": 23.5}, "versions": {"torch": "2"},
                     "ray": None}) == []


def test_bench_names_this_machines_kind_and_scales_the_demo_by_its_rate():
    from rlsys.commands.bench import machine_and_demo_time

    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    r, slower = machine_and_demo_time(90e9), machine_and_demo_time(45e9)
    expected = "AVX2" if "avx512bw" not in flags else "AVX-512 + AMX" if "amx_bf16" in flags else "AVX-512"
    assert r["kind"] == expected
    assert r["fp32_matmul_gflops"] == 90.0 and abs(slower["demo_estimate_s"] - 2 * r["demo_estimate_s"]) <= 1
