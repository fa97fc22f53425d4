"""`dtype: auto` resolves by a measurement of fp32 against bf16 (given here, so each outcome is
tested on any machine), bf16 asked of a CPU where it measured slower warns, and the resolved
config says what was measured."""

import hashlib
import json

import pytest

from rlsys.commands import validate
from rlsys.config.dtypes import choose_dtype, resolve_dtype
from rlsys.config import dtype_calibration
from rlsys.config.dtype_calibration import Calibration

# The rates measured on two real machines (GFLOP/s, 2 threads): an Intel Xeon with AMX, and
# the same one with oneDNN limited to AVX512_CORE_BF16 (as an Intel Xeon without AMX).
AMX = {"learner": {"float32": 346, "bfloat16": 1528}, "generation": {"float32": 380, "bfloat16": 2346},
       "scoring": {"float32": 404, "bfloat16": 3276}}
NO_AMX = {"learner": {"float32": 343, "bfloat16": 206}, "generation": {"float32": 418, "bfloat16": 235},
          "scoring": {"float32": 444, "bfloat16": 240}}


def cal(gflops: dict) -> Calibration:
    return Calibration(gflops, "test machine", "float32 oneDNN, bfloat16 oneDNN")


def test_auto_follows_the_measurement_and_gpus_are_bf16(capsys):
    assert resolve_dtype("auto", False, "model.dtype", "student", cal(AMX)) == "bfloat16"
    assert resolve_dtype("auto", False, "model.dtype", "student", cal(NO_AMX)) == "float32"
    assert resolve_dtype("auto", False, "teacher.dtype", "teacher", cal(NO_AMX)) == "float32"
    assert resolve_dtype("auto", True, "model.dtype", "student", cal(NO_AMX)) == "bfloat16"
    assert resolve_dtype("float32", False, "model.dtype", "student", cal(AMX)) == "float32"
    assert capsys.readouterr().err == ""


def test_the_student_needs_a_clear_learner_gain_and_no_generation_loss():
    # learner 1.2x faster in bf16 but generation 0.95x: the engines would lose it back
    mixed = {**AMX, "learner": {"float32": 100, "bfloat16": 120}, "generation": {"float32": 100, "bfloat16": 95}}
    assert resolve_dtype("auto", False, "model.dtype", "student", cal(mixed)) == "float32"
    # a 5% learner gain is inside the margin: fp32's precision is kept
    small = {**AMX, "learner": {"float32": 100, "bfloat16": 105}}
    assert resolve_dtype("auto", False, "model.dtype", "student", cal(small)) == "float32"
    # the teacher only scores: its choice follows scoring alone
    scoring_only = {**NO_AMX, "scoring": {"float32": 100, "bfloat16": 150}}
    assert resolve_dtype("auto", False, "teacher.dtype", "teacher", cal(scoring_only)) == "bfloat16"
    # no bf16 kernel at all (rate 0) is never picked
    none = {role: {"float32": 100, "bfloat16": 0.0} for role in AMX}
    assert resolve_dtype("auto", False, "model.dtype", "student", cal(none)) == "float32"


def test_bf16_asked_where_it_measured_slower_warns_with_the_numbers(capsys):
    dtype, why = choose_dtype("bfloat16", False, "teacher.dtype", "teacher", cal(NO_AMX))
    assert dtype == "bfloat16" and "bfloat16 as set" in why
    err = capsys.readouterr().err
    assert "teacher.dtype=bfloat16" in err and "scoring fp32 444 / bf16 240 GFLOP/s" in err
    choose_dtype("bfloat16", False, "model.dtype", "student", cal(AMX))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("rates, expected", [(NO_AMX, "float32"), (AMX, "bfloat16")])
def test_validate_the_demo_resolves_auto_by_the_cached_calibration(rates, expected, tmp_path, monkeypatch, capsys):
    """`rlsys validate configs/demo/grpo.yaml` on a machine whose cached calibration says fp32
    (or bf16) is faster: the cache is the one the real calibration writes, keyed by this machine."""
    monkeypatch.setenv("RLSYS_CACHE", str(tmp_path))
    digest = hashlib.sha256(dtype_calibration.machine_key().encode()).hexdigest()[:16]
    (tmp_path / "dtype-calibration.json").write_text(json.dumps(
        {digest: {"gflops": rates, "machine": "test", "vllm_kernel": "oneDNN"}}))
    monkeypatch.setattr(dtype_calibration, "measure", lambda: pytest.fail("measured despite the cache"))
    dtype_calibration.calibration.cache_clear()
    try:
        validate.run(type("Args", (), {"config": "configs/demo/grpo.yaml", "overrides": []})())
    finally:
        dtype_calibration.calibration.cache_clear()
    out = capsys.readouterr().out
    assert f"  dtype: {expected}\n" in out.split("\nmodel:\n", 1)[1].split("\nrollout:", 1)[0]
    learner = rates["learner"]
    assert out.startswith(f"# model.dtype: auto -> {expected} (measured here: learner fp32 "
                          f"{learner['float32']} / bf16 {learner['bfloat16']} GFLOP/s")


def test_a_calibration_is_measured_once_per_machine_and_isa_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("RLSYS_CACHE", str(tmp_path))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    calls = []
    monkeypatch.setattr(dtype_calibration, "measure", lambda: calls.append(1) or cal(AMX))
    try:
        for isa in (None, None, "AVX512_CORE_BF16", "AVX512_CORE_BF16", None):
            if isa:
                monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
            else:
                monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
            dtype_calibration.calibration.cache_clear()  # as a new process would
            assert dtype_calibration.calibration().gflops == AMX
    finally:
        dtype_calibration.calibration.cache_clear()
    assert len(calls) == 2  # once without the limit, once with it
    assert len(json.loads((tmp_path / "dtype-calibration.json").read_text())) == 2


def test_the_real_calibration_measures_every_role_in_both_dtypes():
    import time

    started = time.perf_counter()
    found = dtype_calibration.measure()
    assert time.perf_counter() - started < 5.0
    assert set(found.gflops) == {"learner", "generation", "scoring"}
    for role, rates in found.gflops.items():
        # 2 cores of any CPU this runs on do 10-5,000 GFLOP/s in fp32 on these shapes
        assert 10 < rates["float32"] < 5000, (role, rates)
        assert rates["bfloat16"] >= 0
    assert "float32" in found.vllm_kernel and "bfloat16" in found.vllm_kernel
