"""bench/peaks.py and the share-of-peak columns of bench/train_throughput.py: a bench never prints a share
of a peak the host does not have (issue 34, item 6). Fake hosts and fake timings: nothing is timed here."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
AVX2_CPUINFO = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
                "flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi2 avx512f\n\n")
AMX_CPUINFO = AVX2_CPUINFO.replace("avx512f", "avx512f avx512_bf16 amx_bf16 amx_tile")
# What the AVX2-only EPYC measured (GFLOP/s): fp32 matmul, emulated bf16 matmul, fp32 full fine-tuning
PEAKS = {"fp32": 220.0, "bf16": 2.2}
MODEL_GFLOPS = 95.0


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def peaks():
    return _load("peaks")


def test_the_host_reads_native_bf16_as_tuneval_does(peaks):
    from tuneval.precision import BF16_CPU_FLAGS

    avx2, amx = peaks.Host(cpu_flags=peaks.cpu_flags(AVX2_CPUINFO)), peaks.Host(cpu_flags=peaks.cpu_flags(AMX_CPUINFO))
    assert "avx2" in avx2.cpu_flags and not avx2.native_bf16 and avx2.precisions == ("fp32",)
    assert amx.native_bf16 and amx.precisions == ("fp32", "bf16") and set(BF16_CPU_FLAGS) <= amx.cpu_flags
    assert "no native bf16" in avx2.describe() and "native bf16 (avx512_bf16, amx_bf16)" in amx.describe()
    # on CUDA the GPU decides, whatever the CPU has
    assert not peaks.Host(cuda=True, cuda_bf16=False, cpu_flags=amx.cpu_flags).native_bf16
    assert peaks.Host(cuda=True, cuda_bf16=True).precisions == ("fp32", "bf16")
    assert peaks.cpu_flags("processor : 0\n") == frozenset()


def test_no_share_of_a_bf16_peak_on_a_host_without_it(peaks):
    avx2 = peaks.Host(cpu_flags=peaks.cpu_flags(AVX2_CPUINFO))
    row = peaks.peak_cells(MODEL_GFLOPS, "fp32", PEAKS, avx2)
    assert row == {"precision": "fp32", "roofline_gflops": 220.0, "share_roofline": pytest.approx(95 / 220),
                   "share_fp32": pytest.approx(95 / 220), "share_bf16": peaks.NO_BF16}
    forced = peaks.peak_cells(MODEL_GFLOPS, "bf16", PEAKS, avx2)  # a path run in emulated bf16 has no roofline
    assert forced["roofline_gflops"] == forced["share_roofline"] == forced["share_bf16"] == "n/a (no native bf16)"
    assert peaks.cell(forced["share_bf16"], "{:.1%}") == "n/a (no native bf16)"


def test_shares_of_both_peaks_where_the_host_has_both(peaks):
    amx = peaks.Host(cpu_flags=peaks.cpu_flags(AMX_CPUINFO))
    measured = {"fp32": 150.0, "bf16": 600.0}
    row = peaks.peak_cells(300.0, "bf16", measured, amx)
    assert row["roofline_gflops"] == 600.0 and row["share_roofline"] == pytest.approx(0.5)
    assert row["share_fp32"] == pytest.approx(2.0) and row["share_bf16"] == pytest.approx(0.5)
    assert peaks.peak_cells(100.0, "fp32", {"fp32": 150.0}, amx)["share_bf16"] is None  # not measured: '-'
    assert peaks.cell(None, "{:.1%}") == "-" and peaks.cell(0.5, "{:.1%}") == "50.0%"


def test_train_throughput_prints_the_precision_and_its_roofline_only(peaks, monkeypatch):
    """The table and the peak line as train_throughput.py prints them on the AVX2-only host."""
    bench = _load("train_throughput")
    avx2 = peaks.Host(cpu_flags=peaks.cpu_flags(AVX2_CPUINFO))
    rows = []
    for path, precision in (("standard", "fp32"), ("tuneval", "fp32")):
        row = {"path": path, "tokens_per_second": 160.0, "model_gflops": MODEL_GFLOPS}
        row.update(peaks.peak_cells(MODEL_GFLOPS, precision, PEAKS, avx2))
        rows.append(row)
    text = bench.table(rows)
    header, _, *lines = text.splitlines()
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert {"precision", "its roofline GFLOP/s", "% of its roofline", "% bf16 peak"} <= set(cols)
    for line in lines:
        cells = dict(zip(cols, (c.strip() for c in line.strip("|").split("|"))))
        assert cells["precision"] == "fp32" and cells["its roofline GFLOP/s"] == "220.0"
        assert cells["% of its roofline"] == cells["% fp32 peak"] == "43.2%"
        assert cells["% bf16 peak"] == "n/a (no native bf16)"
    assert not re.search(r"\d{3,}\.\d%", text)  # no "4318.2%" of an emulated peak
    measured = {"fp32": 220.0, "fp32_shape": "2048x2048x2048", "fp32_spread": [200.0, 210.0, 220.0],
                "fp32_shapes": {"2048x2048x2048": 220.0}}
    line = bench.peak_text(measured)
    assert line.startswith("fp32 220.0 GFLOP/s") and "bf16 n/a (no native bf16): not measured" in line
