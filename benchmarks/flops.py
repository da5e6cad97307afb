"""Benchmark: how close one network evaluation of the shipped 2D prior is to this CPU's limit.

One evaluation = all tiles of one 128² image through ``padis3d.load_prior("chest128_patch")`` wrapped by
:func:`padis3d.priors.factory.patch_prior_from` (its tiles, fixed shift 0). Prints the FLOPs of one
evaluation (``torch.utils.flop_counter.FlopCounterMode``: matrix products, convolutions and attention,
a multiply-add counted as 2; elementwise work is not counted), the median seconds of one evaluation in
fp32 and bf16 with one thread and with all threads (interleaved repeats), the achieved GFLOP/s, and
the machine's peak from /proc/cpuinfo and /sys with every assumption printed, then achieved / peak.
Run by hand (numbers are printed, never asserted):

    python benchmarks/flops.py --repeats 7 --out benchmarks/results/flops.txt
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# benchmarks/tiling.py is named like the package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

PRIOR = "chest128_patch"
SIZE = 128
SIGMA = 0.5  # the DDS demo's first level; the FLOPs do not depend on it


@dataclass
class Peak:
    """The CPU's peak FLOP/s per core and in total, with the assumptions behind it."""

    model: str
    cores: int
    ghz: float
    fp32_per_cycle: int
    bf16_per_cycle: int
    notes: list[str] = field(default_factory=list)

    def gflops(self, per_cycle: int, cores: int | None = None) -> float:
        """Peak GFLOP/s of ``cores`` cores (default: all) at ``per_cycle`` FLOPs per cycle and core."""
        return (self.cores if cores is None else cores) * self.ghz * per_cycle


def cpuinfo_fields(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def clock_ghz(info: dict[str, str], notes: list[str]) -> float:
    """The maximum clock: cpufreq's ``cpuinfo_max_freq``, else the model name's nominal GHz, else
    ``cpu MHz`` of /proc/cpuinfo (what the kernel reports, in a VM the host's nominal clock)."""
    sysfs = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if sysfs.exists():
        ghz = int(sysfs.read_text()) / 1e6
        notes.append(f"clock {ghz:.2f} GHz: {sysfs}")
        return ghz
    named = re.search(r"([\d.]+)\s*GHz", info.get("model name", ""))
    if named:
        notes.append(f"clock {named.group(1)} GHz: the model name's nominal clock (no cpufreq in /sys)")
        return float(named.group(1))
    ghz = float(info.get("cpu MHz", "0")) / 1e3
    notes.append(f"clock {ghz:.2f} GHz: 'cpu MHz' of /proc/cpuinfo (no cpufreq in /sys, no GHz in the model "
                 f"name '{info.get('model name', '?')}'); a boost clock above it would raise the peak")
    return ghz


def machine_peak() -> Peak:
    """The peak of this CPU from its model, flags and clock, every assumption noted."""
    info = cpuinfo_fields()
    flags = set(info.get("flags", "").split())
    notes: list[str] = []
    cores = os.cpu_count() or 1
    notes.append(f"cores {cores}: os.cpu_count() (siblings {info.get('siblings', '?')}, cpu cores "
                 f"{info.get('cpu cores', '?')} in /proc/cpuinfo; a VM's vCPUs may share physical cores)")
    ghz = clock_ghz(info, notes)
    notes.append("flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}"
                                       for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")))
    vendor, family = info.get("vendor_id", "?"), int(info.get("cpu family", "0"))
    if "avx512f" in flags:
        lanes = 16
        zen = {25: "Zen 4", 26: "Zen 5"}.get(family) if vendor == "AuthenticAMD" else None
        notes.append(f"{vendor}, family {family} model {info.get('model', '?')}"
                     + (f" = {zen}" if zen else "") + ": assumed 2 AVX-512 FMA units per core, 16 fp32 lanes, "
                     "2 FLOPs per FMA -> 64 fp32 FLOPs per cycle and core")
        if zen == "Zen 4":
            notes.append("Zen 4 runs 512-bit FMAs on two 256-bit pipes (one 512-bit FMA per cycle): if so, "
                         "every peak below halves and every ratio doubles")
    else:
        lanes = 8 if "avx2" in flags else 4
        notes.append(f"no AVX-512: assumed 2 FMA units of {lanes} fp32 lanes per core")
    fp32 = 2 * lanes * 2
    if "amx_bf16" in flags:
        bf16 = 2048
        notes.append("bf16 via AMX (amx_bf16): assumed 1024 bf16 multiply-adds per cycle and core -> 2048")
    elif "avx512_bf16" in flags:
        bf16 = 2 * fp32
        notes.append("bf16 via AVX512_BF16 (vdpbf16ps: 32 bf16 products summed pairwise into 16 fp32 lanes, "
                     f"64 FLOPs per instruction, the FMA's issue rate) -> 2x fp32 = {bf16} FLOPs per cycle and core")
    else:
        bf16 = fp32
        notes.append("no native bf16: bf16 peak taken equal to fp32")
    return Peak(info.get("model name", "?"), cores, ghz, fp32, bf16, notes)


def evaluation(precision: str) -> tuple[Callable[[], torch.Tensor], str]:
    """One network evaluation (all tiles of one 128² image) in ``precision``, and the tiling in words."""
    import padis3d
    from padis3d.priors.factory import patch_prior_from

    prior = patch_prior_from(padis3d.load_prior(PRIOR, precision=precision), (SIZE, SIZE))
    g = torch.Generator().manual_seed(0)
    x = prior.embed_noisy(torch.rand(1, 1, SIZE, SIZE, generator=g), SIGMA, g)
    shift = (0,) * prior.grid.ndim
    words = (f"{prior.grid.num_tiles} tiles of {'x'.join(map(str, prior.grid.tile))} on a "
             f"{'x'.join(map(str, prior.grid.canvas_shape))} canvas")
    return lambda: prior.denoise(x, SIGMA, shift=shift), words


def count_flops(fn: Callable[[], torch.Tensor]) -> tuple[int, dict[str, int]]:
    """FLOPs of one call of ``fn`` and their split by operator."""
    with FlopCounterMode(display=False) as counter:
        fn()
    split = {str(op).split(".")[-1]: int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), split


def median_seconds(fns: dict[str, Callable[[], torch.Tensor]], threads: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function with ``threads`` torch threads, repeats interleaved."""
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed evaluations per variant (default 7)")
    p.add_argument("--note", default="", help="what else runs on the machine, printed in the header")
    p.add_argument("--out", type=Path, default=None, help="also write the output to this file")
    args = p.parse_args()
    buffer = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            sys.__stdout__.write(s)
            sys.__stdout__.flush()
            return buffer.write(s)

    with redirect_stdout(Tee()):
        load = os.getloadavg()
        peak = machine_peak()
        print(f"# benchmarks/flops.py, {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__} "
              f"(CPU capability {torch.backends.cpu.get_cpu_capability()}), load average at start "
              f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
        if args.note:
            print(f"# machine: {args.note}")
        print(f"CPU: {peak.model}")
        for note in peak.notes:
            print(f"  assumption/source: {note}")
        fns, words = {}, ""
        for precision in ("fp32", "bf16"):
            fns[precision], words = evaluation(precision)
        flops, split = count_flops(fns["fp32"])
        flops_bf16, _ = count_flops(fns["bf16"])
        print(f"\none evaluation = {PRIOR} over one {SIZE}x{SIZE} image: {words}")
        print(f"FLOPs per evaluation (FlopCounterMode): {flops / 1e9:.3f} GFLOP fp32, {flops_bf16 / 1e9:.3f} "
              f"GFLOP bf16; by operator: " + ", ".join(f"{k} {v / 1e9:.3f}" for k, v in split.items()))
        all_threads = os.cpu_count() or 1
        print(f"\n{'precision':<10}{'threads':>8}{'ms/eval':>10}{'GFLOP/s':>10}{'peak GFLOP/s':>14}{'achieved/peak':>15}")
        for threads in sorted({1, all_threads}):
            seconds = median_seconds(fns, threads, args.repeats)
            for precision, s in seconds.items():
                per_cycle = peak.fp32_per_cycle if precision == "fp32" else peak.bf16_per_cycle
                top = peak.gflops(per_cycle, threads)
                achieved = flops / s / 1e9
                print(f"{precision:<10}{threads:>8}{s * 1e3:10.1f}{achieved:10.1f}{top:14.1f}{achieved / top:15.3f}",
                      flush=True)
        print(f"\npeak per core: fp32 {peak.gflops(peak.fp32_per_cycle, 1):.1f} GFLOP/s, bf16 "
              f"{peak.gflops(peak.bf16_per_cycle, 1):.1f} GFLOP/s; total ({peak.cores} cores): fp32 "
              f"{peak.gflops(peak.fp32_per_cycle):.1f}, bf16 {peak.gflops(peak.bf16_per_cycle):.1f} GFLOP/s")
        print(f"median of {args.repeats} interleaved evaluations after one warm-up; 'threads' = torch.set_num_threads")
    if args.out:
        args.out.write_text(buffer.getvalue())


if __name__ == "__main__":
    main()
