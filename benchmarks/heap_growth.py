"""Benchmark: ``limit_heap_growth()`` (glibc's mmap threshold and arena cap,
:func:`padis3d.volume.pipeline.limit_heap_growth`) on a 2D ``padis3d reconstruct``, with and without,
side by side: each run a fresh subprocess, the two variants alternating (so background load hits both
alike), forced by the hidden switch ``PADIS3D_LIMIT_HEAP=1`` / ``=0``. Prints wall seconds, system
seconds, peak resident memory (``VmHWM`` polled) and PSNR per run, then the medians and the ratios
without / with. Run by hand:

    OMP_NUM_THREADS=1 python benchmarks/heap_growth.py [--runs 2] [-- extra reconstruct options]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["reconstruct", "--task", "ct", "--views", "20", "--sampler", "dds", "--threads", "1", "--no-progress"]


def one_run(limit: bool, extra: list[str], out: Path) -> dict[str, float]:
    """One fresh ``padis3d reconstruct``: wall and system seconds, peak MiB, the sampler's PSNR."""
    from padis3d.memory import wait_polling_peak

    env = {**os.environ, "PADIS3D_LIMIT_HEAP": "1" if limit else "0", "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "padis3d.cli", *COMMAND, *extra, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = wait_polling_peak(proc, 0.05)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.read().decode()[-2000:])
    report = json.loads((out / "report.json").read_text())
    return {"wall_s": wall, "sys_s": after.ru_stime - before.ru_stime, "user_s": after.ru_utime - before.ru_utime,
            "peak_mb": max(peak, report["memory"]["peak_rss_mb"]), "psnr": report["metrics"]["dds"]["psnr"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2, help="runs per variant (default 2)")
    p.add_argument("extra", nargs="*", help="more reconstruct options (after --)")
    args = p.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name in ("with", "without"):
                r = one_run(name == "with", args.extra, Path(tmp) / f"{name}{i}")
                rows[name].append(r)
                print(f"{name:>8} limit_heap_growth, run {i + 1}: wall {r['wall_s']:.1f} s, sys {r['sys_s']:.1f} s, "
                      f"user {r['user_s']:.1f} s, peak {r['peak_mb']:.0f} MiB, PSNR {r['psnr']:.2f} dB", flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in rows.items()}
    print(f"command: padis3d {' '.join(COMMAND + args.extra)} (OMP_NUM_THREADS=1)")
    for k in ("wall_s", "sys_s", "user_s", "peak_mb", "psnr"):
        print(f"median {k:>7}: with {med['with'][k]:8.2f}  without {med['without'][k]:8.2f}  "
              f"with/without {med['with'][k] / med['without'][k]:.2f}")


if __name__ == "__main__":
    main()
