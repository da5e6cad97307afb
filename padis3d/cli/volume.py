"""``padis3d reconstruct`` for volumes (tasks ``ct3d-parallel``, ``ct3d-cone`` and ``denoise``): the
options parsed into one call of :func:`padis3d.reconstruct_volume` (out of core, resumable; see
:mod:`padis3d.volume.reconstruct`), then the reconstruction written in the input's format (NIfTI
keeps its affine and header), axial/coronal/sagittal panels in ``panels.png`` and the per-plane
metrics, timings and memory figures in ``report.json``. The run identity (options plus the content
of every file read, :mod:`padis3d.cli.identity`) owns the work folder."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from padis3d.atomic import save_figure, write_json
from padis3d.cli.identity import RunIdentity
from padis3d.cli.input_checks import check_volume_input
from padis3d.cli.options import check_run_options, memory_budget_bytes, parse_tile
from padis3d.cli.outputs import OutputPlan
from padis3d.cli.scheduler import connect_scheduler


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


def _input_path(args: argparse.Namespace) -> Any:
    """The file ``--input`` names (``chest-ct``: the bundled chest CT)."""
    from padis3d.io.sample_data import chest_ct_path

    return chest_ct_path() if args.input == "chest-ct" else args.input


def volume_outputs(args: argparse.Namespace, inputs: list) -> OutputPlan:
    """What a volume task writes (the reconstruction in the input's format, panels, report, the
    work folder) and reads; the input is opened (its header only) to name the reconstruction."""
    from padis3d.io.volume_stream import open_volume, volume_suffix

    source = open_volume(_input_path(args), orientation=args.orientation, series=args.series)
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


def volume_identity(args: argparse.Namespace) -> RunIdentity:
    """The run's :class:`padis3d.cli.identity.RunIdentity`, with the measured coarse weights beside a
    ``--lowres`` prior (``--lowres-weight measured``) among the files read."""
    from padis3d.cli.identity import run_identity
    from padis3d.priors.coarse_weight import weights_path

    extra = {"lowres weights file": weights_path(args.lowres)} \
        if args.lowres is not None and args.lowres_weight == "measured" else {}
    return run_identity(args, extra)


class VolumeProgress:
    """The library's progress events as two bars (preparation in slices, sampling in levels), and the
    measured batch choice printed."""

    def __init__(self, task: str, disable: bool):
        self.task, self.disable = task, disable
        self.bar: Any = None

    def __call__(self, info: dict) -> None:
        from padis3d.solvers.reconstruct import ProgressBar

        stage = info["stage"]
        if stage == "max_batch":
            print(info["choice"].summary(), flush=True)
        elif stage == "prepare":
            if self.bar is None:
                self.bar = ProgressBar(info["total"], "prepare (slices)", disable=self.disable)
            self.bar.bar.update(info["slices"])
        elif "start" in info:  # sampling begins (or resumes at a committed level)
            self.close()
            self.bar = ProgressBar(info["n"], f"dds {self.task}", disable=self.disable)
            self.bar.bar.update(info["start"])
        else:
            self.bar(info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__()
            self.bar = None


def volume_call(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`padis3d.reconstruct_volume` that ``args`` give."""
    settings = {k: getattr(args, k) for k in ("sigma_max", "sigma_min", "steps", "rho", "cg_iters", "eta", "seed")}
    return dict(task=args.task, prior=args.checkpoint, views=args.views, span_deg=args.span_deg, noise=args.noise,
                denoiser=args.denoiser, slices=tuple(args.slices) if args.slices else None, size=args.size,
                window=tuple(args.window) if args.window else None, orientation=args.orientation, series=args.series,
                tile=parse_tile(args.tile), max_batch=args.max_batch, lowres=args.lowres,
                lowres_weight=args.lowres_weight, device=args.device, precision=args.precision,
                memory_budget=memory_budget_bytes(args), band=args.band, work_dir=args.work_dir or args.out / "work",
                restart=args.restart, **settings)


def run_reconstruct_volume(args: argparse.Namespace) -> int:
    from padis3d.volume.pipeline import centre_planes
    from padis3d.volume.reconstruct import reconstruct_volume

    check_run_options(args)
    scheduler = connect_scheduler(args.scheduler) if args.scheduler else None  # a dead one: found before any work
    preload_libraries()  # their memory belongs to the fixed overhead measured below, not to a stage
    t_start = time.perf_counter()
    call = volume_call(args)
    work = Path(call["work_dir"])
    progress = VolumeProgress(args.task, args.no_progress)
    try:
        result = reconstruct_volume(_input_path(args), **call, identity=lambda: volume_identity(args), scheduler=scheduler,
                                    work_created=work.absolute() in getattr(args, "created_folders", ()),
                                    callback=progress)
    finally:
        progress.close()
    t2 = time.perf_counter()
    image_path = result.write(args.out / "reconstruction")
    result.stages.mark("write")
    panels(args.out / "panels.png", [(name, centre_planes(arr, result.band_rows["write"])) for name, arr in
                                     (("truth", result.truth), (result.baseline_name, result.baseline),
                                      (result.method, result.reconstruction))])
    result.stages.mark("panels")
    timings = {**result.timings_s, "write_and_panels": time.perf_counter() - t2, "total": time.perf_counter() - t_start}
    write_json(args.out / "report.json", volume_report(args, result, timings, [image_path.name, "panels.png"]))
    for name, m in result.metrics.items():
        print(f"{name:>10}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
    print(f"{result.seconds:.1f} s sampling; peak memory {result.peak_rss_mb:.0f} MiB (start-up "
          f"{result.overhead_mb:.0f} + model {result.model_mb:.1f} MiB); wrote {args.out}/")
    return 0


def volume_report(args: argparse.Namespace, result: Any, timings: dict, outputs: list[str]) -> dict[str, Any]:
    """``report.json`` of a volume run."""
    from padis3d.priors.checkpoint import library_versions

    src, info, budget_mb = result.source, result.prior_info, args.memory_budget_mb
    allowance = ((budget_mb or 0) + result.model_mb + result.overhead_mb) * 1.1
    lowres = None if info["lowres"] is None else {**info["lowres"], "checkpoint": str(args.lowres)}
    return {
        "input": str(src.source), "task": args.task,
        "orientation": {"stored": "".join(src.stored_codes or ()), "from": src.orientation_from,
                        "canonical": "SPL", "prior": info["orientation"]},
        "method": result.method, "shape": list(result.shape), "window": list(result.window), "seed": args.seed,
        "slices": list(result.slices), "noise": result.noise, "checkpoint": str(args.checkpoint),
        "settings": asdict(result.settings), "tile": info["tile"], "precision": info["precision"],
        "max_batch": info["max_batch"] if args.max_batch == "auto" else args.max_batch, "lowres": lowres,
        "geometry": result.geometry, "identity": result.identity,
        "resumed_from_step": result.resumed_from_step, "prepared_reused": result.prepared_reused,
        "seconds": result.seconds, "metrics": result.metrics,
        "metrics_method": "every axial, coronal and sagittal plane, streamed over bands of axial slices "
                          "(volume_metrics_banded: equal to volume_metrics up to float rounding)",
        "timings_s": timings,
        "memory": {"budget_mb": budget_mb, **result.memory, "allowance_mb": allowance if budget_mb else None},
        "versions": library_versions(), "outputs": outputs}
