"""``padis3d reconstruct`` (2D inverse problems with a patch prior) and ``padis3d sample``
(unconditional generation). Outputs are written only when a run finishes, atomically, so
Ctrl-C leaves nothing half-written."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padis3d.atomic import save_figure, write_json
from padis3d.cli.options import (COUNT, MAX_BUDGET_MB, MIN_SIDE, NONNEG_COUNT, PROBABILITY, SEED, check_run_options,
                                 coarse_weight_option,
                                 device_option, float_range, int_range, max_batch_option, memory_budget_bytes,
                                 nonempty_text,
                                 nonneg_float, parse_tile, path_option, positive_float, scheduler_address,
                                 tile_option)
from padis3d.cli.options import PRECISION_HELP, WindowAction, orientation_option, precision_option
from padis3d.cli.adapt import (ADAPT_FIXED_MB, ADAPTER_FILE, adapt_report, adapt_settings, adapt_summary,
                               add_adapt_arguments, check_adapt_options)
from padis3d.cli.identity import plan_inputs
from padis3d.cli.outputs import OutputPlan
from padis3d.errors import PadisError
from padis3d.image.output import image_suffix, save_image
from padis3d.image.tasks import default_noise, table_task
from padis3d.limits import check_not_constant

VOLUME_TASKS = ("ct3d-parallel", "ct3d-cone", "denoise")
TASKS = ("ct", "ct-fan", "deblur", "sr", *VOLUME_TASKS)


def add_sampler_arguments(p: argparse.ArgumentParser, sampler_choices: list[str], default_sampler: str) -> None:
    from padis3d.solvers.reconstruct import SamplerSettings

    d = SamplerSettings()
    a = p.add_argument
    from padis3d.cli.defaults_help import sampler_help

    def h(what: str, field: str) -> str:  # reconstruct: a 2D task's defaults come from --budget's table
        return sampler_help(what, field) if "dds" in sampler_choices else f"{what} (default: %(default)s)"

    a("--checkpoint", type=nonempty_text, default="chest128_patch", metavar="PRIOR",
      help="a prior name ('padis3d priors' lists them; $PADIS3D_PRIORS adds folders) or a .pt file (default: %(default)s)")
    a("--tile", type=tile_option, default="auto", help="patch size at inference: an int, 'auto' (largest trained) or 'whole'")
    a("--sampler", choices=sampler_choices, default=default_sampler,
      help=("the 2D sampler: padis is the paper's Algorithm 1, dds the demo's (default: %(default)s); the volume "
            "tasks always sample with DDS" if "dds" in sampler_choices else "the generation sampler (default: %(default)s)"))
    a("--steps", type=COUNT, default=d.steps, help=h("noise levels", "steps"))
    a("--inner", type=int_range(1, 10_000), default=d.inner,
      help=h("network evaluations per level for padis, langevin, pc and ddnm", "inner"))
    a("--sigma-max", type=positive_float(1e4), default=d.sigma_max, help=h("the largest noise level", "sigma_max"))
    a("--sigma-min", type=positive_float(1e4), default=d.sigma_min, help=h("the smallest noise level", "sigma_min"))
    a("--schedule", choices=("geometric", "karras"), default=d.schedule, help=h("the noise-level grid", "schedule"))
    a("--budget", choices=("cpu", "paper", "custom"), default="cpu",
      help="reconstruct, 2D tasks: 'cpu' (200 network evaluations; DDS 50) or 'paper' (the paper's 1000; DDS 200) "
      "takes every sampler setting from padis3d/solvers/defaults.py for the task and sampler, and options "
      "given with other values than their defaults override it; 'custom': the options as given "
      "(default: %(default)s)")
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
    # One thread by default: on the 2-core machines the README targets, shared (CI, other jobs), torch's
    # default (one per core) took 72.5 s instead of 19.2 s for a 2D reconstruct (median wall) and 270.8 s
    # instead of 59.3 s for the demo (benchmarks/threads.py, benchmarks/results/threads.txt); the volume
    # bands already run in parallel on dask threads.
    a("--threads", type=int_range(1, 1024), default=1,
      help="torch CPU threads (default: %(default)s; more can be faster on an idle machine, slower on a shared one)")
    a("--out", type=path_option, required=True, help="output folder")
    a("--no-progress", action="store_true")


def _prior(args: argparse.Namespace, image_shape: tuple[int, ...], images: int = 1):
    """``(loaded checkpoint, PatchPrior)`` of the options (:func:`padis3d.image.inputs.image_prior`); with
    ``--max-batch auto`` the measured choice is printed and kept in ``args.max_batch_choice``."""
    from padis3d.image.inputs import image_prior

    check_run_options(args)
    loaded, prior, args.max_batch_choice = image_prior(
        args.checkpoint, image_shape, parse_tile(args.tile), max_batch=args.max_batch,
        memory_budget=memory_budget_bytes(args), device=args.device, precision=args.precision, images=images,
        on_batch_choice=lambda choice: print(choice.summary(), flush=True))
    return loaded, prior


# -- reconstruct -----------------------------------------------------------------------
def add_reconstruct_arguments(p: argparse.ArgumentParser) -> None:
    add_sampler_arguments(p, ["padis", "langevin", "pc", "ddnm", "dds"], "dds")
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
    from padis3d.cli.defaults_help import sampler_help

    a("--zeta", type=nonneg_float(), default=0.1,
      help=sampler_help("data step ζ of the padis ζ-rules (--step-rule norm, paper) and of langevin and pc", "zeta"))
    a("--epsilon", type=positive_float(1e6), default=0.5, help=sampler_help("Langevin step α = ε σ²", "epsilon"))
    a("--init", choices=("noise", "baseline"), default="noise",
      help=sampler_help("start from noise, or from the baseline (FBP, blurred or upsampled image) re-noised at "
                        "--sigma-max", "init"))
    a("--eta", type=PROBABILITY, default=0.85, help=sampler_help("DDS re-noising η", "eta"))
    a("--rho", type=nonneg_float(), default=1.0, help=sampler_help("DDS data-consistency weight ρ", "rho"))
    a("--cg-iters", type=int_range(0, 100_000), default=5,
      help=sampler_help("conjugate-gradient steps of the DDS data step and of ddnm's least squares", "cg_iters"))
    from padis3d.cli.defaults_help import table_defaults

    a("--tv", type=nonneg_float(1e6), default=None,
      help="DDS: weight λ of an isotropic TV term in the data step, min ½||Ax - y||² + ρ/2||x - D||² + λ TV(x), "
      "solved by 3 ADMM rounds of --cg-iters CG steps; 0 turns it off (the plain CG step) (default for a 2D task: "
      f"from --budget's table, padis3d/solvers/defaults.py: {table_defaults('tv')}; for --budget custom: 0)")
    a("--holdout-choice", action=argparse.BooleanOptionalAction, default=None,
      help="2D: hold out 15%% of the measurements, run DDS, DDS with ADMM-TV's weight as its TV term and ADMM-TV on "
      "the rest, and return the one that predicts the held-out part best, run on all measurements (about 3x the "
      "time of DDS; results/holdout_choice.md); default: on wherever it applies (--sampler dds without --adapt, "
      "--task ct over 180 degrees, deblur or sr, --size 64, 128 or 256)")
    a("--order", type=int, choices=(1, 2), default=1, help="DDS step: 1 (DDIM) or 2 (Heun-style, two network "
      "evaluations per level; 2D tasks; measured no better at equal evaluations: results/evaluations_curve.md)")
    add_volume_arguments(p.add_argument_group("volumes (ct3d-parallel, ct3d-cone, denoise)"))
    add_adapt_arguments(p)


def add_volume_arguments(v: Any) -> None:
    """The options of the volume tasks (an argument group of ``reconstruct``)."""
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


def _reference_image(args: argparse.Namespace):
    """The reference slice (:class:`padis3d.io.reference.ReferenceSlice`) on its reconstruction grid."""
    from padis3d.image.inputs import reference_image
    from padis3d.io.reference import ReferenceSlice
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
    return reference_image(args.input, args.task, args.size, factor=args.factor, index=args.slice, axis=args.axis,
                           window=tuple(args.window) if args.window else None, orientation=args.orientation,
                           series=args.series)


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
              "eta", "rho", "cg_iters", "init", "order", "tv")


cli_task = table_task  # the table's task for a ``padis3d reconstruct --task`` (padis3d.image.tasks)


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
    if (args.tv or 0) > 0 and args.sampler != "dds":
        raise PadisError(f"--tv is the TV weight of DDS's data step: give --sampler dds (got --sampler {args.sampler})")
    if args.holdout_choice:
        from padis3d.image.reconstruct import holdout_blocker

        why = holdout_blocker(args.task, args.sampler, bool(args.adapt), args.span_deg, args.size)
        if why:
            raise PadisError(f"--holdout-choice does not apply here: {why}")
    check_plan(args)
    check_prior_kind(args.checkpoint, args.task)  # a slab or cube prior on a 2D task, ...: before any data
    inputs = plan_inputs(args)  # every file input of reconstruct's declaration (padis3d.cli.identity)
    if args.task in VOLUME_TASKS:
        from padis3d.cli.volume import volume_outputs

        return volume_outputs(args, inputs)
    return OutputPlan(args.out, [f"reconstruction{image_suffix(str(args.input))}", "comparison.png", "report.json",
                                 *[ADAPTER_FILE] * args.adapt], inputs=inputs)


def image_call(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`padis3d.reconstruct_image` that ``args`` give (but the source and
    the sampler settings)."""
    from padis3d.io import read_npy

    return dict(task=args.task, prior=args.checkpoint, views=args.views, span_deg=args.span_deg, noise=args.noise,
                kernel=args.kernel, factor=args.factor, sr_mode=args.sr_mode, tile=parse_tile(args.tile),
                measured=None if args.measured is None else read_npy(args.measured).astype(np.float32),
                max_batch=args.max_batch, memory_budget=memory_budget_bytes(args), device=args.device,
                precision=args.precision, adapter=args.adapter if args.adapt else None,
                holdout_choice=args.holdout_choice)


def run_reconstruct(args: argparse.Namespace) -> int:
    if args.task in VOLUME_TASKS:
        from padis3d.cli.volume import run_reconstruct_volume

        return run_reconstruct_volume(args)
    from padis3d.image.reconstruct import reconstruct_image

    settings = settings_from_args(args, args.sampler_option_default)  # --budget: the table
    check_run_options(args)
    ref = _reference_image(args)
    print(ref.describe())
    preload_figures()  # the figure's library belongs to the start-up overhead
    noise = None if args.measured is not None else \
        (args.noise if args.noise is not None else default_noise(args.task))
    bar = LazyProgress(settings.steps, f"{args.sampler} {args.task}" + " +adapt" * args.adapt, args.no_progress)
    try:
        result = reconstruct_image(ref, **image_call(args), settings=settings, callback=bar,
                                   adapt=adapt_settings(args, noise) if args.adapt else None,
                                   on_adapt_step=bar.adapt_step,
                                   on_batch_choice=lambda choice: print(choice.summary(), flush=True))
    finally:
        bar.close()
    out = args.out
    adapter_path = result.adapter.save(out / ADAPTER_FILE) if result.adapter is not None else None
    image_path = result.write(out / "reconstruction", str(args.input))
    name = f"{args.sampler} (PaDIS prior)" if args.sampler == "padis" else result.method
    comparison_figure(out / "comparison.png", [(result.baseline_name, result.baseline), (name, result.image)],
                      None if args.measured is not None else result.truth)
    report = image_report(args, result, [image_path.name, "comparison.png", *[ADAPTER_FILE] * (adapter_path is not None)])
    if result.adapter is not None:
        report["adaptation"] = adapt_report(result.adapter, adapter_path, args.adapter)
    report["holdout_choice"] = result.choice.to_report() if result.choice is not None else None
    result.stages.mark("metrics_and_outputs")
    report["memory"] = image_memory(args, result)
    write_json(out / "report.json", report)
    for name, m in result.metrics.items():
        print(f"{name:>12}: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.3f}")
    if result.adapter is not None:
        print(adapt_summary(report["adaptation"]))
    if result.choice is not None:
        print(result.choice.summary())
    print(f"{result.seconds:.1f} s, {result.evaluations} network evaluations; wrote {out}/")
    return 0


class LazyProgress:
    """The sampler's levels (and adaptation steps) as a :class:`padis3d.solvers.reconstruct.ProgressBar`
    opened at the first of them, so that an error before sampling (a missing prior) prints no bar."""

    def __init__(self, levels: int, desc: str, disable: bool):
        self.levels, self.desc, self.disable = levels, desc, disable
        self.bar: Any = None

    def _open(self) -> Any:
        from padis3d.solvers.reconstruct import ProgressBar

        if self.bar is None:
            self.bar = ProgressBar(self.levels, self.desc, disable=self.disable)
        return self.bar

    def __call__(self, info: dict) -> None:
        self._open()(info)

    def adapt_step(self, step: Any) -> None:
        self._open().adapt_step(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__()


def preload_figures() -> None:
    """Import matplotlib's pyplot now, so that its memory belongs to the start-up overhead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def image_report(args: argparse.Namespace, result: Any, outputs: list[str]) -> dict[str, Any]:
    """``report.json`` of a 2D run (its ``adaptation`` and ``memory`` are added by the caller)."""
    from padis3d.cli.identity import run_identity
    from padis3d.priors.checkpoint import library_versions

    info, ref = result.prior_info, result.reference
    return {"input": ref.source, "task": args.task, "prior_orientation": info["orientation"],
            "measured": str(args.measured) if args.measured else None, "operator": repr(result.operator),
            "identity": run_identity(args).to_json(), "normalisation": ref.report(), "seed": args.seed,
            "settings": result.settings.to_dict(), "evaluations": result.evaluations,
            "checkpoint": str(args.checkpoint), "tile": info["tile"], "precision": info["precision"],
            "max_batch": info["max_batch"] if args.max_batch == "auto" else args.max_batch, "seconds": result.seconds,
            "metrics" + (" (vs --input)" if args.measured is not None else ""): result.metrics,
            "versions": library_versions(), "outputs": outputs}


def image_memory(args: argparse.Namespace, result: Any) -> dict[str, Any]:
    """``report.json``'s ``memory`` of a 2D run: the peak, the stages and the allowance of a budget, MiB."""
    adapting = result.adapter is not None
    fixed_mb = result.overhead_mb + (ADAPT_FIXED_MB if adapting else 0.0)
    return {"budget_mb": args.memory_budget_mb, "peak_rss_mb": result.peak_rss_mb, "overhead_mb": result.overhead_mb,
            "model_mb": result.model_mb, "stage_peaks_mb": result.stages.stages,
            **({"adaptation_fixed_mb": ADAPT_FIXED_MB} if adapting else {}),
            "allowance_mb": (args.memory_budget_mb + result.model_mb + fixed_mb) * 1.1
            if args.memory_budget_mb else None}


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
        save_image(args.out / f"sample_{i:03d}", img, "x.png")
    print(f"wrote {args.count} images of {shape} to {args.out}/")
    return 0
