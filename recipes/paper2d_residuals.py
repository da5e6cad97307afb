"""Data residual ``||A x - y||`` of the main study's figure reconstructions (``paper2d.py``'s
``OUT_reconstructions.npz``, float16 images of one slice) next to their PSNR: which methods fit
the data and which win by the prior. Writes ``OUT_residuals.md``.

    python recipes/paper2d_residuals.py --out results/paper2d
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from padis3d.atomic import atomic_path  # noqa: E402
from padis3d.baselines.tasks import make_task  # noqa: E402
from padis3d.io.sample_data import chest_ct_slices  # noqa: E402
from padis3d.metrics import psnr  # noqa: E402
from recipes.paper2d import FIGURE_ROWS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the paper2d.py --out prefix")
    ap.add_argument("--slice", type=int, default=120)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = np.load(args.out.parent / f"{args.out.name}_reconstructions.npz")
    x = torch.from_numpy(chest_ct_slices([args.slice], args.size))[:, None]
    lines = [f"Slice {args.slice}: PSNR dB / data residual ‖A x - y‖ (same measurements as paper2d.py); "
             "the newest cached image of each row.", "", "| row | task | PSNR | residual ‖A x - y‖ | ‖y‖ |", "|---" * 5 + "|"]
    for task_name in ("ct20", "ct8", "deblur", "sr4"):
        task = make_task(task_name, args.size)
        y = task.measure(x, seed=args.slice)
        for row in FIGURE_ROWS:
            keys = [k for k in cache.files if k.startswith(f"{task_name}/{row}/{args.slice}/")]
            if not keys:
                continue
            rec = torch.from_numpy(cache[keys[-1]].astype(np.float32))[None, None]
            lines.append(f"| {row} | {task_name} | {psnr(rec[0, 0], x[0, 0]):.2f} | "
                         f"{float((task.op(rec) - y).norm()):.2f} | {float(y.norm()):.0f} |")
    text = "\n".join(lines) + "\n"
    with atomic_path(args.out.parent / f"{args.out.name}_residuals.md") as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
