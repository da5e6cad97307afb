"""Benchmark: one denoising step of volume priors side by side (slab, cube, or any checkpoint), on a
block of 23 TRAINING slices (66-88 by default: the test block's depth, never the test slices) at
128², one thread. Run by hand (numbers printed, never asserted):

    OMP_NUM_THREADS=1 python benchmarks/volume_denoise.py --out benchmarks/results/volume_denoise.txt \\
        --priors checkpoints/chest128_slab3.pt SLAB_3485/prior.pt checkpoints/chest128_cube.pt

It answers "is the cube prior worse, or trained less?": the slab prior retrained for the cube
prior's step count (``SLAB_3485``: the slab prior's first training command with ``--steps 3485``,
see the closing note of issue 17) against both shipped priors, at equal input. Each prior gets
what a sampler at level σ hands it: the same noisy block ``x + σ n`` and fresh noise of std σ on
its own canvas padding (``PatchPrior.embed_noisy``); PSNR (clipped, as every table) of
``D(x_σ; σ)`` against the clean block, averaged over ``--draws`` noise and grid-shift draws: of
the whole block, of its two end slices (first and last), and of the slices between.

Why the end slices: a slab prior is trained on slabs of ``k`` real slices, but a slab tile that
straddles the block's end holds padding slices (noise only), which it never saw; a cube prior's
training cubes include the training block's own z padding. ``--padding-slices`` adds each slab
prior as it was before :mod:`padis3d.priors.slab_ends` (padding slices in its end tiles).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    import padis3d
    from padis3d.io.sample_data import TRAIN_SLICES, chest_ct_slices
    from padis3d.metrics import psnr
    from padis3d.priors.factory import volume_prior_from
    from padis3d.priors.patch import PatchPrior

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", type=Path, nargs="+",
                    default=[ROOT / "checkpoints/chest128_slab3.pt", ROOT / "checkpoints/chest128_cube.pt"])
    ap.add_argument("--block", type=int, nargs=2, default=(66, 89), metavar=("Z0", "Z1"))
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.2, 0.5, 1.0, 2.0])
    ap.add_argument("--draws", type=int, default=2, help="noise and shift draws per σ (default 2)")
    ap.add_argument("--padding-slices", action="store_true",
                    help="also each slab prior with padding slices in its end tiles (before padis3d.priors.slab_ends)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not set(range(*args.block)) <= set(TRAIN_SLICES):
        ap.error(f"--block must lie in the training slices {TRAIN_SLICES[0]}-{TRAIN_SLICES[-1]}")
    if args.draws < 1:
        ap.error("--draws must be at least 1")
    missing = [str(p) for p in args.priors if not p.is_file()]
    if missing:
        ap.error(f"no such checkpoint: {', '.join(missing)}")
    torch.set_num_threads(1)
    vol = torch.from_numpy(chest_ct_slices(range(*args.block), 128))[None, None]
    loaded = [padis3d.load_prior(p) for p in args.priors]
    priors = [volume_prior_from(p, vol.shape[2:]) for p in loaded]
    names = [f"{p.path.parent.name}/{p.path.name} ({p.meta.get('steps')} steps, tile {v.grid.tile})"
             for p, v in zip(loaded, priors)]
    if args.padding_slices:
        for p, v in list(zip(loaded, priors)):
            if p.meta.get("mode") == "slab":
                priors.append(PatchPrior(p, vol.shape[2:], v.grid.tile, fold_axes=(0,), min_shifts=(v.grid.tile[0], 1, 1)))
                names.append(f"{p.path.parent.name}/{p.path.name}, padding slices in its end tiles")
    lines = [f"one denoising step, training slices {args.block[0]}-{args.block[1] - 1} at 128², PSNR dB, mean of "
             f"{args.draws} draws; input: a sampler's state (noise on the block and on each canvas's padding)", ""]
    lines += [f"* {chr(65 + i)}: {n}" for i, n in enumerate(names)] + [""]
    lines += ["PSNR of the whole block / its two end slices / the slices between", "",
              "| σ | " + " | ".join(chr(65 + i) for i in range(len(priors))) + " | seconds per step |",
              "|---" * (len(priors) + 2) + "|"]
    print("\n".join(lines), flush=True)
    ends = [0, vol.shape[2] - 1]
    for sigma in args.sigmas:
        scores, seconds = [[] for _ in priors], [0.0 for _ in priors]
        for draw in range(args.draws):
            noisy = vol + sigma * torch.randn(vol.shape, generator=torch.Generator().manual_seed(draw))
            for i, prior in enumerate(priors):
                g = torch.Generator().manual_seed(1000 + draw)
                t0 = time.process_time()
                d = prior.crop(prior.denoise(prior.embed_noisy(noisy, sigma, g), sigma, generator=g))
                seconds[i] += (time.process_time() - t0) / args.draws
                scores[i].append([psnr(d, vol), psnr(d[:, :, ends], vol[:, :, ends]),
                                  psnr(d[:, :, 1:-1], vol[:, :, 1:-1])])
        means = [[sum(v) / len(v) for v in zip(*s)] for s in scores]
        lines.append(f"| {sigma:g} | " + " | ".join(" / ".join(f"{v:.2f}" for v in m) for m in means) + " | "
                     + " / ".join(f"{t:.0f}" for t in seconds) + " |")
        print(lines[-1], flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
