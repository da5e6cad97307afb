"""The test-time adaptation options of ``padis3d reconstruct`` (``--adapt`` and ``--adapt-*``):
parsing, the :class:`padis3d.adapt.AdaptSettings` they give, the adapter a run starts from, and
what the report records. Defaults are :class:`AdaptSettings`'s own (one place)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from padis3d.cli.options import int_range, nonneg_float, path_option, positive_float
from padis3d.errors import PadisError
from padis3d.adapt.runtime import ADAPT_FIXED_MB, adaptation_failure, preload_adaptation  # noqa: F401

ADAPTER_FILE = "adapter.pt"
"""The adapted weights' file next to the result (the base checkpoint is never modified)."""
# option -> AdaptSettings field (every option defaults to None: "not given", the settings' default applies)
OPTIONS = {"mode": "mode", "rank": "rank", "lr": "lr", "steps": "steps", "first": "first", "every": "every",
           "max_sigma": "max_sigma", "cg_iters": "cg_iters", "tv": "tv", "noise": "noise_sigma", "tau": "tau",
           "validate": "validate", "holdout": "holdout", "val_patience": "val_patience", "val_margin": "val_margin"}


def add_adapt_arguments(p: argparse.ArgumentParser) -> None:
    from padis3d.adapt import AdaptSettings

    d = AdaptSettings()
    g = p.add_argument_group("test-time adaptation (2D tasks, samplers dds and padis)")
    a = g.add_argument
    a("--adapt", action="store_true", help="fine-tune the prior on the measurements while sampling (self-supervised "
      f"loss ||y - A D_θ||²); the adapted weights are written to OUT/{ADAPTER_FILE}")
    a("--adapt-mode", choices=("lora", "norm", "all"), default=None, help=f"what adapts (default: {d.mode})")
    a("--adapt-rank", type=int_range(1, 4096), default=None, help=f"LoRA rank (default: {d.rank})")
    a("--adapt-lr", type=positive_float(1.0), default=None, help=f"Adam learning rate (default: {d.lr:g})")
    a("--adapt-steps", type=int_range(1, 10_000), default=None,
      help=f"Adam steps per adapted level, fewer when the loss stops falling (default: {d.steps})")
    a("--adapt-first", type=int_range(0, 10**6), default=None,
      help=f"adapt at the first N levels ... (default: {d.first})")
    a("--adapt-every", type=int_range(1, 10**6), default=None, help=f"... and at every N-th level (default: {d.every})")
    a("--adapt-max-sigma", type=positive_float(1e4), default=None,
      help=f"... only at levels with σ at most this (default: {d.max_sigma})")
    a("--adapt-cg-iters", type=int_range(0, 1000), default=None,
      help=f"CG data steps inside the loss (0: the patch loss; default: {d.cg_iters})")
    a("--adapt-tv", type=nonneg_float(1e6), default=None, help=f"weight of a TV term in the loss (default: {d.tv:g})")
    a("--adapt-noise", type=nonneg_float(1e6), default=None,
      help="measurement noise std for the discrepancy stop (stop adapting once ||A x - y|| <= tau sqrt(m) noise; "
           "default: the simulated --noise; with --measured: no stop unless given)")
    a("--adapt-tau", type=positive_float(1e3), default=None, help=f"discrepancy factor tau (default: {d.tau:g})")
    a("--adapt-validate", action=argparse.BooleanOptionalAction, default=None,
      help="hold out part of the measurements (CT: views; else pixels), adapt on the rest, keep the adapter with "
           "the lowest held-out loss and return the un-adapted result when no adapter beats it there "
           f"(default: {'on' if d.validate else 'off'})")
    a("--adapt-holdout", type=positive_float(0.9), default=None,
      help=f"fraction of the measurements held out for validation (default: {d.holdout:g})")
    a("--adapt-val-patience", type=int_range(1, 10**6), default=None,
      help=f"stop adapting after this many rounds without a better held-out loss (default: {d.val_patience})")
    a("--adapt-val-margin", type=nonneg_float(0.9), default=None,
      help="keep an adapter only while its held-out loss is below (1 - this) times the un-adapted prior's "
           f"(default: {d.val_margin:g})")
    a("--adapter", type=path_option, default=None, help="start from a saved adapter file (a previous run's "
      f"{ADAPTER_FILE}) instead of a fresh one; its settings apply unless --adapt-* options are given")


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--adapt-*`` options given on the command line: ``{option name: value}``."""
    return {opt: getattr(args, f"adapt_{opt}") for opt in OPTIONS if getattr(args, f"adapt_{opt}", None) is not None}


def check_adapt_options(args: argparse.Namespace, volume: bool) -> None:
    """Before any work: ``--adapt-*`` / ``--adapter`` need ``--adapt``; ``--adapt`` needs a 2D task and
    a sampler with an adaptation hook."""
    from padis3d.solvers.reconstruct import ADAPTING_SAMPLERS

    given = [f"--adapt-{o.replace('_', '-')}" for o in given_options(args)]
    given += ["--adapter"] * (getattr(args, "adapter", None) is not None)
    if not getattr(args, "adapt", False):
        if given:
            raise PadisError(f"{', '.join(given)} given without --adapt")
        return
    if volume:
        raise PadisError("--adapt works on the 2D tasks: the out-of-core volume runner denoises band by band at each "
                         "level, and the adaptation gradient needs every band's residual at once; adapt a volume "
                         "in memory with the Python API (padis3d.adapt.TestTimeAdapter with padis3d.solvers.dds, "
                         "README 'Test-time adaptation')")
    if args.sampler not in ADAPTING_SAMPLERS:
        raise PadisError(f"--adapt works with --sampler {' or '.join(ADAPTING_SAMPLERS)}, not {args.sampler}")
    if getattr(args, "adapter", None) is not None:  # read now, before any data or prior: a wrong file is one line
        from padis3d.adapt.adapters import read_adapter_file

        read_adapter_file(args.adapter)


def adapt_settings(args: argparse.Namespace, simulated_noise: float | None) -> Any:
    """The :class:`AdaptSettings` of a run: the defaults (or the ``--adapter`` file's settings), the
    given options on top; the discrepancy noise level defaults to the simulated noise."""
    from padis3d.adapt import AdaptSettings
    from padis3d.adapt.sampling import stored_settings

    given = {OPTIONS[opt]: value for opt, value in given_options(args).items()}
    values = (stored_settings(args.adapter) if args.adapter is not None else {}) | given
    if "noise_sigma" not in given and simulated_noise:
        values["noise_sigma"] = float(simulated_noise)
    values.setdefault("seed", args.seed)
    return AdaptSettings(**values)


def adapt_report(tta: Any, adapter_path: Path | None, started_from: Path | None) -> dict[str, Any]:
    """What report.json records of an adaptation: every setting, the steps taken, the stop, the file."""
    history = tta.history
    levels = sorted({h.level for h in history})
    return {"settings": asdict(tta.settings), "trainable_parameters": tta.adapter.trainable_count(),
            "adapted_levels": levels, "steps_taken": sum(h.taken for h in history),
            "first_loss": history[0].loss if history else None, "last_loss": history[-1].loss if history else None,
            "stopped": tta.stopped, "seconds": tta.seconds, "started_from": str(started_from) if started_from else None,
            "adapter": adapter_path.name if adapter_path else None,
            "validation": tta.validation.to_report() if tta.validation is not None else None}


def adapt_summary(a: dict[str, Any]) -> str:
    """One line of :func:`adapt_report`'s record for the terminal."""
    if a["first_loss"] is None:
        return "adaptation: no level was scheduled (check --adapt-first / --adapt-every / --adapt-max-sigma)"
    stop = f", stopped: {a['stopped']}" if a["stopped"] else ""
    line = (f"adaptation: {a['steps_taken']} Adam steps at {len(a['adapted_levels'])} levels, {a['seconds']:.1f} s, "
            f"loss {a['first_loss']:.4g} -> {a['last_loss']:.4g}{stop}")
    if a.get("validation"):
        from padis3d.adapt.validation import summary_line

        line += "\n" + summary_line(a["validation"])
    return line
