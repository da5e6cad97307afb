"""``padis3d reconstruct`` for volumes (tasks ``ct3d-parallel`` and ``denoise``): a NIfTI /
zarr / DICOM / npy volume in, an out-of-core resumable DDS run (:mod:`padis3d.volume`),
the reconstruction out in the input's format (NIfTI keeps its affine and header), with
per-plane metrics in ``report.json`` and axial/coronal/sagittal panels in ``panels.png``."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import zarr

from padis3d.atomic import save_figure, write_json
from padis3d.errors import PadisError
from padis3d.reconstruct_cli import MIN_SIDE, check_run_options, memory_budget_bytes, parse_tile

VOLUME_TASKS = ("ct3d-parallel", "denoise")


class IdentitySlices:
    """The denoising 'operator' for the slice-separable data step: ``y = x``."""

    def __init__(self, shape: tuple[int, int]):
        self.in_shape = self.out_shape = shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    adjoint = __call__


def _load(args: argparse.Namespace):
    from skimage.transform import resize

    from padis3d.io.volume_file import read_volume
    from padis3d.sample_data import chest_ct_path

    vol = read_volume(chest_ct_path() if args.input == "chest-ct" else args.input)
    hu = vol.kind == "nifti" or vol.units == "HU" or args.input == "chest-ct"
    lo, hi = args.window if args.window else (-1000.0, 1000.0) if hu else \
        (float(vol.data.min()), float(vol.data.max()))
    if args.window and not hi > lo:
        raise PadisError(f"--window {lo} {hi} must have LO < HI, e.g. --window -1000 1000")
    if not hi > lo:
        raise PadisError(f"{vol.source} is constant ({lo}); nothing to reconstruct")
    data = vol.data
    if args.slices:
        z0, z1 = args.slices
        if not 0 <= z0 < z1 <= data.shape[0]:
            raise PadisError(f"--slices {z0} {z1} is outside 0..{data.shape[0]} of {vol.source}")
        data = data[z0:z1]
    image = np.clip((data - lo) / (hi - lo), 0, 1).astype(np.float32)
    if data.shape[1] != data.shape[2]:
        raise PadisError(f"slices of {vol.source} are {data.shape[1]}x{data.shape[2]}; square slices are needed")
    if data.shape[0] < MIN_SIDE or args.size < MIN_SIDE:
        raise PadisError(f"the volume to reconstruct is {data.shape[0]} slices of {args.size}x{args.size}: every "
                         f"axis needs >= {MIN_SIDE} voxels (the SSIM window of the report); widen --slices or "
                         f"--size")
    zoom = data.shape[1] / args.size
    if args.size != data.shape[1]:
        image = resize(image, (image.shape[0], args.size, args.size), anti_aliasing=True, preserve_range=True,
                       order=1).astype(np.float32)
    return vol, image, (lo, hi), zoom


def panels(path: Path, volumes: list[tuple[str, np.ndarray]]) -> None:
    """Axial, coronal and sagittal centre slices of each volume, one row per volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(volumes), 3, figsize=(9, 3 * len(volumes)), squeeze=False)
    for row, (name, v) in zip(axes, volumes):
        z, y, x = (s // 2 for s in v.shape)
        for ax, (plane, img) in zip(row, (("axial", v[z]), ("coronal", v[:, y][::-1]), ("sagittal", v[:, :, x][::-1]))):
            ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, aspect="auto")
            ax.set_title(f"{name}: {plane}", fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def run_reconstruct_volume(args: argparse.Namespace) -> int:
    from padis3d import load_prior
    from padis3d.checkpoint import library_versions
    from padis3d.device import resolve_device
    from padis3d.io.volume_file import write_volume_like
    from padis3d.metrics import volume_metrics
    from padis3d.operators import ParallelBeam2D, gaussian_noise
    from padis3d.prior import volume_prior_from
    from padis3d.reconstruct import ProgressBar
    from padis3d.volume import VolumeRun, VolumeSettings

    check_run_options(args)
    tile = parse_tile(args.tile)
    if tile is None:
        raise PadisError("--tile whole is for 2D tasks; a volume needs a patch or slab prior: use an int or 'auto'")
    budget = memory_budget_bytes(args)
    settings = VolumeSettings(sigma_max=args.sigma_max, sigma_min=args.sigma_min, steps=args.steps, rho=args.rho,
                              cg_iters=args.cg_iters, eta=args.eta, seed=args.seed, band=args.band,
                              memory_budget=budget)
    vol, truth, (lo, hi), zoom = _load(args)
    size = truth.shape[1]
    gen = torch.Generator().manual_seed(args.seed + 1)
    if args.task == "ct3d-parallel":
        span = math.radians(args.span_deg) if args.span_deg is not None else math.pi
        op = ParallelBeam2D(size, views=args.views, span=span)
        y = op(torch.from_numpy(truth)[:, None])[:, 0]
        baseline = op.fbp(y[:, None], "hann")[:, 0].clamp(0, 1).numpy()
        baseline_name = "FBP-Hann"
    else:
        op = IdentitySlices((size, size))
        y = torch.from_numpy(truth)
        baseline, baseline_name = None, "noisy"
    noise = args.noise if args.noise is not None else (0.0 if args.task == "ct3d-parallel" else 0.05)
    if noise:
        y = gaussian_noise(y, noise, gen)
    if baseline is None:
        baseline = y.clamp(0, 1).numpy()
    prior = volume_prior_from(load_prior(args.checkpoint, device=resolve_device(args.device)), truth.shape, tile,
                              max_batch=args.max_batch)
    scheduler = None
    if args.scheduler:
        from distributed import Client  # optional: pip install distributed

        scheduler = Client(args.scheduler)
    work = args.work_dir or args.out / "work"
    run = VolumeRun(prior, op, y.numpy(), work, settings, scheduler=scheduler)
    result = zarr.create_array(store=zarr.storage.MemoryStore(), shape=truth.shape, chunks=(settings.band, size, size),
                               dtype="f4")
    done = run.committed_step()
    t0 = time.perf_counter()
    with ProgressBar(settings.steps, f"dds {args.task}", disable=args.no_progress) as bar:
        bar.bar.update(done)
        run.run(result, callback=bar)
    seconds = time.perf_counter() - t0
    recon = np.clip(result[:], 0, 1)  # the prior's range: the intensity window
    metrics = {baseline_name: volume_metrics(baseline, truth), "dds": volume_metrics(recon, truth)}
    image_path = write_volume_like(args.out / "reconstruction", recon * (hi - lo) + lo, vol, zoom_yx=zoom)
    panels(args.out / "panels.png", [("truth", truth), (baseline_name, baseline), ("dds", recon)])
    write_json(args.out / "report.json", {
        "input": str(vol.source), "task": args.task, "shape": list(truth.shape), "window": [lo, hi],
        "seed": args.seed, "settings": asdict(settings), "tile": list(prior.grid.tile),
        "resumed_from_step": done, "seconds": seconds, "metrics": metrics, "outputs": [image_path.name, "panels.png"],
        "versions": library_versions()})
    for name, m in metrics.items():
        print(f"{name:>10}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
    print(f"{seconds:.1f} s; wrote {args.out}/")
    return 0
