"""``padis3d reconstruct`` (2D inverse problems with a patch prior) and ``padis3d sample``
(unconditional generation). Outputs are written only when a run finishes, atomically, so
Ctrl-C leaves nothing half-written."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padis3d.atomic import atomic_path, save_figure, write_json
from padis3d.cli.options import (COUNT, MAX_BUDGET_MB, MIN_SIDE, NONNEG_COUNT, PROBABILITY, SEED, check_run_options,
                                 check_tile_fits, coarse_weight_option,
                                 device_option, float_range, int_range, max_batch_option, memory_budget_bytes,
                                 nonempty_text,
                                 nonneg_float, parse_tile, path_option, positive_float, scheduler_address,
                                 tile_option)
from padis3d.cli.options import PRECISION_HELP, WindowAction, orientation_option, precision_option
from padis3d.cli.adapt import (ADAPT_FIXED_MB, ADAPTER_FILE, adaptation_failure, adapt_report, adapt_settings, adapt_summary, add_adapt_arguments,
                               check_adapt_options, preload_adaptation)
from padis3d.cli.identity import plan_inputs
from padis3d.cli.input_checks import check_input_shape, check_not_constant
from padis3d.cli.outputs import OutputPlan
from padis3d.errors import PadisError

VOLUME_TASKS = ("ct3d-parallel", "ct3d-cone", "denoise")
TASKS = ("ct", "ct-fan", "deblur", "sr", *VOLUME_TASKS)


def add_sampler_arguments(p: argparse.ArgumentParser, sampler_choices: list[str], default_sampler: str) -> None:
    from padis3d.solvers.reconstruct import SamplerSettings

    d = SamplerSettings()
    a = p.add_argument
    a("--checkpoint", type=nonempty_text, default="chest128_patch", metavar="PRIOR",
      help="a prior name ('padis3d priors' lists them; $PADIS3D_PRIORS adds folders) or a .pt file (default: %(default)s)")
    a("--tile", type=tile_option, default="auto", help="patch size at inference: an int, 'auto' (largest trained) or 'whole'")
    a("--sampler", choices=sampler_choices, default=default_sampler)
    a("--steps", type=COUNT, default=d.steps, help="noise levels (default: %(default)s)")
    a("--inner", type=int_range(1, 10_000), default=d.inner, help="iterations per level for padis/langevin (default: %(default)s)")
    a("--sigma-max", type=positive_float(1e4), default=d.sigma_max)
    a("--sigma-min", type=positive_float(1e4), default=d.sigma_min)
    a("--schedule", choices=("geometric", "karras"), default=d.schedule)
    a("--budget", choices=("cpu", "paper", "custom"), default="cpu",
      help="reconstruct: 'cpu' (200 evaluations; DDS 50) or 'paper' (the paper's 1000; DDS 200) takes every sampler setting from "
      "padis3d/solvers/defaults.py for the task, options set to non-default values override it; 'custom': "
      "the options as given (default: %(default)s)")
    a("--step-rule", choices=("misfit", "norm", "paper"), default=d.step_rule,
      help="padis data step: gradient of ½||A D - y||² with weight step_size/||A||² (misfit), or the "
      "ζ-rules norm / paper capped there (default: %(default)s)")
    a("--step-size", type=positive_float(1e3), default=d.step_size, help="padis data-step cap c/||A||², stable for c < 2")
    p.set_defaults(sampler_option_default=p.get_default)  # lets --budget tell given options from defaults
    a("--seed", type=SEED, default=0)
    a("--device", type=device_option, default="cpu", help="where the network runs: cpu, cuda, cuda:N or auto")
    a("--precision", type=precision_option, default="auto", help=PRECISION_HELP)
    a("--max-batch", type=max_batch_option, default=None, help="tiles per network call (bounded memory), or "
      "'auto': time the loaded network on 1, 2, 4, ... tiles up to one evaluation's (within the memory budget) "
      "and take the most tiles per second, recorded in report.json (default: all tiles of an evaluation)")
    a("--memory-budget-mb", type=positive_float(MAX_BUDGET_MB), default=None, help="bytes of tiles in flight, in MiB")
    a("--threads", type=int_range(1, 1024), default=None, help="torch CPU threads (default: torch's choice)")
    a("--out", type=path_option, required=True, help="output folder")
    a("--no-progress", action="store_true")


def _prior(args: argparse.Namespace, image_shape: tuple[int, ...], images: int = 1):
    """``(loaded checkpoint, PatchPrior)``; with ``--max-batch auto`` the batch is measured here
    (``args.max_batch_choice``: the :class:`padis3d.priors.batch_size.BatchChoice`, else None) for
    ``images`` images per evaluation, and the prior is built with it as ``--max-batch N`` would be."""
    from padis3d import load_prior
    from padis3d.device import resolve_device
    from padis3d.priors.factory import patch_prior_from

    check_run_options(args)
    device = resolve_device(args.device)
    loaded = load_prior(args.checkpoint, device=device, precision=args.precision)
    tile: Any = parse_tile(args.tile)
    check_tile_fits(tile, image_shape)
    budget = memory_budget_bytes(args)
    args.max_batch_choice = None
    max_batch = args.max_batch
    if max_batch == "auto":
        from padis3d.priors.batch_size import measure_tile_batch

        trial = patch_prior_from(loaded, image_shape, tile, memory_budget=budget)
        choice = measure_tile_batch(trial, None, loaded.device, memory_budget=budget,
                                    tiles=images * trial.grid.num_tiles)
        args.max_batch_choice, max_batch = choice, choice.chosen
        print(choice.summary(), flush=True)
    return loaded, patch_prior_from(loaded, image_shape, tile, max_batch=max_batch, memory_budget=budget)


def max_batch_report(args: argparse.Namespace) -> dict | int | None:
    """``report.json``'s ``max_batch``: the measured choice (``--max-batch auto``) or the option as given."""
    choice = getattr(args, "max_batch_choice", None)
    return choice.to_report() if choice is not None else args.max_batch


# -- reconstruct -----------------------------------------------------------------------
def add_reconstruct_arguments(p: argparse.ArgumentParser) -> None:
    add_sampler_arguments(p, ["padis", "langevin", "pc", "ddnm", "dds"], "padis")
    a = p.add_argument
    a("--task", choices=TASKS, default="ct", help="2D: ct, ct-fan, deblur, sr; volumes (out of core, "
      "resumable): ct3d-parallel (sparse view or limited angle via --views/--span-deg), ct3d-cone (astra "
      "CUDA only; the data step holds the volume in memory), denoise")
    a("--input", type=nonempty_text, default="chest-ct", help="'chest-ct' (bundled, held-out slice) or an image/volume file: "
      "NIfTI, DICOM, PNG/JPEG folder or file, .npy")
    a("--slice", type=NONNEG_COUNT, default=None, help="slice of a volume (default: 120 of the chest CT, else the middle)")
    a("--axis", type=int_range(0, 2), default=None, help="plane of a volume file: 0 axial (default), 1 coronal, "
      "2 sagittal, each slice in the canonical orientation the priors learned (NIfTI/DICOM from their geometry)")
    a("--orientation", type=orientation_option, default=None, metavar="CODES",
      help="how an npy/zarr/PNG input is stored, for formats without geometry: 3 letters for a volume's (z, y, x), "
      "2 for an image's (rows, columns), each the patient direction the axis runs toward (L/R, A/P, S/I); "
      "default: as stored, taken as the canonical SPL (axial slices, anterior at the top, the patient's left "
      "on the right); NIfTI and DICOM give their own")
    a("--series", type=nonempty_text, default=None, metavar="UID",
      help="the DICOM series to read from a folder that holds several (SeriesInstanceUID or a unique prefix)")
    a("--window", type=float_range(-1e9, 1e9), nargs=2, action=WindowAction, default=None, metavar=("LO", "HI"),
      help="HU window for CT files (the bundled CT too; default -1000 1000 for CT)")
    a("--size", type=int_range(MIN_SIDE, 16384), default=128, help="image side after resizing (default: %(default)s)")
    a("--measured", type=path_option, default=None, help=".npy measurements (sinogram / blurred / low-res image) "
      "instead of simulating them from --input, which is then only the reference")
    a("--views", type=int_range(1, 100_000), default=20, help="CT views (default: %(default)s)")
    a("--span-deg", type=float_range(0.0, 720.0, lo_open=True), default=None, help="CT angular span in degrees (default 180; fan and cone 360)")
    a("--noise", type=nonneg_float(1e6), default=None, help="Gaussian noise std on the measurements "
      "(default: 0 for CT, 0.01 for deblur/sr)")
    a("--kernel", type=int_range(1, 16384), default=9, help="uniform blur kernel size (default: %(default)s)")
    a("--factor", type=int_range(1, 1024), default=4, help="super-resolution factor (default: %(default)s)")
    a("--sr-mode", choices=("average", "nearest"), default="average")
    a("--zeta", type=nonneg_float(), default=0.1, help="PaDIS data step ζ (default: %(default)s)")
    a("--epsilon", type=positive_float(1e6), default=0.5, help="Langevin step α = ε σ² (default: %(default)s)")
    a("--init", choices=("noise", "baseline"), default="noise")
    a("--eta", type=PROBABILITY, default=0.85, help="DDNM/DDS re-noising η (default: %(default)s)")
    a("--rho", type=nonneg_float(), default=1.0, help="DDS data-consistency weight ρ (default: %(default)s)")
    a("--cg-iters", type=int_range(0, 100_000), default=5, help="DDS conjugate-gradient steps (default: %(default)s)")
    a("--order", type=int, choices=(1, 2), default=1, help="DDS step: 1 (DDIM) or 2 (Heun-style, two network "
      "evaluations per level; 2D tasks; measured no better at equal evaluations: results/evaluations_curve.md)")
    v = p.add_argument_group("volumes (ct3d-parallel, ct3d-cone, denoise)")
    v.add_argument("--slices", type=NONNEG_COUNT, nargs=2, default=None, metavar=("Z0", "Z1"), help="axial range")
    v.add_argument("--denoiser", choices=("tweedie", "dds"), default="tweedie",
                   help="denoise: the prior's posterior mean at the noise level, one network pass (default), "
                        "or DDS sampling from noise (--steps, --sigma-max, --rho, --cg-iters)")
    v.add_argument("--lowres", type=nonempty_text, default=None, metavar="PRIOR",
                   help="a low-resolution prior (trained with 'padis3d train --downsample F') for the coarse structure: "
                        "with --checkpoint for the detail, the two-scale prior (padis3d.priors.two_scale), out of core")
    v.add_argument("--lowres-weight", type=coarse_weight_option, default="measured", metavar="W",
                   help="with --lowres: the weight w(sigma) of the coarse prior, 'measured' (the table measured on "
                        "training data for this pair of checkpoints, <lowres>.weights.json: "
                        "recipes/calibrate_two_scale.py) or a number in [0, 1] (1: the coarse prior replaces the "
                        "fine prior's coarse scale, 0: the fine prior alone) (default: %(default)s)")
    v.add_argument("--band", type=COUNT, default=16, help="slices per chunk of work and zarr chunk (default 16)")
    v.add_argument("--work-dir", type=path_option, default=None, help="state buffers for resuming (default OUT/work); "
                   "rerunning the same command continues from the last finished step")
    v.add_argument("--restart", action="store_true", help="compute afresh: discard the work folder's progress and "
                   "prepared arrays (a folder holding a run of other options or other input, checkpoint or "
                   "low-resolution prior bytes is refused without it, so no finished work is lost)")
    v.add_argument("--scheduler", type=scheduler_address, default=None, help="dask.distributed scheduler address (default: threads)")
    add_adapt_arguments(p)


SQUARE_TASKS = ("ct", "ct-fan")  # ParallelBeam2D / FanBeam2D image a square field of view


def reconstruction_shape(shape: tuple[int, int], size: int, task: str, factor: int = 1) -> tuple[int, int]:
    """The 2D grid a ``(H, W)`` input is reconstructed on: ``size x size`` for a square input;
    otherwise the aspect is kept, the longer side becomes ``size`` and the shorter one is rounded
    (to a multiple of ``--factor`` for ``sr``). The CT tasks refuse non-square inputs (their
    scanner geometry images a square field of view), as does a shorter side below MIN_SIDE."""
    h, w = int(shape[0]), int(shape[1])
    if h == w:
        return size, size
    if task in SQUARE_TASKS:
        raise PadisError(f"the input is {h}x{w} pixels, not square: the {task} task's scanner geometry images a "
                         f"square field of view; crop or pad the image to a square (deblur and sr reconstruct "
                         f"non-square images at their own aspect)")
    m = factor if task == "sr" else 1
    scale = size / max(h, w)
    out = tuple(max(m, int(round(n * scale / m)) * m) for n in (h, w))
    if min(out) < MIN_SIDE:
        raise PadisError(f"the {h}x{w} input resized to --size {size} on its longer side is {out[0]}x{out[1]}: both "
                         f"sides need >= {MIN_SIDE} pixels (the SSIM window of the report); raise --size")
    return out  # type: ignore[return-value]


def _reference_image(args: argparse.Namespace):
    """The reference slice (:class:`padis3d.io.reference.ReferenceSlice`) on its reconstruction grid."""
    from padis3d.io.reference import ReferenceSlice, read_reference_slice
    from padis3d.io.sample_data import chest_ct_slices

    if args.input == "chest-ct":  # the bundled data set's [0, 1] slices; results stay in [0, 1]
        from padis3d.io import HU_WINDOW

        k = 120 if args.slice is None else args.slice
        window = tuple(args.window) if args.window else HU_WINDOW  # --window is honoured (and recorded) here too
        image = chest_ct_slices([k], args.size, window)[0]
        check_not_constant(image, f"chest CT axial slice {k}")
        return ReferenceSlice(image, f"chest CT axial slice {k}", "chest-ct", (512, 512),
                              {"kind": "hu_window", "window": list(window)}, None,
                              zoom=(512 / args.size, 512 / args.size),
                              orientation={"stored": "SPL", "from": "bundled", "canonical": "SPL", "plane": "axial"})
    ref = read_reference_slice(args.input, args.slice, args.axis, tuple(args.window) if args.window else None,
                               orientation=args.orientation, series=args.series)
    check_input_shape(ref.input_shape, ref.source)  # the input's own size, before it is resized
    check_not_constant(ref.image, ref.source)
    return ref.resized(reconstruction_shape(ref.input_shape, args.size, args.task, args.factor))


def build_operator(args: argparse.Namespace, shape: int | tuple[int, int]):
    """The forward operator and its direct baseline for ``args.task`` on images of ``shape``
    (an int: square); the CT tasks need a square shape."""
    from padis3d.operators import BlockAverage, Blur, FanBeam2D, NearestSample, ParallelBeam2D, uniform_kernel, upsample

    shape = (shape, shape) if isinstance(shape, int) else (int(shape[0]), int(shape[1]))
    size = shape[0]
    if args.task in SQUARE_TASKS and shape[0] != shape[1]:
        raise PadisError(f"the {args.task} task needs a square image, got {shape[0]}x{shape[1]}")

    if args.task in ("ct", "ct-fan"):
        span = math.radians(args.span_deg) if args.span_deg is not None else \
            (math.pi if args.task == "ct" else 2 * math.pi)
        op = (ParallelBeam2D if args.task == "ct" else FanBeam2D)(size, views=args.views, span=span)
        return op, lambda y: op.pinv(y).clamp(0, 1), "FBP-Hann" if args.task == "ct" else "CG least squares"
    if args.task == "deblur":
        op = Blur(shape, uniform_kernel(args.kernel))
        return op, lambda y: y.clamp(0, 1), "blurred"
    if any(n % args.factor for n in shape):
        raise PadisError(f"--size {max(shape)} must be a multiple of --factor {args.factor}")
    op = (BlockAverage if args.sr_mode == "average" else NearestSample)(shape, args.factor)
    return op, lambda y: upsample(y, args.factor).clamp(0, 1), "bicubic"


def image_suffix(like: str) -> str:
    """The suffix of a 2D result in the input's format family: NIfTI -> .nii.gz, PNG/JPEG images (a
    file or a folder of them) -> .png, else (npy, zarr, DICOM in its units) .npy."""
    if like.endswith((".nii", ".nii.gz")):
        return ".nii.gz"
    if like.lower().endswith((".png", ".jpg", ".jpeg")):
        return ".png"
    if Path(like).is_dir() and not like.rstrip("/").endswith(".zarr"):
        from padis3d.io import IMAGE_SUFFIXES

        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in Path(like).iterdir()):
            return ".png"
    return ".npy"


def _save_image(path: Path, image: np.ndarray, like: str, ref: Any = None) -> Path:
    """Reconstruction in the input's format family (:func:`image_suffix`). With ``ref`` (the
    :class:`padis3d.io.reference.ReferenceSlice` it was made from), values go back to the input's
    units and orientation (the file's own voxel order), and a NIfTI gets the affine of the input
    voxels the result was computed from (else the identity)."""
    suffix = image_suffix(like)
    if ref is not None and suffix != ".png":
        image = ref.to_units(image)
    affine = None
    if ref is not None:  # back in the input's own orientation (voxel order) and geometry
        image, affine = ref.to_file(image)
    if suffix == ".nii.gz":
        import nibabel as nib

        path = path.with_suffix(".nii.gz")
        data = image.astype(np.float32)
        with atomic_path(path) as tmp:
            nib.save(nib.Nifti1Image(data if data.ndim == 3 else data[:, :, None],
                                     affine if affine is not None else np.eye(4)), tmp)
    elif suffix == ".png":
        from skimage.io import imsave

        path = path.with_suffix(".png")
        with atomic_path(path) as tmp:
            imsave(tmp, (np.clip(image, 0, 1) * 255).round().astype(np.uint8), check_contrast=False)
    else:
        path = path.with_suffix(".npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, image.astype(np.float32))
    return path


def comparison_figure(path: Path, panels: list[tuple[str, np.ndarray]], truth: np.ndarray | None) -> None:
    """Side-by-side PNG: truth (if known), baseline, result and the result's error map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = ([("truth", truth)] if truth is not None else []) + panels
    extra = 1 if truth is not None else 0
    fig, axes = plt.subplots(1, len(items) + extra, figsize=(3.2 * (len(items) + extra), 3.5))
    for ax, (title, img) in zip(axes, items):
        ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
    if truth is not None:
        err = axes[-1].imshow(np.abs(np.clip(panels[-1][1], 0, 1) - truth), cmap="magma", vmin=0, vmax=0.2)
        axes[-1].set_title(f"|{panels[-1][0].split(' ')[0]} - truth|", fontsize=9)
        fig.colorbar(err, ax=axes[-1], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# -- sampler settings from the options (the defaults table, padis3d/solvers/defaults.py) ------
CLI_FIELDS = ("steps", "inner", "sigma_max", "sigma_min", "schedule", "step_rule", "step_size", "zeta", "epsilon",
              "eta", "rho", "cg_iters", "init", "order")


def cli_task(task: str, views: int | None = None) -> str:
    """The table's task for a ``padis3d reconstruct --task`` (CT: ``ct8`` up to 8 views, else ``ct20``)."""
    if task in ("ct", "ct-fan"):
        return "ct8" if views is not None and views <= 8 else "ct20"
    return {"deblur": "deblur", "sr": "sr4"}.get(task, task)


def settings_from_args(args: Any, default: Any) -> Any:
    """SamplerSettings for ``padis3d reconstruct``: with ``--budget cpu|paper`` the table's settings
    for the task, overridden by every sampler option whose value differs from its parser default
    (``default(name)``); with ``--budget custom`` the options as given."""
    from padis3d.solvers.reconstruct import SamplerSettings

    values = {f: getattr(args, f) for f in CLI_FIELDS if getattr(args, f, None) is not None}
    if args.budget == "custom":
        return SamplerSettings(sampler=args.sampler, seed=args.seed, **values)
    given = {f: v for f, v in values.items() if v != default(f)}
    return SamplerSettings.for_task(cli_task(args.task, getattr(args, "views", None)), args.sampler, args.budget,
                                    seed=args.seed, **given)


def reconstruct_outputs(args: argparse.Namespace) -> OutputPlan:
    """What ``padis3d reconstruct`` writes and reads (claimed before any work by :mod:`padis3d.cli.outputs`)."""
    from padis3d.cli.applicability import check_applicable
    from padis3d.cli.input_checks import check_plan
    from padis3d.cli.prior_kind import check_prior_kind

    check_adapt_options(args, volume=args.task in VOLUME_TASKS)
    if args.order != 1 and (args.sampler != "dds" or args.task in VOLUME_TASKS):
        raise PadisError(f"--order {args.order} is DDS's Heun-style step on 2D tasks; got --sampler {args.sampler} "
                         f"--task {args.task} (the volume runner takes first-order steps)")
    if args.lowres is None and args.lowres_weight != "measured":
        raise PadisError(f"--lowres-weight {args.lowres_weight} weighs the two-scale prior's coarse prior: give --lowres")
    if args.lowres is not None and args.task not in VOLUME_TASKS:
        raise PadisError(f"--lowres (the two-scale prior) is for the volume tasks {', '.join(VOLUME_TASKS)}, "
                         f"got --task {args.task}")
    check_applicable(args, args.sampler_option_default)  # an option the task would ignore: refused
    check_plan(args)
    check_prior_kind(args.checkpoint, args.task)  # a slab or cube prior on a 2D task, ...: before any data
    inputs = plan_inputs(args)  # every file input of reconstruct's declaration (padis3d.cli.identity)
    if args.task in VOLUME_TASKS:
        from padis3d.cli.volume import volume_outputs

        return volume_outputs(args, inputs)
    return OutputPlan(args.out, [f"reconstruction{image_suffix(str(args.input))}", "comparison.png", "report.json",
                                 *[ADAPTER_FILE] * args.adapt], inputs=inputs)


def run_reconstruct(args: argparse.Namespace) -> int:
    if args.task in VOLUME_TASKS:
        from padis3d.cli.volume import run_reconstruct_volume

        return run_reconstruct_volume(args)
    from padis3d.priors.checkpoint import library_versions
    from padis3d.metrics import psnr, ssim
    from padis3d.operators import gaussian_noise
    from padis3d.solvers.reconstruct import ProgressBar, SamplerSettings, reconstruct


    settings: SamplerSettings = settings_from_args(args, args.sampler_option_default)  # --budget: the table
    check_run_options(args)
    from padis3d.volume.pipeline import limit_heap_growth

    limit_heap_growth()
    ref = _reference_image(args)
    truth, source, shape = ref.image, ref.source, tuple(ref.image.shape)
    op, baseline_fn, baseline_name = build_operator(args, shape)
    print(ref.describe())
    if args.measured is not None:
        from padis3d.io import read_npy

        y = torch.from_numpy(read_npy(args.measured).astype(np.float32))[None, None]
        if tuple(y.shape[2:]) != op.out_shape:
            raise PadisError(f"{args.measured} holds measurements of shape {tuple(y.shape[2:])}, but the "
                             f"{args.task} geometry gives {op.out_shape}: check --size/--views/--factor")
        noise = None
    else:
        noise = args.noise if args.noise is not None else (0.0 if args.task.startswith("ct") else 0.01)
        y = op(torch.from_numpy(truth)[None, None])
        if noise:
            y = gaussian_noise(y, noise, torch.Generator().manual_seed(args.seed + 1))
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401 - the figure's library belongs to the start-up overhead
    # torch.autograd.grad (the samplers' data gradients) imports this (sympy, ~40 MiB) on first use
    importlib.import_module("torch.fx.experimental.symbolic_shapes")
    from padis3d.memory import StagePeaks, model_mb, vm_rss_mb
    from padis3d.volume.pipeline import release_free_memory

    stages = StagePeaks()
    loaded, prior = _prior(args, shape)  # with a budget, this measures the network's activations per tile
    from padis3d.io.orientation import PLANES
    from padis3d.priors.checkpoint import check_orientation

    check_orientation(loaded, PLANES[ref.plane][0])  # the slice is in the orientation the prior learned
    if args.adapt:
        preload_adaptation(prior)
    release_free_memory()
    weights_mb = model_mb(loaded.model)
    overhead_mb = vm_rss_mb() - weights_mb  # interpreter, libraries, the ready prior: before sampling
    stages.mark("start")
    baseline = baseline_fn(y)
    tta = None
    if args.adapt:
        from padis3d.adapt import TestTimeAdapter

        tta = (TestTimeAdapter.from_file(args.adapter, prior, op, y, adapt_settings(args, noise)) if args.adapter
               else TestTimeAdapter(prior, op, y, adapt_settings(args, noise)))
    t0 = time.perf_counter()
    with ProgressBar(settings.steps, f"{args.sampler} {args.task}" + " +adapt" * args.adapt,
                     disable=args.no_progress) as bar:
        if tta is not None:
            tta.on_step = bar.adapt_step
        try:
            result = reconstruct(prior, op, y, settings, baseline=baseline, callback=bar, adapt=tta)
        except PadisError as exc:  # non-finite images while adapting: the adaptation diverged, said so
            failure = adaptation_failure(exc, tta, y)
            if failure is exc:
                raise
            raise failure from exc
    seconds = time.perf_counter() - t0
    if not torch.isfinite(result).all():
        raise PadisError("the reconstruction holds non-finite values (nothing written): lower --adapt-lr or the "
                         "sampler's step sizes")
    stages.mark("sample")
    result_np, baseline_np = result[0, 0].numpy(), baseline[0, 0].numpy()
    metrics = {name: {"psnr": psnr(img, truth), "ssim": ssim(img, truth)}
               for name, img in ((baseline_name, baseline_np), (args.sampler, result_np))}
    out = args.out
    adapter_path = tta.save(out / ADAPTER_FILE) if tta is not None else None
    image_path = _save_image(out / "reconstruction", result_np, str(args.input), ref)
    comparison_figure(out / "comparison.png", [(baseline_name, baseline_np), (f"{args.sampler} (PaDIS prior)"
                                                                            if args.sampler == "padis" else
                                                                            args.sampler, result_np)],
                      None if args.measured is not None else truth)
    from padis3d.cli.identity import run_identity

    report = {"input": source, "task": args.task, "prior_orientation": loaded.orientation, "measured": str(args.measured) if args.measured else None,
              "operator": repr(op), "identity": run_identity(args).to_json(), "normalisation": ref.report(),
              "seed": args.seed,
              "settings": settings.to_dict(),
              "evaluations": settings.evaluations,
              "checkpoint": str(args.checkpoint), "tile": list(prior.grid.tile), "precision": loaded.precision,
              "max_batch": max_batch_report(args), "seconds": seconds,
              "metrics" + (" (vs --input)" if args.measured is not None else ""): metrics,
              "versions": library_versions(),
              "outputs": [image_path.name, "comparison.png", *[ADAPTER_FILE] * (tta is not None)]}
    if tta is not None:
        report["adaptation"] = adapt_report(tta, adapter_path, args.adapter)
    stages.mark("metrics_and_outputs")
    fixed_mb = overhead_mb + (ADAPT_FIXED_MB if tta is not None else 0.0)
    report["memory"] = {"budget_mb": args.memory_budget_mb, "peak_rss_mb": stages.peak, "overhead_mb": overhead_mb,
                        "model_mb": weights_mb, "stage_peaks_mb": stages.stages,
                        **({"adaptation_fixed_mb": ADAPT_FIXED_MB} if tta is not None else {}),
                        "allowance_mb": (args.memory_budget_mb + weights_mb + fixed_mb) * 1.1
                        if args.memory_budget_mb else None}
    write_json(out / "report.json", report)
    for name, m in metrics.items():
        print(f"{name:>12}: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.3f}")
    if tta is not None:
        print(adapt_summary(report["adaptation"]))
    print(f"{seconds:.1f} s, {settings.evaluations} network evaluations; wrote {out}/")
    return 0


# -- sample ---------------------------------------------------------------------------------
def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    add_sampler_arguments(p, ["heun", "ddim", "langevin", "pc"], "langevin")
    p.set_defaults(sigma_max=10.0, sigma_min=0.005)
    p.add_argument("--size", type=int_range(1, 16384), nargs="+", default=[128], help="image size (one or two ints)")
    p.add_argument("--count", type=int_range(1, 10_000), default=4, help="images to generate (default: %(default)s)")


def sample_outputs(args: argparse.Namespace) -> OutputPlan:
    """What ``padis3d sample`` writes and reads."""
    return OutputPlan(args.out, [f"sample_{i:03d}.png" for i in range(args.count)], inputs=plan_inputs(args))


def run_sample(args: argparse.Namespace) -> int:
    from padis3d.solvers import GENERATION_SAMPLERS, geometric_sigmas, init_state, karras_sigmas
    from padis3d.solvers.reconstruct import ProgressBar

    shape = tuple(args.size * 2 if len(args.size) == 1 else args.size)
    if len(shape) != 2:  # ranges are checked by the parser; the count of values is not
        raise PadisError(f"--size must be one or two ints, got {args.size}")
    if not 0 < args.sigma_min < args.sigma_max < math.inf:
        raise PadisError(f"need 0 < --sigma-min < --sigma-max < inf, got {args.sigma_min}, {args.sigma_max}")
    _, prior = _prior(args, shape, images=args.count)
    make = geometric_sigmas if args.schedule == "geometric" else karras_sigmas
    sigmas = make(args.sigma_max, args.sigma_min, args.steps)
    g = torch.Generator().manual_seed(args.seed)
    x = init_state(prior, (args.count, prior.denoiser.config.channels), args.sigma_max, generator=g)
    options = {"inner": args.inner} if args.sampler == "langevin" else {}
    with ProgressBar(len(sigmas), f"{args.sampler} sampling", disable=args.no_progress) as bar:
        images = GENERATION_SAMPLERS[args.sampler](prior, x, sigmas, generator=g, callback=bar, **options)
    for i, img in enumerate(images[:, 0].clamp(0, 1).numpy()):
        _save_image(args.out / f"sample_{i:03d}", img, "x.png")
    print(f"wrote {args.count} images of {shape} to {args.out}/")
    return 0
