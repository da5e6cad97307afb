"""Benchmark: ``padis3d reconstruct --task denoise`` on volumes of growing size under one
memory budget. Peak memory should stay flat and time per voxel constant.

Synthetic ``(z, 64, 64)`` float32 volumes (``.npy``), from 1x to 8x the budget
in input bytes, each denoised in its own subprocess with a tiny randomly initialised 2D patch
prior (16-pixel tiles; built here, so no checkpoint is needed) and a few DDS levels. For
each run: peak resident memory (``VmHWM`` of the child, polled, and the figure the command
reports itself; not ``ru_maxrss``, which Linux inflates with the parent's pre-``exec``
address space), wall time, the command's own pipeline time (reading, sampling, metrics,
writing; without interpreter start-up and imports) and its DDS sampling time. Baseline memory: a trivial run
of the same interpreter that imports the command's libraries and loads the prior.

Prints a table and two checks: time per voxel, largest vs smallest volume (goal: within
20 %), and peak memory within each run's allowance (budget + model + the start-up overhead it
measured, + 10 %: ``report.json``'s ``memory.allowance_mb``) for every size. Run by hand:

    python benchmarks/volume_scaling.py --out benchmarks/results/volume_scaling.txt
    python benchmarks/volume_scaling.py --quick          # 2 small sizes, a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's padis3d, also in the child runs (PYTHONPATH)

from padis3d.memory import wait_polling_peak  # noqa: E402
SIDE = 64


def tiny_prior(path: Path, seed: int = 0) -> int:
    """Save a small random 2D patch prior (EDM UNet, features 16/32) to ``path``; its bytes."""
    import torch

    from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save
    from padis3d.priors.network import EDMDenoiser, PriorConfig

    config = PriorConfig(features=(16, 32), attention_levels=(False, False), norm_num_groups=8,
                         num_head_channels=8)
    model = EDMDenoiser(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # MONAI zero-initialises output convs; random weights make outputs depend on inputs
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": config.to_dict(), "ema": model.state_dict(),
                 "meta": {"image_shape": [32, 32], "patch_sizes": [16, 8], "note": "random, for benchmarks"}}, path)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def synthetic_volume(path: Path, nz: int, rows: int = 256) -> int:
    """A smooth ``(nz, 64, 64)`` float32 volume written band by band; its bytes."""
    from numpy.lib.format import open_memmap

    vol = open_memmap(path, mode="w+", dtype=np.float32, shape=(nz, SIDE, SIDE))
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    for a in range(0, nz, rows):
        z = np.arange(a, min(a + rows, nz), dtype=np.float32)[:, None, None]
        vol[a:a + len(z)] = np.sin(z / 5) * np.cos(y / 7) + 0.5 * np.sin(x / 3) + 0.2 * np.cos((x + y + z) / 11)
    vol.flush()
    del vol
    return nz * SIDE * SIDE * 4


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` (repository on the import path); its polled peak memory (MiB) and wall time (s)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = wait_polling_peak(proc)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return peak, wall


BASELINE = """
import sys
import dask, matplotlib, nibabel, skimage.transform, torch, zarr
import padis3d.cli, padis3d.cli.volume, padis3d.volume.runner, padis3d.metrics
from padis3d import load_prior
load_prior(sys.argv[1])
from padis3d.memory import vm_hwm_mb
print(vm_hwm_mb())
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-mb", type=float, default=4.0, help="--memory-budget-mb of every run (default 4)")
    p.add_argument("--factors", type=float, nargs="+", default=[1, 2, 4, 8],
                   help="input volume bytes as multiples of the budget (default 1 2 4 8)")
    p.add_argument("--steps", type=int, default=2, help="DDS levels per run (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each run (default 1)")
    p.add_argument("--quick", action="store_true", help="factors 0.5 and 2 at budget 1 MiB, 1 level")
    p.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = p.parse_args()
    if args.quick:
        args.budget_mb, args.factors, args.steps = 1.0, [0.5, 2], 1
    budget = int(args.budget_mb * 2**20)
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    with tempfile.TemporaryDirectory(prefix="volume_scaling_") as tmp:
        tmp = Path(tmp)
        model_bytes = tiny_prior(tmp / "prior.pt")
        base_peak = float(subprocess.run([sys.executable, "-c", BASELINE, str(tmp / "prior.pt")], cwd=ROOT,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                                         capture_output=True, text=True).stdout.split()[-1])
        say(f"padis3d reconstruct --task denoise, (z, {SIDE}, {SIDE}) float32 .npy volumes, --memory-budget-mb "
            f"{args.budget_mb:g}, --steps {args.steps} --band 16 --threads {args.threads}, tiny random prior "
            f"({model_bytes / 2**20:.2f} MiB of weights, 16-pixel tiles)")
        say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}")
        say(f"baseline peak memory (interpreter + libraries + prior, no work): {base_peak:.0f} MiB")
        say()
        head = (f"{'slices':>7} {'volume MiB':>10} {'x budget':>8} {'peak MiB':>8} {'- base':>7} {'- first':>8} "
                f"{'wall s':>7} {'pipeline s':>10} {'wall ns/vox':>11} {'pipe ns/vox':>11} {'DDS ns/vox':>10} {'< limit':>7}")
        say(head)
        say("-" * len(head))
        rows = []
        for factor in args.factors:
            nz = max(8, int(round(factor * budget / (SIDE * SIDE * 4))))
            vol_bytes = synthetic_volume(tmp / f"v{nz}.npy", nz)
            out = tmp / f"out{nz}"
            peak, wall = measure([sys.executable, "-m", "padis3d.cli", "reconstruct", "--task", "denoise", "--denoiser", "dds",
                                  "--checkpoint", str(tmp / "prior.pt"), "--input", str(tmp / f"v{nz}.npy"),
                                  "--size", str(SIDE), "--steps", str(args.steps), "--band", "16", "--threads",
                                  str(args.threads), "--memory-budget-mb", str(args.budget_mb), "--no-progress",
                                  "--out", str(out)])
            report = json.loads((out / "report.json").read_text())
            peak = max(peak, report["memory"]["peak_rss_mb"])
            pipe = report["timings_s"]["total"]
            voxels = nz * SIDE * SIDE
            dds = report["timings_s"]["sample"]
            limit = report["memory"]["allowance_mb"]
            rows.append((nz, peak, wall / voxels, pipe / voxels, dds / voxels, limit))
            ok = peak <= limit
            say(f"{nz:>7} {vol_bytes / 2**20:>10.1f} {vol_bytes / budget:>8.1f} {peak:>8.0f} {peak - base_peak:>7.0f} "
                f"{peak - rows[0][1]:>8.0f} {wall:>7.1f} {pipe:>10.1f} {1e9 * wall / voxels:>11.0f} "
                f"{1e9 * pipe / voxels:>11.0f} {1e9 * dds / voxels:>10.0f} {'yes' if ok else 'NO':>7}")
            shutil_rm(out)
        say()
        first, last = rows[0], rows[-1]
        ratio_pipe, ratio_wall, ratio_dds = last[3] / first[3], last[2] / first[2], last[4] / first[4]
        growth = last[1] - first[1]
        say(f"time per voxel, largest / smallest volume: pipeline {ratio_pipe:.2f} "
            f"({'within' if abs(ratio_pipe - 1) <= 0.2 else 'NOT within'} 20 %), DDS sampling alone {ratio_dds:.2f}, "
            f"wall {ratio_wall:.2f} "
            f"(wall includes ~{first[2] * first[0] * SIDE * SIDE - first[3] * first[0] * SIDE * SIDE:.0f} s of start-up "
            f"per run, which weighs on small volumes)")
        say(f"peak memory growth, smallest -> largest ({last[0] / first[0]:.0f}x the slices): {growth:+.0f} MiB; "
            f"allowance (budget + model + measured start-up overhead) + 10 % = {min(r[5] for r in rows):.0f}-"
            f"{max(r[5] for r in rows):.0f} MiB: {'all runs within' if all(r[1] <= r[5] for r in rows) else 'EXCEEDED'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")
    return 0


def shutil_rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
