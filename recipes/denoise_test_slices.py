"""Measured figure for a prior: one-step Tweedie denoising of the held-out chest CT test slices.

    PYTHONPATH=. python recipes/denoise_test_slices.py checkpoints/chest128_patch.pt [--tile 48] [--sigmas 0.05 0.1 0.2]

Adds Gaussian noise of std sigma (image units, [0, 1] scale) to test slices 110-132 at the prior's
image size, denoises with D(x; sigma) (patch priors: tiles of --tile at random shifts, averaged over
--shifts draws; whole-image priors: the whole image), and prints PSNR of noisy and denoised images.
"""

from __future__ import annotations

import argparse

import torch

from padis3d.priors.checkpoint import load_prior
from padis3d.io.sample_data import TEST_SLICES, chest_ct_slices
from tiling.grid import TileGrid


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((x - ref) ** 2).mean()))


@torch.no_grad()
def denoise(prior, noisy: torch.Tensor, sigma: float, tile: int | None, shifts: int, gen: torch.Generator):
    shape = tuple(noisy.shape[2:])
    patch = prior.meta.get("patch_sizes", [None]) != [None]
    grid = TileGrid(shape, tile) if patch else TileGrid.whole(shape)
    out = torch.zeros_like(noisy)
    for _ in range(shifts if patch else 1):
        shift = grid.random_shift(gen)
        tiles = grid.extract(grid.pad_image(noisy), shift)
        pos = grid.positions(shift).repeat(noisy.shape[0], 1, 1, 1)
        den = torch.cat([prior(t, sigma, p) for t, p in zip(tiles.split(64), pos.split(64))])
        out += grid.crop(grid.scatter(den, shift))
    return out / (shifts if patch else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prior")
    ap.add_argument("--tile", type=int, default=48)
    ap.add_argument("--shifts", type=int, default=1)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_prior(args.prior)
    size = prior.meta["image_shape"][-1]
    clean = torch.from_numpy(chest_ct_slices(TEST_SLICES, size))[:, None]
    gen = torch.Generator().manual_seed(0)
    print(f"{args.prior}: step {prior.meta['steps']}, {prior.meta['cpu_seconds'] / 3600:.2f} CPU h, "
          f"test slices {TEST_SLICES[0]}-{TEST_SLICES[-1]} at {size}^2")
    for sigma in args.sigmas:
        noisy = clean + sigma * torch.randn(clean.shape, generator=gen)
        den = denoise(prior, noisy, sigma, args.tile, args.shifts, gen)
        print(f"sigma {sigma:.3f}: noisy {psnr(noisy, clean):.2f} dB -> denoised {psnr(den, clean):.2f} dB")


if __name__ == "__main__":
    main()
