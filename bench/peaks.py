"""Which matmul peaks a host has, and the share-of-peak cells a bench prints against them (issue 34, item 6).

A share of a peak says something only against a peak the hardware has. On a CPU without AVX512-BF16 or
AMX (and no CUDA) bf16 matmuls are emulated: a 2-core AVX2 EPYC measured 2.2 GFLOP/s in bf16 against
~150 in fp32, and `train_throughput.py` printed "4321% of bf16 peak". So a bench prints the precision
each path ran in and its share of that precision's measured peak (its roofline), and every bf16 cell
says NO_BF16 where the host has no native bf16; the emulated rate is not measured as a peak at all.
Native means what tuneval's `precision: auto` means by it (tuneval/precision.py: CUDA's bf16 support,
else the CPU flags in BF16_CPU_FLAGS).

Imported by the bench scripts beside it (their directory is first on sys.path when run as scripts);
it puts the checkout's src/ on the path, so it works where tuneval is not installed (bench/gpu.sh).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from tuneval.precision import BF16_CPU_FLAGS  # noqa: E402

NO_BF16 = "n/a (no native bf16)"
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Host:
    """What decides which peaks exist: CUDA (and whether it computes bf16), else the CPU's flags."""

    cuda: bool = False
    cuda_bf16: bool = False
    cpu_flags: frozenset[str] = frozenset()

    @property
    def native_bf16(self) -> bool:
        return self.cuda_bf16 if self.cuda else any(f in self.cpu_flags for f in BF16_CPU_FLAGS)

    def has(self, precision: str) -> bool:
        """Whether `precision` has a native peak here (fp32 always)."""
        return precision == "fp32" or (precision == "bf16" and self.native_bf16)

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions whose matmul peak is worth measuring here."""
        return tuple(p for p in PRECISIONS if self.has(p))

    def describe(self) -> str:
        if self.cuda:
            return "CUDA, " + ("native bf16" if self.cuda_bf16 else "no native bf16")
        found = [f for f in BF16_CPU_FLAGS if f in self.cpu_flags]
        return (f"CPU, native bf16 ({', '.join(found)})" if found else
                f"CPU, no native bf16 (none of {', '.join(BF16_CPU_FLAGS)} in its flags: bf16 is emulated)")


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of /proc/cpuinfo's first `flags` line (x86)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def this_host() -> Host:
    import torch

    if torch.cuda.is_available():
        return Host(cuda=True, cuda_bf16=torch.cuda.is_bf16_supported())
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return Host(cpu_flags=cpu_flags(text))


def no_native(precision: str) -> str:
    return f"n/a (no native {precision})"  # NO_BF16 for bf16


def share(gflops: float, precision: str, peaks: dict, host: Host) -> float | str | None:
    """`gflops` as a share of the measured `precision` peak; NO_BF16 where the host has no native bf16,
    None where the peak was not measured."""
    if not host.has(precision):
        return no_native(precision)
    return None if peaks.get(precision) is None else gflops / peaks[precision]


def peak_cells(gflops: float, precision: str, peaks: dict, host: Host) -> dict[str, float | str]:
    """A row's cells: the precision it ran in, that precision's roofline and the share of it, and the
    share of each precision's peak; a bf16 cell is NO_BF16 where the host has no native bf16."""
    return {"precision": precision, "roofline_gflops": peaks.get(precision) if host.has(precision) else no_native(precision),
            "share_roofline": share(gflops, precision, peaks, host),
            **{f"share_{p}": share(gflops, p, peaks, host) for p in PRECISIONS}}


def cell(value: object, fmt: str) -> str:
    """A table cell: '-' for nothing, a string as it is (NO_BF16), a number through `fmt`."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else fmt.format(value)
