"""One command: a prior-based reconstruction of a whole NIfTI volume, out of core, under a
small memory budget, with its peak memory measured against that budget.

    PYTHONPATH=. python recipes/nifti_out_of_core.py                       # chest CT, denoise, 128^2
    PYTHONPATH=. python recipes/nifti_out_of_core.py --size native          # 512^2, the scanner's grid
    PYTHONPATH=. python recipes/nifti_out_of_core.py --task ct3d-parallel   # 90-degree limited angle
    PYTHONPATH=. python recipes/nifti_out_of_core.py --input scan.nii.gz --out outputs/scan
    PYTHONPATH=. python recipes/nifti_out_of_core.py --smoke                # a few seconds, tiny sizes

Input: any 3D NIfTI (default: the bundled 512x512x133 chest CT, all slices). It runs
``padis3d reconstruct --task denoise`` (Gaussian noise of std ``--noise`` simulated on the
[0, 1]-windowed volume; by default the prior's Tweedie estimate at that noise level, one
network pass, ``--denoiser dds`` for DDS sampling) or ``--task ct3d-parallel`` (``--views`` over ``--span-deg``) with the
shipped 2D patch prior ``checkpoints/chest128_patch.pt`` in a subprocess whose peak resident
memory (``VmHWM``) is polled, and writes ``OUT/run/reconstruction.nii[.gz]`` (the input's
affine and header; voxel size scaled if resized), ``OUT/run/report.json`` (per-plane
metrics), ``OUT/run/panels.png`` and ``OUT/recipe.json`` (command, seed, versions, peak
memory against the budget, metrics summary).

Size: the prior was trained on 128x128 slices of this CT, i.e. 512x512 downsampled 4x
(about 2.7 mm pixels), with 16-48 pixel patches. At ``--size 128`` (the default) every 48-pixel
tile shows anatomy at the scale and noise texture the prior learned, which is what gives a
quality result; the output NIfTI is then 128x128 in-plane with a 4x larger voxel size in its
affine. ``--size native`` keeps the scanner's grid (512x512 here, nothing resampled), but the
prior then sees 4x magnified structures it never saw in training, and the network does 16x
the work per slice; use it when the output must stay on the input grid.

Resumable: rerunning the same command continues an interrupted run from its last finished
level (the volume runner's work folder, ``OUT/run/work``), and returns at once, reusing the
outputs, when the run had finished (``--force`` redoes it).
"""

from __future__ import annotations

READER = "canonical SPL slices"  # padis3d.io.orientation (issue 27): part of a result's key

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from padis3d.atomic import write_json  # noqa: E402
from padis3d.errors import PadisError  # noqa: E402
from padis3d.memory import wait_polling_peak  # noqa: E402

CHECKPOINT = ROOT / "checkpoints" / "chest128_patch.pt"


def input_shape(path: Path) -> tuple[int, int, int]:
    """``(z, y, x)`` of a NIfTI volume, from its header only."""
    from padis3d.io.volume_stream import open_volume

    src = open_volume(path)
    if src.kind != "nifti":
        raise PadisError(f"{path} is not a NIfTI file (.nii or .nii.gz); this recipe takes NIfTI volumes")
    return src.shape


def build_command(args: argparse.Namespace, source: Path, shape: tuple[int, int, int], out: Path) -> list[str]:
    nz, ny, _ = shape
    size = ny if args.size == "native" else int(args.size)
    cmd = [sys.executable, "-m", "padis3d.cli", "reconstruct", "--task", args.task, "--input", str(source),
           "--checkpoint", str(args.checkpoint), "--size", str(size), "--steps", str(args.steps),
           "--memory-budget-mb", str(args.memory_budget_mb), "--band", str(args.band), "--seed", str(args.seed),
           "--out", str(out)]
    if args.task == "denoise":
        cmd += ["--noise", str(args.noise), "--denoiser", args.denoiser]
    else:
        cmd += ["--views", str(args.views), "--span-deg", str(args.span_deg)]
    if args.slices:
        cmd += ["--slices", *map(str, args.slices)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.no_progress:
        cmd.append("--no-progress")
    return cmd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=Path, default=None, help="NIfTI volume (default: the bundled chest CT)")
    p.add_argument("--task", choices=("denoise", "ct3d-parallel"), default="denoise")
    p.add_argument("--size", default="128", help="in-plane size: an int, or 'native' (default 128, the prior's scale)")
    p.add_argument("--memory-budget-mb", type=float, default=64.0, help="memory budget in MiB (default 64)")
    p.add_argument("--steps", type=int, default=20, help="DDS noise levels (default 20; not used by the Tweedie denoiser)")
    p.add_argument("--denoiser", choices=("tweedie", "dds"), default="tweedie",
                   help="denoise: the prior's posterior mean at the noise level (default) or DDS sampling")
    p.add_argument("--noise", type=float, default=0.05, help="denoise: noise std on the [0, 1] scale (default 0.05)")
    p.add_argument("--views", type=int, default=90, help="ct3d-parallel: views (default 90)")
    p.add_argument("--span-deg", type=float, default=90.0, help="ct3d-parallel: angular span (default 90)")
    p.add_argument("--slices", type=int, nargs=2, default=None, metavar=("Z0", "Z1"), help="axial range (default all)")
    p.add_argument("--band", type=int, default=16, help="slices per band of the sampler (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: padis3d reconstruct's, 1)")
    p.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    p.add_argument("--out", type=Path, default=Path("outputs/nifti_out_of_core"))
    p.add_argument("--force", action="store_true", help="redo a finished run")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (at most 12 slices of 32x32, 3 levels, "
                   "budget 32 MiB): a check that runs in seconds")
    args = p.parse_args(argv)
    try:
        return run(args)
    except PadisError as exc:
        print(f"nifti_out_of_core: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from padis3d.io.sample_data import chest_ct_path

    source = args.input or chest_ct_path()
    if not Path(source).exists():
        raise PadisError(f"input {source} does not exist")
    shape = input_shape(Path(source))
    if args.smoke:
        mid = shape[0] // 2
        args.slices = args.slices or [max(0, mid - 6), min(shape[0], mid + 6)]
        args.size, args.steps, args.memory_budget_mb = str(min(32, shape[1])), 3, 32.0
    if args.size != "native" and not args.size.isdigit():
        raise PadisError(f"--size must be an int or 'native', got {args.size!r}")
    run_dir = args.out / "run"
    cmd = build_command(args, Path(source), shape, run_dir)
    # READER: results made before the readers handed the prior canonically oriented slices are stale
    key = hashlib.sha1(json.dumps([READER, *[c for c in cmd[1:] if c != "--no-progress"]]).encode()).hexdigest()[:12]
    summary_path = args.out / "recipe.json"
    if summary_path.exists() and not args.force:
        previous = json.loads(summary_path.read_text())
        if previous.get("key") == key and (run_dir / previous["output"]).exists():
            print(f"already done (reusing {summary_path}; --force redoes it)")
            print_summary(previous)
            return 0
    if args.force:
        shutil.rmtree(run_dir, ignore_errors=True)
    print("running: " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    polled = wait_polling_peak(proc, interval=0.1)
    if proc.returncode != 0:
        raise PadisError(f"the reconstruction failed (exit {proc.returncode}); rerun the same command to resume")
    wall = time.perf_counter() - t0
    report = json.loads((run_dir / "report.json").read_text())
    peak = max(polled, report["memory"]["peak_rss_mb"])
    # the allowance: (budget + model + the start-up overhead the run measured) + 10 % (README)
    mem = report["memory"]
    limit = (args.memory_budget_mb + mem["model_mb"] + mem["overhead_mb"]) * 1.1
    method = report["method"]
    baseline_name = next(k for k in report["metrics"] if k != method)
    m_base, m_dds = report["metrics"][baseline_name], report["metrics"][method]
    summary = {
        "key": key, "command": cmd[1:], "input": str(source), "input_shape_zyx": list(shape), "task": args.task,
        "work_shape_zyx": report["shape"], "seed": args.seed, "method": method, "steps": report["settings"]["steps"],
        "memory": {"budget_mb": args.memory_budget_mb, "model_mb": round(mem["model_mb"], 2),
                   "overhead_mb": round(mem["overhead_mb"], 1), "limit_mb": round(limit, 1),
                   "peak_rss_mb": round(peak, 1), "below_limit": peak <= limit,
                   "stage_peaks_mb": mem["stage_peaks_mb"], "band_rows": mem["band_rows"]},
        "metrics": {baseline_name: m_base, method: m_dds},
        "improved": {k: m_dds[k] > m_base[k] for k in ("psnr_3views", "ssim_3views", "psnr_volume")},
        "seconds": {"wall": round(wall, 1), **{k: round(v, 1) for k, v in report["timings_s"].items()}},
        "resumed_from_step": report["resumed_from_step"], "output": report["outputs"][0],
        "versions": {**report["versions"], **_more_versions()},
    }
    write_json(summary_path, summary)
    print_summary(summary)
    print(f"wrote {summary_path} and {run_dir}/")
    return 0


def _more_versions() -> dict[str, str]:
    import dask
    import nibabel
    import zarr

    return {"nibabel": nibabel.__version__, "zarr": zarr.__version__, "dask": dask.__version__,
            "python": sys.version.split()[0]}


def print_summary(s: dict) -> None:
    mem = s["memory"]
    print(f"{s['task']} of {s['input']} {tuple(s['input_shape_zyx'])} -> {tuple(s['work_shape_zyx'])}, "
          f"{s.get('method', 'dds')}, {s['steps']} level(s), seed {s['seed']}")
    if "overhead_mb" in mem:
        allowance = (f"(budget {mem['budget_mb']:g} + model {mem['model_mb']:.1f} + start-up overhead "
                     f"{mem['overhead_mb']:.0f} MiB) + 10 %")
    else:  # a summary written before the overhead was measured
        allowance = f"budget {mem['budget_mb']:g} + model {mem['model_file_mb']:.1f} + fixed 500 MiB"
    print(f"peak memory {mem['peak_rss_mb']:.0f} MiB; allowance {allowance} = {mem['limit_mb']:.0f} MiB: "
          f"{'below' if mem['below_limit'] else 'ABOVE'}")
    for name, m in s["metrics"].items():
        print(f"{name:>10}: PSNR 3 views {m['psnr_3views']:.2f} dB, SSIM 3 views {m['ssim_3views']:.3f}, "
              f"PSNR volume {m['psnr_volume']:.2f} dB")
    print(f"time {s['seconds']['wall']:.0f} s (sampling {s['seconds']['sample']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
