"""Which ``padis3d reconstruct`` option acts on which task: the one table, and the check that
refuses an option given for a task that would ignore it (one line, before any file is read).

An option is *given* when its value differs from the parser's default. Every option of the
reconstruct parser has a row in :data:`APPLIES` (a test fails when a new option has none).
Options whose effect depends on another option's value (``--sampler``, ``--denoiser``) are
decided per task here; :data:`HARMLESS` lists values that only say what a task does anyway
(``--sampler dds`` on a volume task, which always samples with DDS)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from padis3d.errors import PadisError

TWO_D = ("ct", "ct-fan", "deblur", "sr")
VOLUME = ("ct3d-parallel", "ct3d-cone", "denoise")
CT = ("ct", "ct-fan", "ct3d-parallel", "ct3d-cone")
ALL = TWO_D + VOLUME

GROUP_NAMES = {TWO_D: "the 2D tasks", VOLUME: "the volume tasks", CT: "the CT tasks"}

_ADAPT = ("adapt", "adapt_mode", "adapt_rank", "adapt_lr", "adapt_steps", "adapt_first", "adapt_every",
          "adapt_max_sigma", "adapt_cg_iters", "adapt_tv", "adapt_noise", "adapt_tau", "adapt_validate",
          "adapt_holdout", "adapt_val_patience", "adapt_val_margin", "adapter")

APPLIES: dict[str, tuple[str, ...]] = {
    # prior, sampler and resources
    "checkpoint": ALL, "tile": ALL, "sampler": TWO_D, "steps": ALL, "inner": TWO_D, "sigma_max": ALL,
    "sigma_min": ALL, "schedule": TWO_D, "budget": TWO_D, "step_rule": TWO_D, "step_size": TWO_D, "seed": ALL,
    "device": ALL, "precision": ALL, "max_batch": ALL, "memory_budget_mb": ALL, "threads": ALL, "out": ALL,
    "no_progress": ALL,
    # the problem and its input
    "task": ALL, "input": ALL, "slice": TWO_D, "axis": TWO_D, "orientation": ALL, "series": ALL, "window": ALL,
    "size": ALL, "measured": TWO_D, "views": CT, "span_deg": CT, "noise": ALL, "kernel": ("deblur",),
    "factor": ("sr",), "sr_mode": ("sr",),
    # 2D sampler settings (the volume runner takes DDS's first-order steps from noise)
    "zeta": TWO_D, "epsilon": TWO_D, "init": TWO_D, "eta": ALL, "rho": ALL, "cg_iters": ALL, "order": TWO_D, "tv": TWO_D,
    "holdout_choice": ("ct", "deblur", "sr"),
    # volumes
    "slices": VOLUME, "denoiser": ("denoise",), "lowres": VOLUME, "lowres_weight": VOLUME, "band": VOLUME,
    "work_dir": VOLUME, "restart": VOLUME, "scheduler": VOLUME,
    # test-time adaptation (2D; padis3d.cli.adapt says why not on volumes)
    **{name: TWO_D for name in _ADAPT},
}
"""option (argparse ``dest``) -> the tasks it acts on."""

HARMLESS: dict[str, dict[str, tuple[object, ...]]] = {"sampler": {task: ("dds",) for task in VOLUME}}
"""option -> task -> values accepted there although the option does not apply: they state what the task does."""

NOT_OPTIONS = ("help", "command", "run", "outputs", "sampler_option_default", "argv")
"""Namespace entries that are not reconstruct options."""


def option_name(dest: str) -> str:
    """``--span-deg`` for ``span_deg``."""
    return "--" + dest.replace("_", "-")


def describe_tasks(tasks: Sequence[str]) -> str:
    """``the CT tasks (ct, ct-fan, ...)`` or ``--task deblur``."""
    tasks = tuple(tasks)
    if len(tasks) == 1:
        return f"--task {tasks[0]}"
    return f"{GROUP_NAMES.get(tasks, 'the tasks')} ({', '.join(tasks)})"


def given(args: argparse.Namespace, dest: str, default: Callable[[str], object]) -> bool:
    """Whether ``dest`` was set to something other than its parser default."""
    value = getattr(args, dest, None)
    return value != default(dest)


def check_applicable(args: argparse.Namespace, default: Callable[[str], object]) -> None:
    """PadisError naming the first given option that ``args.task`` would ignore, and the tasks it is for;
    also an option that another given option makes meaningless (``--noise`` with ``--measured``)."""
    task = args.task
    for dest, tasks in APPLIES.items():
        if task in tasks or not hasattr(args, dest) or not given(args, dest, default):
            continue
        if getattr(args, dest) in HARMLESS.get(dest, {}).get(task, ()):
            continue
        raise PadisError(f"{option_name(dest)} is for {describe_tasks(tasks)}; --task {task} does not use it: "
                         f"leave it out")
    if getattr(args, "measured", None) is not None and getattr(args, "noise", None) is not None:
        raise PadisError("--noise simulates measurement noise, but --measured gives the measurements as they are: "
                         "leave out --noise (--adapt-noise sets the noise level of an adaptation's stop)")


def unlisted_options(parser: argparse.ArgumentParser) -> list[str]:
    """The reconstruct parser's options that :data:`APPLIES` has no row for (should be none)."""
    return [a.dest for a in parser._actions if a.option_strings and a.dest not in APPLIES
            and a.dest not in NOT_OPTIONS]
