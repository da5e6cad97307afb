"""Classical-baseline table on the default chest CT test slices: direct baseline (FBP-Hann,
blurred, bicubic) and ADMM-TV, PSNR / SSIM (data range 1 after clipping) and seconds
per slice, next to the reference numbers of the technical brief.

    PYTHONPATH=. python benchmarks/baselines_table.py --size 128 --out benchmarks/results/table_128
    PYTHONPATH=. python benchmarks/baselines_table.py --size 256 --slices 110 117 124 131 --out benchmarks/results/table_256

CT is noiseless (as the reference); ``--ct-sigma`` adds Gaussian sinogram noise and
``--ct-photons I0`` Poisson photon noise (λ was tuned noiseless).
Deblur / SR use σ = 0.01 Gaussian noise with seed 0.  λ comes from
``padis3d.baselines.tv_weights`` (tuned on training slices).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from padis3d.baselines.tasks import TASKS, make_task
from padis3d.baselines.tv import admm_tv
from padis3d.baselines.tv_weights import tv_weight
from padis3d.metrics import image_metrics
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices

# (baseline PSNR, TV PSNR, TV SSIM) from the technical brief; None where not given
REFERENCE = {
    256: {"ct20": (21.64, 29.78, .846), "ct8": (16.03, 23.71, .684), "ct60": (None, 38.98, None),
          "la90": (None, 25.69, None), "deblur": (24.62, 31.50, None), "sr4": (27.29, 27.63, None)},
    128: {"ct20": (24.88, 31.79, .908), "ct8": (18.70, 24.87, .717), "ct60": (None, 43.17, None),
          "la90": (None, 26.92, None), "deblur": (22.93, 29.15, None), "sr4": (25.44, 26.10, None)},
}


def run_task(name: str, size: int, x: torch.Tensor, ct_sigma: float, ct_photons: float | None) -> dict:
    task = make_task(name, size, ct_sigma=ct_sigma, incident_count=ct_photons)
    y = task.measure(x, seed=0)
    t0 = time.perf_counter()
    base = task.baseline(y)
    t_base = (time.perf_counter() - t0) / len(x)
    lam = tv_weight(name, size)
    t0 = time.perf_counter()
    rec = admm_tv(task.op, y, lam, max_iter=task.tv_iters, step_ratio=task.tv_step_ratio)
    t_tv = (time.perf_counter() - t0) / len(x)
    mb, mt = image_metrics(base, x), image_metrics(rec, x)
    return {"task": name, "baseline": task.baseline_name, "lambda": lam, "tv_max_iter": task.tv_iters,
            "baseline_psnr": float(mb["psnr"].mean()), "baseline_ssim": float(mb["ssim"].mean()),
            "tv_psnr": float(mt["psnr"].mean()), "tv_ssim": float(mt["ssim"].mean()),
            "baseline_s_per_slice": t_base, "tv_s_per_slice": t_tv,
            "reference": REFERENCE.get(size, {}).get(name)}


def markdown(rows: list[dict], size: int, slices: list[int]) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.2f}" if v > 1 else f"{v:.3f}"  # noqa: E731
    contiguous = slices == list(range(slices[0], slices[-1] + 1))
    which = f"{slices[0]}..{slices[-1]}" if contiguous else ", ".join(map(str, slices))
    out = [f"Chest CT test slices {which} ({len(slices)} slices), {size}x{size}; CPU, 1 torch thread",
           "", "| task | baseline | baseline PSNR / SSIM | ADMM-TV PSNR / SSIM | λ | s/slice base / TV |"
           " reference base / TV (SSIM) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = r["reference"] or (None, None, None)
        out.append(f"| {r['task']} | {r['baseline']} | {fmt(r['baseline_psnr'])} / {fmt(r['baseline_ssim'])} | "
                   f"{fmt(r['tv_psnr'])} / {fmt(r['tv_ssim'])} | {r['lambda']:g} | "
                   f"{r['baseline_s_per_slice']:.3f} / {r['tv_s_per_slice']:.1f} | "
                   f"{fmt(ref[0])} / {fmt(ref[1])} ({fmt(ref[2])}) |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--slices", type=int, nargs="+", default=list(TEST_SLICES))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--ct-sigma", type=float, default=0.0, help="Gaussian sinogram noise for CT (0: noiseless)")
    ap.add_argument("--ct-photons", type=float, default=None, help="CT Poisson noise: incident photons per bin")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="combine earlier OUT.json files (same size and slices) into one table at --out")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        meta, rows = parts[0]["meta"], [r for part in parts for r in part["rows"]]
        table = markdown(rows, meta["size"], meta["slices"])
        print(table)
        if args.out:
            args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
            args.out.with_suffix(".md").write_text(table + "\n")
        return
    torch.set_num_threads(1)
    x = torch.from_numpy(chest_ct_slices(args.slices, args.size))[:, None]
    rows = []
    for name in args.tasks:
        rows.append(run_task(name, args.size, x, args.ct_sigma, args.ct_photons))
        print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows, args.size, args.slices)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"size": args.size, "slices": args.slices, "ct_sigma": args.ct_sigma, "ct_photons": args.ct_photons, "torch_threads": 1}
        args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    np.seterr(divide="ignore")
    main()
