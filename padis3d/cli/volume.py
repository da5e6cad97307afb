"""``padis3d reconstruct`` for volumes (tasks ``ct3d-parallel``, ``ct3d-cone`` and ``denoise``): a NIfTI /
zarr / DICOM / npy volume in, an out-of-core resumable DDS run (:mod:`padis3d.volume.runner`),
the reconstruction out in the input's format (NIfTI keeps its affine and header), with
per-plane metrics in ``report.json`` and axial/coronal/sagittal panels in ``panels.png``.

Out of core end to end: the input is read, windowed and resized band by band of axial
slices into zarr work arrays, with the measurements and the baseline
(:mod:`padis3d.volume.pipeline`); the metrics stream over the bands
(:func:`padis3d.metrics.volume_metrics_banded`); the output is written band by band
(:mod:`padis3d.io.volume_stream`); the panels read three planes. Band sizes come from
``--memory-budget-mb``, so peak memory is the budget plus the model plus a fixed overhead,
whatever the number of slices.

``denoise`` by default returns the prior's Tweedie estimate ``E[x | y]`` at the noise level:
the noisy volume is the diffusion state at ``σ = --noise``, so one denoiser pass over it is the
posterior mean under the prior (the estimate with the least expected squared error);
``--denoiser dds`` runs the DDS sampler from pure noise instead.

``ct3d-cone`` (astra CUDA only) is not separable by slice: its projections, the least-squares
baseline (CGLS) and the data step of every level hold the whole volume in memory
(:class:`padis3d.volume.VolumeRun` with ``separable=False``); the input, the denoiser passes,
the metrics and the output still stream."""

from __future__ import annotations

import argparse
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import zarr

from padis3d.atomic import save_figure, write_json
from padis3d.cli.identity import RunIdentity
from padis3d.cli.input_checks import check_volume_input
from padis3d.cli.outputs import OutputPlan
from padis3d.cli.runner import remove_new_entries
from padis3d.cli.scheduler import connect_scheduler
from padis3d.errors import PadisError
from padis3d.memory import StagePeaks, model_mb, vm_rss_mb
from padis3d.cli.options import MIN_SIDE, check_run_options, check_tile_fits, memory_budget_bytes, parse_tile
CGLS_ITERS = 20  # the cone-beam baseline: least squares by CG on the normal equations, from zero


def cone_operator(shape: tuple[int, int, int], views: int, span: float):
    """The cone-beam operator of ``ct3d-cone`` (a PadisError without astra CUDA)."""
    from padis3d.operators import ConeBeam3D

    return ConeBeam3D(shape, views=views, span=span)


def cone_measurements(op, truth: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Projections of the whole volume (plus Gaussian noise of std ``noise``, seed ``seed + 1``)
    and the CGLS baseline clipped to [0, 1]."""
    from padis3d.baselines.cg import conjugate_gradient

    with torch.no_grad():
        y = op(torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))[None, None])
        if noise:
            y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1))
        base = conjugate_gradient(op.normal, op.adjoint(y), iters=CGLS_ITERS)
    return y[0, 0].numpy(), base[0, 0].clamp(0, 1).numpy()


class IdentitySlices:
    """The denoising 'operator' for the slice-separable data step: ``y = x``."""

    def __init__(self, shape: tuple[int, int]):
        self.in_shape = self.out_shape = shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    adjoint = __call__


def _window(args: argparse.Namespace, source, rows: int) -> tuple[float, float]:
    """The intensity window mapped to [0, 1]: ``--window``, the HU window for NIfTI/DICOM, else
    the volume's range (one streamed pass)."""
    if args.window:
        lo, hi = args.window
        if not hi > lo:
            raise PadisError(f"--window {lo} {hi} must have LO < HI, e.g. --window -1000 1000")
    elif source.kind in ("nifti", "dicom") or args.input == "chest-ct":
        lo, hi = -1000.0, 1000.0
    else:
        lo, hi = source.min_max(rows)
    if hi <= lo:
        raise PadisError(f"{source.source} is constant ({lo}); nothing to reconstruct")
    return float(lo), float(hi)


def panels(path: Path, volumes: list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> None:
    """Axial, coronal and sagittal centre planes of each volume, one row per volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(volumes), 3, figsize=(9, 3 * len(volumes)), squeeze=False)
    for row, (name, (axial, coronal, sagittal)) in zip(axes, volumes):
        for ax, (plane, img) in zip(row, (("axial", axial), ("coronal", coronal[::-1]),
                                          ("sagittal", sagittal[::-1]))):
            ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, aspect="auto")
            ax.set_title(f"{name}: {plane}", fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def volume_outputs(args: argparse.Namespace, inputs: list) -> OutputPlan:
    """What a volume task writes (the reconstruction in the input's format, panels, report, the
    work folder) and reads; the input is opened (its header only) to name the reconstruction."""
    from padis3d.io.sample_data import chest_ct_path
    from padis3d.io.volume_stream import open_volume, volume_suffix

    source = open_volume(chest_ct_path() if args.input == "chest-ct" else args.input, orientation=args.orientation,
                         series=args.series)
    check_volume_input(source.shape, args.slices, str(source.source))  # header only: before any voxel is read
    work = Path(args.work_dir) if args.work_dir else None
    return OutputPlan(args.out, [f"reconstruction{volume_suffix(source)}", "panels.png", "report.json",
                                 *([] if work else ["work/"])], inputs=inputs, work=work)


def preload_libraries() -> None:
    """Import what the later stages import lazily (skimage's resize, matplotlib for the panels),
    so that the start-up memory (``report.json``'s ``memory.overhead_mb``) includes them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import skimage.transform  # noqa: F401


def measure_volume_batch(prior, device, budget: int | None):
    """``--max-batch auto`` for a volume task: :func:`padis3d.priors.batch_size.measure_tile_batch` on
    one band of tiles (one tile row along z: what ``tiling.map_tiles_store`` has in flight), within
    what the memory budget leaves for tiles once a band is held (as the runner plans it); with
    ``--lowres`` the fine prior is measured and its choice applies to both scales."""
    from padis3d.priors.batch_size import measure_tile_batch
    from tiling import tile_bytes
    from tiling.store import store_tile_budget

    g = prior.grid
    left = None if budget is None else store_tile_budget(g, 1, 1, 1, 4, tile_bytes(g, 1, torch.float32)
                                                         + prior.network_bytes(), budget)
    return measure_tile_batch(prior, None, device, memory_budget=left, tiles=g.num_tiles // g.counts[0])


IDENTITY_FILE = "identity.json"
"""The work folder's record of the identity of the run whose state it holds."""


def volume_identity(args: argparse.Namespace) -> RunIdentity:
    """The run's :class:`padis3d.cli.identity.RunIdentity`, with the measured coarse weights beside a
    ``--lowres`` prior (``--lowres-weight measured``) among the files read."""
    from padis3d.cli.identity import run_identity
    from padis3d.priors.coarse_weight import weights_path

    extra = {"lowres weights file": weights_path(args.lowres)} \
        if args.lowres is not None and args.lowres_weight == "measured" else {}
    return run_identity(args, extra)


def check_work_identity(work: Path, identity: RunIdentity) -> None:
    """PadisError when ``work`` holds committed progress of a run of another identity (named: what
    differs), or of a run that recorded none."""
    import json

    try:
        step = int(json.loads((work / "progress.json").read_text()).get("step", 0))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, ValueError, AttributeError):
        return
    if step == 0:
        return
    try:
        differ = identity.differences(RunIdentity.from_json(json.loads((work / IDENTITY_FILE).read_text())))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        differ = [f"no {IDENTITY_FILE}: made by an older padis3d"]
    if differ:
        raise PadisError(f"{work} holds a run at step {step} made with other input, geometry, prior or precision "
                         f"({'; '.join(differ)}): rerun its command to resume it, add --restart to discard it, "
                         f"or use another --out/--work-dir")


def record_work_identity(work: Path, identity: RunIdentity) -> None:
    """Write ``work/identity.json``: the identity of the run that now owns the work folder."""
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / IDENTITY_FILE, identity.to_json())


def run_reconstruct_volume(args: argparse.Namespace) -> int:
    from padis3d import load_prior
    from padis3d.priors.checkpoint import library_versions
    from padis3d.device import resolve_device
    from padis3d.io.volume_stream import open_volume, write_volume_bands
    from padis3d.metrics import metrics_band_bytes, volume_metrics_banded
    from padis3d.operators import ParallelBeam2D
    from padis3d.priors.factory import volume_prior_from
    from padis3d.solvers.reconstruct import ProgressBar
    from padis3d.io.sample_data import chest_ct_path
    from padis3d.volume.runner import VolumeRun, VolumeSettings, check_resumable, check_volume_budget, discard_progress
    from padis3d.volume.pipeline import (centre_planes, limit_heap_growth, plan_rows, prep_bytes_per_row,
                                         prepare_volume, release_free_memory)

    check_run_options(args)
    tile = parse_tile(args.tile)
    if tile is None:
        raise PadisError("--tile whole is for 2D tasks; a volume needs a patch or slab prior: use an int or 'auto'")
    limit_heap_growth()
    if args.threads:
        torch.set_num_threads(args.threads)
    # a dead scheduler is found now, before anything is read or prepared
    scheduler = connect_scheduler(args.scheduler) if args.scheduler else None
    preload_libraries()  # their memory belongs to the fixed overhead measured below, not to a stage
    stages = StagePeaks()
    t_start = time.perf_counter()
    source = open_volume(chest_ct_path() if args.input == "chest-ct" else args.input, orientation=args.orientation,
                         series=args.series)
    budget = memory_budget_bytes(args)
    nz_all, h, w = source.shape
    z0, z1 = args.slices if args.slices else (0, nz_all)
    if not 0 <= z0 < z1 <= nz_all:
        raise PadisError(f"--slices {z0} {z1} is outside 0..{nz_all} of {source.source}")
    if h != w:  # the volume tasks resize to --size x --size and the parallel beam needs a square slice
        raise PadisError(f"slices of {source.source} are {h}x{w} (y x x): the volume tasks need square slices; "
                         f"crop or pad them to a square first")
    lo, hi = _window(args, source, plan_rows(budget, 8 * h * w, args.band))
    size, zoom = args.size, h / args.size
    shape = (z1 - z0, size, size)
    if min(shape) < MIN_SIDE:  # the metrics' SSIM window; fail before the run, not after it
        raise PadisError(f"the volume to reconstruct is {shape[0]} slices of {size}x{size}: every axis needs "
                         f">= {MIN_SIDE} voxels (the SSIM window of the report); widen --slices or --size")
    cone = None
    if args.task == "ct3d-cone":  # fails here, before any file, without astra CUDA or within budget
        from padis3d.volume.runner import whole_volume_bytes

        cone = cone_operator(shape, args.views, math.radians(args.span_deg) if args.span_deg is not None
                             else 2 * math.pi)
        need = whole_volume_bytes(shape, tuple(cone.out_shape))
        if budget is not None and need > budget:
            raise PadisError(f"ct3d-cone holds the whole volume and its projections in memory (about "
                             f"{need / 2**20:.2f} MiB, budget {budget / 2**20:.2f} MiB): raise --memory-budget-mb "
                             f"or reconstruct fewer --slices")
    if args.task == "ct3d-parallel":
        span = math.radians(args.span_deg) if args.span_deg is not None else math.pi
        op = ParallelBeam2D(size, views=args.views, span=span)
        forward = op

        def baseline_fn(y: torch.Tensor) -> torch.Tensor:
            return op.fbp(y[:, None], "hann")[:, 0].clamp(0, 1)
        baseline_name = "FBP-Hann"
    else:  # denoise, or ct3d-cone (slices are only windowed and resized here; projected below)
        op = IdentitySlices((size, size))

        def forward(x: torch.Tensor) -> torch.Tensor:
            return x

        def baseline_fn(y: torch.Tensor) -> torch.Tensor:
            return y.clamp(0, 1)
        baseline_name = "noisy" if cone is None else f"CGLS-{CGLS_ITERS}"
    noise = args.noise if args.noise is not None else (0.05 if args.task == "denoise" else 0.0)
    check_tile_fits(tile, shape)
    band = min(args.band, shape[0])  # a band of the whole volume is the most there is
    rows = {"prepare": plan_rows(budget, prep_bytes_per_row((h, w), size, tuple(op.out_shape)), band, band),
            "metrics": max(1, plan_rows(budget, metrics_band_bytes(size * size), band + 6) - 6),
            "write": plan_rows(budget, 16 * size * size, band, band)}
    # everything that can be checked without the data fails here, before any file is written
    loaded = load_prior(args.checkpoint, device=resolve_device(args.device), precision=args.precision)
    max_batch, choice = args.max_batch, None
    if max_batch == "auto":  # timed on one band of tiles (the most the out-of-core runner has in flight)
        choice = measure_volume_batch(volume_prior_from(loaded, shape, tile), loaded.device, budget)
        max_batch = choice.chosen
        print(choice.summary(), flush=True)
    prior = volume_prior_from(loaded, shape, tile, max_batch=max_batch)
    weights_mb = model_mb(loaded.model)
    lowres = None
    if args.lowres is not None:  # the two-scale prior: the coarse prior runs in memory on the block averages
        from padis3d.priors.factory import two_scale_prior_from

        from padis3d.priors.coarse_weight import weight_for, weight_report

        lowres = load_prior(args.lowres, device=resolve_device(args.device), precision=args.precision)
        weight = weight_for(args.lowres_weight, args.checkpoint, args.lowres)
        prior = two_scale_prior_from(prior, lowres, shape, max_batch=max_batch, coarse_weight=weight)
        weights_mb += model_mb(lowres.model)
    fine = prior.fine if lowres is not None else prior
    from padis3d.priors.checkpoint import check_orientation

    for each in (loaded, lowres) if lowres is not None else (loaded,):
        check_orientation(each, "axial")  # the volume tasks stream canonical axial slices
    tweedie = args.task == "denoise" and args.denoiser == "tweedie"
    if tweedie and not noise > 0:
        raise PadisError(f"--denoiser tweedie denoises at the noise level: give --noise > 0, got {noise}")
    settings = VolumeSettings(sigma_max=args.sigma_max, sigma_min=args.sigma_min, steps=args.steps, rho=args.rho,
                              cg_iters=args.cg_iters, eta=args.eta, seed=args.seed, band=band,
                              memory_budget=budget)
    method = "tweedie" if tweedie else "dds"
    if tweedie:  # the noisy volume is the state at σ = noise: one denoiser pass, no data step
        settings = replace(settings, sigma_max=noise, sigma_min=noise / 2, steps=1, cg_iters=0, init="measurements")
    check_volume_budget(fine, settings)  # measures the network's activations per tile (cached)
    release_free_memory()  # that measurement's freed buffers
    # the fixed overhead: interpreter, libraries, allocator and the ready prior, before any band work
    overhead_mb = vm_rss_mb() - weights_mb
    stages.mark("start")
    work = Path(args.work_dir or args.out / "work")
    identity = volume_identity(args)  # options plus the content of every file read
    # made by this run (the output checks create it before the run starts): its arrays go if preparation fails
    fresh_work = not work.exists() or work.absolute() in getattr(args, "created_folders", ())
    if args.restart:  # computed afresh: progress and prepared arrays alike
        discard_progress(work)
    else:  # before the preparation rewrites the work folder's arrays
        check_resumable(work, settings)
        check_work_identity(work, identity)
    existed = set(work.iterdir()) if work.is_dir() else set()  # an earlier run's arrays are never dropped below
    try:
        record_work_identity(work, identity)
        with ProgressBar(shape[0], "prepare (slices)", disable=args.no_progress) as bar:
            prep = prepare_volume(source, (z0, z1), (lo, hi), size, forward, tuple(op.out_shape), baseline_fn,
                                  0.0 if cone is not None else noise, args.seed, work, band, rows["prepare"],
                                  {"run": identity.key}, progress=bar.bar.update, reuse=not args.restart)
    except BaseException:  # bad voxels or a truncated file found mid-stream: drop the half-prepared arrays
        if fresh_work:
            shutil.rmtree(work, ignore_errors=True)
        else:  # a folder that existed: only what this run added to it goes
            remove_new_entries(work, existed)
        raise
    stages.mark("prepare")
    release_free_memory()  # each stage hands its freed band buffers back before the next one
    # a resumed run continues with the same identity (options, input, priors) and precision (mixing is refused)
    tag = f"{prep.key} run {identity.key} precision {loaded.precision}"
    if cone is None:
        run = VolumeRun(prior, op, prep.y, work, settings, scheduler=scheduler, tag=tag, restart=args.restart)
        baseline = prep.baseline
    else:
        y, baseline = cone_measurements(cone, prep.truth[...], noise, args.seed)
        run = VolumeRun(prior, cone, y, work, settings, scheduler=scheduler, separable=False, restart=args.restart,
                        tag=tag)
    result = zarr.create_array(store=Path(work) / "reconstruction.zarr", shape=shape, chunks=(band, size, size),
                               dtype="f4", overwrite=True)
    done = run.committed_step()
    t0 = time.perf_counter()
    with ProgressBar(settings.steps, f"dds {args.task}", disable=args.no_progress) as bar:
        bar.bar.update(done)

        def level_done(info: dict) -> None:
            release_free_memory()
            bar(info)
        run.run(result, callback=level_done)
    seconds = time.perf_counter() - t0
    stages.mark("sample")
    t1 = time.perf_counter()
    # the reconstruction is read clipped to the prior's range (the intensity window)
    metrics = {baseline_name: volume_metrics_banded(baseline, prep.truth, rows["metrics"]),
               method: volume_metrics_banded(result, prep.truth, rows["metrics"])}
    t2 = time.perf_counter()
    stages.mark("metrics")
    image_path = write_volume_bands(args.out / "reconstruction", source, shape,
                                    lambda a, b: np.clip(result[a:b], 0, 1) * (hi - lo) + lo, rows["write"],
                                    zoom_yx=zoom, z_offset=z0)
    stages.mark("write")
    panels(args.out / "panels.png", [(name, centre_planes(arr, rows["write"])) for name, arr in
                                     (("truth", prep.truth), (baseline_name, baseline), (method, result))])
    t3 = time.perf_counter()
    stages.mark("panels")
    allowance = ((args.memory_budget_mb or 0) + weights_mb + overhead_mb) * 1.1
    write_json(args.out / "report.json", {
        "input": str(source.source), "task": args.task,
        "orientation": {"stored": "".join(source.stored_codes or ()), "from": source.orientation_from,
                        "canonical": "SPL", "prior": loaded.orientation}, "method": method, "shape": list(shape), "window": [lo, hi], "seed": args.seed,
        "slices": [z0, z1], "noise": noise, "checkpoint": str(args.checkpoint), "settings": asdict(settings),
        "tile": list(fine.grid.tile), "precision": loaded.precision,
        "max_batch": choice.to_report() if choice is not None else args.max_batch,
        "lowres": None if lowres is None else {"checkpoint": str(args.lowres), "factor": list(prior.factor),
                                               "coarse_tile": list(prior.coarse.grid.tile),
                                               "weight": weight_report(prior.coarse_weight)},
        "geometry": None if args.task == "denoise" else {
            "views": args.views, "span_deg": args.span_deg if args.span_deg is not None else
            (180.0 if args.task == "ct3d-parallel" else 360.0)},
        "identity": identity.to_json(),
        "resumed_from_step": done, "prepared_reused": prep.reused,
        "seconds": seconds, "metrics": metrics,
        "metrics_method": "every axial, coronal and sagittal plane, streamed over bands of axial slices "
                          "(volume_metrics_banded: equal to volume_metrics up to float rounding)",
        "timings_s": {"prepare": prep.seconds, "sample": seconds, "metrics": t2 - t1, "write_and_panels": t3 - t2,
                      "total": time.perf_counter() - t_start},
        "memory": {"budget_mb": args.memory_budget_mb, "band_rows": rows, "peak_rss_mb": stages.peak,
                   "overhead_mb": overhead_mb, "model_mb": weights_mb,
                   "allowance_mb": allowance if args.memory_budget_mb else None, "stage_peaks_mb": stages.stages},
        "versions": library_versions(), "outputs": [image_path.name, "panels.png"]})
    for name, m in metrics.items():
        print(f"{name:>10}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
    print(f"{seconds:.1f} s sampling; peak memory {stages.peak:.0f} MiB (start-up {overhead_mb:.0f} + model "
          f"{weights_mb:.1f} MiB); wrote {args.out}/")
    return 0
