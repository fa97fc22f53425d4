"""`dtype: auto` resolves by the hardware; bf16 asked of a CPU without AVX-512 warns."""

from rlsys.config.dtypes import cpu_has_fast_bf16, resolve_dtype


def test_auto_is_bf16_on_gpus_and_fast_cpus_and_fp32_elsewhere(capsys):
    assert resolve_dtype("auto", on_gpu=True, key="model.dtype", fast_cpu_bf16=False) == "bfloat16"
    assert resolve_dtype("auto", on_gpu=False, key="model.dtype", fast_cpu_bf16=True) == "bfloat16"
    assert resolve_dtype("auto", on_gpu=False, key="model.dtype", fast_cpu_bf16=False) == "float32"
    assert capsys.readouterr().err == ""
    assert resolve_dtype("bfloat16", on_gpu=False, key="teacher.dtype", fast_cpu_bf16=False) == "bfloat16"
    assert "teacher.dtype=bfloat16 on a CPU without AVX-512" in capsys.readouterr().err


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    avx512 = tmp_path / "avx512"
    avx512.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl\n")
    assert not cpu_has_fast_bf16(str(avx2)) and cpu_has_fast_bf16(str(avx512))
