"""Grid search of the TV weight λ per task on *training* slices (never test slices).

    PYTHONPATH=. python benchmarks/tune_tv.py --size 128 --out benchmarks/results/tune_tv_128.json

Prints the best λ per task; copy them into ``padis3d/baselines/tv_weights.py``.
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
from padis3d.metrics import image_metrics
from padis3d.io.sample_data import TRAIN_SLICES, chest_ct_slices

DEFAULT_GRID = {"ct": [0.01, 0.03, 0.1, 0.3, 1.0], "deblur": [0.001, 0.003, 0.01, 0.03, 0.1],
                "sr4": [0.001, 0.003, 0.01, 0.03, 0.1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--slices", type=int, nargs="+", default=[80, 90, 99])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the default grids (e.g. 4 for 256²)")
    ap.add_argument("--grid", type=float, nargs="+", default=None, help="explicit λ grid (overrides the defaults)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not set(args.slices) <= set(TRAIN_SLICES):
        raise SystemExit("tuning must use training slices only")
    x = torch.from_numpy(chest_ct_slices(args.slices, args.size))[:, None]
    results = {}
    for name in args.tasks:
        task = make_task(name, args.size)
        y = task.measure(x, seed=1)
        a = task.op.norm()
        grid = args.grid or [g * args.scale for g in DEFAULT_GRID["ct" if name.startswith(("ct", "la")) else name]]
        scores = {}
        for lam in grid:
            t0 = time.time()
            rec = admm_tv(task.op, y, lam, max_iter=task.tv_iters, op_norm=a, step_ratio=task.tv_step_ratio)
            scores[lam] = float(np.mean(image_metrics(rec, x)["psnr"]))
            print(f"{name} size={args.size} lam={lam:g} psnr={scores[lam]:.2f} ({time.time() - t0:.0f}s)", flush=True)
        best = max(scores, key=scores.get)
        results[name] = {"best": best, "psnr": scores}
        print(f"BEST {name} {args.size}: {best:g}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"size": args.size, "slices": args.slices, "results": results}, indent=1))


if __name__ == "__main__":
    main()
