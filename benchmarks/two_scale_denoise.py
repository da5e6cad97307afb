"""Benchmark: does the low-resolution prior help the patch prior at the coarse scale? One denoising
step, no measurements, on a block of 23 TRAINING slices (66-88 by default: the test block's depth,
never the test slices) at 128², one thread. Run by hand (numbers printed, never asserted):

    OMP_NUM_THREADS=1 python benchmarks/two_scale_denoise.py --out benchmarks/results/two_scale_denoise.txt
    OMP_NUM_THREADS=1 python benchmarks/two_scale_denoise.py --fine cube --out benchmarks/results/two_scale_denoise_cube.txt
    OMP_NUM_THREADS=1 python benchmarks/two_scale_denoise.py --fine cube --tile 16   # its smaller cubes

The input is what a sampler hands the prior: noise of std σ on the whole canvas, its padding
included (as in every training patch). For each σ: PSNR of the fine prior's ``D_f`` (also with the
same noise on the image and zeros in the padding: what a patch prior never saw) and of the
two-scale ``D`` (equation (2) of :mod:`padis3d.priors.two_scale` with ``--weight``, default 1:
equation (1)) against the clean block, and at the coarse scale (block averages by the
low-resolution prior's factor) of the noisy input ``B x_σ``, of ``D_c(B x_σ; σ_c)`` (noisy and zero
padding) and of ``B D_f``: the two-scale prior can only win where ``D_c`` beats ``B D_f``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1]."""
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def main(argv: list[str] | None = None) -> None:
    import padis3d
    from padis3d.io.sample_data import TRAIN_SLICES, chest_ct_slices
    from padis3d.priors.factory import two_scale_prior_from, volume_prior_from
    from padis3d.priors.coarse_weight import weight_for
    from padis3d.priors.two_scale import block_average

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fine", choices=("slab", "cube"), default="slab")
    ap.add_argument("--tile", default="auto", help="the fine prior's tile edge (default: its largest training patch)")
    ap.add_argument("--weight", default="1", help="the coarse weight: 'measured' or a number in [0, 1] (default 1: "
                    "equation (1))")
    ap.add_argument("--lowres", default="checkpoints/chest32_lowres.pt")
    ap.add_argument("--block", type=int, nargs=2, default=(66, 89), metavar=("Z0", "Z1"))
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.2, 0.5, 1.0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not set(range(*args.block)) <= set(TRAIN_SLICES):
        ap.error(f"--block must lie in the training slices {TRAIN_SLICES[0]}-{TRAIN_SLICES[-1]}")
    torch.set_num_threads(1)
    vol = torch.from_numpy(chest_ct_slices(range(*args.block), 128))[None, None]
    fine_ckpt = padis3d.load_prior(ROOT / f"checkpoints/chest128_{'slab3' if args.fine == 'slab' else 'cube'}.pt")
    low = padis3d.load_prior(ROOT / args.lowres)
    fine = volume_prior_from(fine_ckpt, vol.shape[2:], args.tile if args.tile == "auto" else int(args.tile))
    weight = weight_for(args.weight, fine_ckpt.path, low.path)
    two = two_scale_prior_from(fine, low, vol.shape[2:], coarse_weight=weight)
    truth_c = block_average(vol, two.factor)
    lines = [f"two-scale denoising, training slices {args.block[0]}-{args.block[1] - 1} at 128²: fine = "
             f"{fine_ckpt.path.name} ({fine_ckpt.meta.get('steps')} steps, tile {fine.grid.tile}, canvas "
             f"{fine.grid.canvas_shape}), coarse = {low.path.name} ({low.meta.get('steps')} steps, factor "
             f"{two.factor}, coarse {two.coarse.grid.shape}, tile {two.coarse.grid.tile}, canvas "
             f"{two.coarse.grid.canvas_shape}), weight {args.weight}; PSNR dB. Input: a sampler's state (noise on the "
             "whole canvas, padding included); 'zero padding': the same noise on the image only",
             "", "| σ | D_f | D_f, zero padding | two-scale D | B x_σ | D_c(B x_σ; σ_c) | D_c, zero padding "
             "| B D_f |",
             "|---|---|---|---|---|---|---|---|"]
    print(lines[0], flush=True)
    for sigma in args.sigmas:
        x = fine.embed(vol) + sigma * torch.randn((1, 1, *fine.state_shape), generator=torch.Generator().manual_seed(0))
        noisy = fine.crop(x)
        d_f = fine.crop(fine.denoise(x, sigma, generator=torch.Generator().manual_seed(1)))
        d_f0 = fine.crop(fine.denoise(fine.embed(noisy), sigma, generator=torch.Generator().manual_seed(1)))
        d = two.crop(two.denoise(x, sigma, generator=torch.Generator().manual_seed(1)))  # the same fine shift
        sc = two.coarse_sigma(sigma, 3)
        kw, padding = two.coarse_draws(torch.Generator().manual_seed(2), (1, 1))
        d_c = [two.coarse.crop(two.coarse.denoise(two.coarse_state(block_average(noisy, two.factor), sc, p), sc, **kw))
               for p in (padding, None)]
        lines.append(f"| {sigma:g} | {psnr(d_f, vol):.2f} | {psnr(d_f0, vol):.2f} | {psnr(d, vol):.2f} | "
                     f"{psnr(block_average(noisy, two.factor), truth_c):.2f} | {psnr(d_c[0], truth_c):.2f} | "
                     f"{psnr(d_c[1], truth_c):.2f} | {psnr(block_average(d_f, two.factor), truth_c):.2f} |")
        print(lines[-1], flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
