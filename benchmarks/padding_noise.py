"""Benchmark: what a patch prior makes of a zero-padded canvas. One denoising step of the 2D patch
prior on TRAINING slices (60 and 90 by default) at 128², one thread, run by hand (numbers printed,
never asserted):

    OMP_NUM_THREADS=1 python benchmarks/padding_noise.py --out benchmarks/results/padding_noise.txt

Every training patch carries noise on its padding too, and so does every sampler state (the
samplers start from noise on the whole canvas). An image denoiser that embeds a noisy image in
zeros hands the network tiles it never saw (``PatchPrior.image_denoiser``, PnP-ADMM's, did until
these numbers; it now calls ``PatchPrior.embed_noisy``). For
each σ: PSNR of ``D`` from the same noisy image with noise of std σ on the padding, and with zeros
there (the volume priors: ``benchmarks/two_scale_denoise.py``, columns "zero padding").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    import padis3d
    from padis3d.io.sample_data import TRAIN_SLICES, chest_ct_slices
    from padis3d.metrics import psnr
    from padis3d.priors.factory import patch_prior_from

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints/chest128_patch.pt")
    ap.add_argument("--slices", type=int, nargs="+", default=[60, 90])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.5])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not set(args.slices) <= set(TRAIN_SLICES):
        ap.error(f"--slices must be training slices {TRAIN_SLICES[0]}-{TRAIN_SLICES[-1]}")
    torch.set_num_threads(1)
    images = torch.from_numpy(chest_ct_slices(args.slices, 128))[:, None]
    loaded = padis3d.load_prior(args.checkpoint)
    prior = patch_prior_from(loaded, (128, 128))
    lines = [f"{loaded.path.name} ({loaded.meta.get('steps')} steps), tile {prior.grid.tile}, canvas "
             f"{prior.state_shape}, training slices {args.slices}; PSNR dB of one denoising step", "",
             "| σ | noisy padding | zero padding | gain |", "|---|---|---|---|"]
    print(lines[0], flush=True)
    for sigma in args.sigmas:
        state = prior.embed(images) + sigma * torch.randn((len(images), 1, *prior.state_shape),
                                                          generator=torch.Generator().manual_seed(0))
        noisy, zero = (psnr(prior.crop(prior.denoise(x, sigma, generator=torch.Generator().manual_seed(1))), images)
                       for x in (state, prior.embed(prior.crop(state))))
        lines.append(f"| {sigma:g} | {noisy:.2f} | {zero:.2f} | {noisy - zero:+.2f} |")
        print(lines[-1], flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
