"""Measure the two-scale prior's coarse weight ``w(σ)`` (equation (2) of :mod:`padis3d.priors.two_scale`)
on TRAINING slices of the chest CT and store it beside the low-resolution checkpoint
(``<lowres>.weights.json``, one entry per fine checkpoint, :mod:`padis3d.priors.coarse_weight`).

For each σ of a geometric grid: a noisy copy of each training block, the fine prior's block averages
``B D_f`` and the coarse prior's ``D_c``, and the least-squares mix of the two closest to the clean
block averages. Blocks of 23 slices (the test block's depth, so the partial last block of 3 slices
is calibrated too), never the test slices. Writes a markdown table of what the weight buys at the
coarse scale. One thread:

    OMP_NUM_THREADS=1 python recipes/calibrate_two_scale.py --fine checkpoints/chest128_slab3.pt \\
        --report results/calibrate_two_scale_slab.md
    OMP_NUM_THREADS=1 python recipes/calibrate_two_scale.py --fine checkpoints/chest128_cube.pt \\
        --report results/calibrate_two_scale_cube.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import padis3d  # noqa: E402
from padis3d.atomic import atomic_path  # noqa: E402
from padis3d.io.sample_data import TRAIN_SLICES, chest_ct_slices  # noqa: E402
from padis3d.priors.coarse_weight import calibrate, save_weight  # noqa: E402
from padis3d.priors.factory import two_scale_prior_from  # noqa: E402

SIGMAS = tuple(float(s) for s in np.geomspace(0.005, 10.0, 12))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fine", type=Path, required=True, help="the fine (slab or cube) checkpoint")
    ap.add_argument("--lowres", type=Path, default=ROOT / "checkpoints/chest32_lowres.pt")
    ap.add_argument("--blocks", type=int, nargs="+", default=[40, 63, 66, 89], metavar="Z",
                    help="pairs Z0 Z1 of training slices (default: 40-62 and 66-88)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    ap.add_argument("--repeats", type=int, default=3, help="noisy copies (and grid shifts) of each block per σ")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", type=Path, default=None, help="markdown table of the fit")
    args = ap.parse_args(argv)
    if len(args.blocks) % 2:
        ap.error("--blocks takes pairs Z0 Z1")
    blocks = [(args.blocks[i], args.blocks[i + 1]) for i in range(0, len(args.blocks), 2)]
    for z0, z1 in blocks:
        if not z0 < z1 or not set(range(z0, z1)) <= set(TRAIN_SLICES):
            ap.error(f"every block must be a non-empty range of the training slices "
                     f"{TRAIN_SLICES[0]}-{TRAIN_SLICES[-1]}, got {z0} {z1}")
    if min(args.sigmas) <= 0:
        ap.error("--sigmas must be > 0")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    torch.set_num_threads(1)
    fine, low = padis3d.load_prior(args.fine), padis3d.load_prior(args.lowres)
    clean = [torch.from_numpy(chest_ct_slices(range(z0, z1), args.size))[None, None] for z0, z1 in blocks]
    clean = clean * args.repeats  # every copy gets its own noise and shifts
    built: dict[tuple[int, ...], object] = {}

    def prior_over(shape: tuple[int, ...]):
        if shape not in built:
            built[shape] = two_scale_prior_from(fine, low, shape)
        return built[shape]

    t0 = time.perf_counter()
    weight, rows = calibrate(prior_over, clean, args.sigmas, seed=args.seed)
    seconds = time.perf_counter() - t0
    command = "python recipes/calibrate_two_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    path = save_weight(weight, args.fine, args.lowres, extra={
        "blocks": [list(b) for b in blocks], "size": args.size, "seed": args.seed, "repeats": args.repeats,
        "command": command,
        "fine_steps": fine.meta.get("steps"), "coarse_steps": low.meta.get("steps")})
    blocks_text = ", ".join(f"{z0}-{z1 - 1}" for z0, z1 in blocks)
    lines = [f"Coarse weight w(σ) of the two-scale prior {args.fine.name} + {args.lowres.name} "
             f"({fine.meta.get('steps')} / {low.meta.get('steps')} training steps), fitted on training slices "
             f"{blocks_text} at {args.size}² ({args.repeats} noisy copies of each) in {seconds:.0f} s; PSNR dB at the coarse scale (block averages) of the "
             f"fine prior's B D_f, the coarse prior's D_c and the mix B D_f + w (D_c - B D_f), and at full resolution of D_f and the two-scale D (equation (2)). Stored in "
             f"`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`. Command: `{command}`", "",
             "| σ | w | B D_f | D_c | mix | full resolution: D_f | two-scale D |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['sigma']:.3g} | {r['w']:.3f} | {r['fine']:.2f} | {r['coarse']:.2f} | {r['mix']:.2f} | "
              f"{r['fine_full']:.2f} | {r['mix_full']:.2f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report is not None:
        with atomic_path(args.report) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
