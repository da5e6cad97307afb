"""The identity of a run: the parsed options that affect its result plus the content hash of
every file it reads (:mod:`padis3d.io.content_hash`).

:data:`DECLARATIONS` says, once per command, for every option of its parser (``build_parser``)
whether it enters the identity or why it does not change the result, and which options name
files the command reads (``inputs``: their content, not their path, enters the identity; they are
the inputs of the command's :class:`padis3d.cli.outputs.OutputPlan`, so no output replaces them) or
where it writes (``outputs``). ``tests/reliability/test_run_identity.py`` fails when an option of
a parser is in neither list, or in both.

What the identity is used for: a volume run's work folder (prepared arrays and resumable state,
:mod:`padis3d.cli.volume`) and a training state (:mod:`padis3d.cli.train`) are reused only by a run
of the same identity; ``report.json`` records it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from padis3d.io.content_hash import content_sha256

Resolve = Callable[[argparse.Namespace], "Path | None"]


def _chest_ct(args: argparse.Namespace) -> Path:
    from padis3d.io.sample_data import chest_ct_path

    return chest_ct_path()


def _shipped_demo_prior(args: argparse.Namespace) -> Path:
    from padis3d.cli.demo import DEFAULT_CHECKPOINT

    return DEFAULT_CHECKPOINT


def _own_state(args: argparse.Namespace) -> Path:
    return Path(args.out) / "state.pt"


@dataclass(frozen=True)
class FileInput:
    """An option that names a file (or, with ``folder``, a file or folder) the command reads.
    ``builtin``: values that are names, not paths, each with the file it reads (None: nothing,
    e.g. generated data); ``default``: the file read when the option is not given."""

    folder: bool = False
    builtin: Mapping[str, Resolve] = field(default_factory=dict)
    default: Resolve | None = None
    prior: bool = False  # the value may be a prior name (padis3d.priors.registry)


@dataclass(frozen=True)
class Declaration:
    """The options of one command: ``identity`` (their values, or for ``inputs`` their files'
    contents, make the run's identity) and ``neutral`` (option -> why it does not change the
    result); ``inputs`` name files read, ``outputs`` paths written, ``names`` are text options that
    name no file (a DICOM series UID)."""

    identity: tuple[str, ...]
    neutral: Mapping[str, str]
    inputs: Mapping[str, FileInput] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


OUT = "where the results go, not what they are"
PROGRESS = "only shows or hides the progress bar"
THREADS = "how many CPU threads torch uses (the same numbers: tests/reliability/test_run_identity.py)"

# Result-affecting options of every sampling command. --max-batch, --memory-budget-mb and (volume)
# --band are in the identity although batching is bit-identical on CPU (tests/tiling/test_stream.py):
# GPU kernels may round differently per batch size, and the volume runner draws its noise per band.
SAMPLER = ("checkpoint", "tile", "sampler", "steps", "inner", "sigma_max", "sigma_min", "schedule", "budget",
           "step_rule", "step_size", "seed", "device", "precision", "max_batch", "memory_budget_mb")
SAMPLER_NEUTRAL = {"out": OUT, "no_progress": PROGRESS, "threads": THREADS}
ADAPT = ("adapt", "adapt_mode", "adapt_rank", "adapt_lr", "adapt_steps", "adapt_first", "adapt_every",
         "adapt_max_sigma", "adapt_cg_iters", "adapt_tv", "adapt_noise", "adapt_tau", "adapt_validate",
         "adapt_holdout", "adapt_val_patience", "adapt_val_margin", "adapter")

DECLARATIONS: dict[str, Declaration] = {
    "info": Declaration(identity=(), neutral={}),
    "priors": Declaration(identity=(), neutral={}),
    "reconstruct": Declaration(
        identity=(*SAMPLER, "task", "input", "slice", "axis", "orientation", "series", "window", "size", "measured",
                  "views", "span_deg",
                  "noise", "kernel", "factor", "sr_mode", "zeta", "epsilon", "init", "eta", "rho", "cg_iters",
                  "order", "tv", "holdout_choice", "slices", "denoiser", "lowres", "lowres_weight", "band", *ADAPT),
        neutral={**SAMPLER_NEUTRAL,
                 "work_dir": "where a volume run keeps its resumable state",
                 "restart": "discards a work folder's progress and prepared arrays: the run is computed afresh",
                 "scheduler": "which dask scheduler runs the band tasks (the threaded result: "
                              "tests/volume/test_volume_run.py::test_local_cluster_gives_the_threaded_result)"},
        inputs={"input": FileInput(folder=True, builtin={"chest-ct": _chest_ct}), "checkpoint": FileInput(prior=True),
                "measured": FileInput(), "adapter": FileInput(), "lowres": FileInput(prior=True)},
        outputs=("out", "work_dir"), names=("series",)),
    "sample": Declaration(identity=(*SAMPLER, "size", "count"), neutral=SAMPLER_NEUTRAL,
                          inputs={"checkpoint": FileInput(prior=True)}, outputs=("out",)),
    "demo": Declaration(
        identity=("slices", "task", "checkpoint", "sampler", "seed", "precision", "smoke"),
        neutral={"out": OUT, "no_progress": PROGRESS, "threads": THREADS},
        inputs={"checkpoint": FileInput(default=_shipped_demo_prior, prior=True)}, outputs=("out",)),
    "tiling-demo": Declaration(identity=("seed",), neutral={"out": OUT}, outputs=("out",)),
    # a training run's identity: what a resumed run must share with the state it continues
    "train": Declaration(
        identity=("preset", "data", "ellipse_images", "axis", "orientation", "series", "window", "size", "subset",
                  "mode", "slab", "slab_jumps", "slab_z_position", "downsample", "no_positions", "patch_sizes",
                  "patch_probs", "batch", "batch_sizes", "features", "res_blocks", "lr", "ema_halflife", "grad_clip",
                  "seed", "augment"),
        neutral={"out": OUT, "export": "extra copies of the prior",
                 "resume": "the state this run continues (its recorded identity must equal this run's)",
                 "steps": "the total step count: a resumed run trains on to more steps (recorded in the prior)",
                 "hours": "when this session stops (a checkpoint): resuming continues the same run",
                 "budget_hours": "when the run stops (a checkpoint): resuming continues the same run",
                 "checkpoint_minutes": "how often a checkpoint is written: resuming from one continues the run",
                 "threads": "CPU threads per process, may change on --resume",
                 "device": "may change on --resume (a run moved to a GPU); recorded in the model card's commands",
                 "precision": "may change on --resume; recorded in the model card's commands",
                 "no_progress": PROGRESS},
        inputs={"data": FileInput(folder=True, builtin={"chest-ct": _chest_ct, "ellipses": lambda a: None}),
                "resume": FileInput(builtin={"auto": _own_state})},
        outputs=("out", "export"), names=("series",)),
}


def declaration(command: str) -> Declaration:
    """The option declaration of ``padis3d COMMAND``."""
    return DECLARATIONS[command]


def _resolve(args: argparse.Namespace, dest: str, spec: FileInput) -> tuple[bool, str | None, Path | None]:
    """``(given or defaulted, builtin name or None, path read or None)`` of one file input option."""
    value = getattr(args, dest, None)
    if value is None:
        return (True, None, spec.default(args)) if spec.default is not None else (False, None, None)
    if str(value) in spec.builtin:
        return True, str(value), spec.builtin[str(value)](args)
    if spec.prior:
        from padis3d.priors.registry import is_name, resolve_prior

        return True, str(value) if is_name(value) else None, resolve_prior(value)
    return True, None, Path(value)


def input_files(args: argparse.Namespace) -> dict[str, tuple[str | None, Path | None]]:
    """Every file input option of ``args.command`` that is given (or has a default file):
    ``{dest: (builtin name or None, path read or None)}``. A bundled file that is not installed
    raises FileNotFoundError (with the install command)."""
    out: dict[str, tuple[str | None, Path | None]] = {}
    for dest, spec in declaration(args.command).inputs.items():
        given, builtin, path = _resolve(args, dest, spec)
        if given:
            out[dest] = (builtin, path)
    return out


def plan_inputs(args: argparse.Namespace) -> list[Path]:
    """The paths ``args.command`` reads, for its OutputPlan: folders only where the option may name
    one (elsewhere a folder is the command's own clear error); a bundled file that is not
    installed is left to the command's own error."""
    paths = []
    for dest, spec in declaration(args.command).inputs.items():
        try:
            _, _, path = _resolve(args, dest, spec)
        except FileNotFoundError:
            continue
        if path is not None and (spec.folder or not path.is_dir()):
            paths.append(path)
    return paths


def _json(value: Any) -> Any:
    """An option value as JSON stores it (paths as text, tuples as lists)."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class RunIdentity:
    """A run's identity: ``options`` (result-affecting option values, file inputs left out) and
    ``files`` (file input -> ``{"given", "builtin", "path", "sha256"}``, None when not given)."""

    command: str
    options: dict[str, Any]
    files: dict[str, dict | None]

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of everything that identifies the run (file paths left out:
        the same bytes elsewhere are the same input)."""
        files = {k: None if e is None else {"builtin": e.get("builtin"), "sha256": e.get("sha256")}
                 for k, e in self.files.items()}
        text = json.dumps({"command": self.command, "options": self.options, "files": files}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        """What ``report.json`` and a work folder record (:meth:`from_json` reads it back)."""
        return {"command": self.command, "key": self.key, "options": self.options, "files": self.files}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunIdentity:
        """The identity :meth:`to_json` recorded."""
        return cls(str(data["command"]), dict(data["options"]), dict(data["files"]))

    def differences_from(self, recorded: Mapping[str, Any]) -> list[str]:
        """:meth:`differences` from an identity :meth:`to_json` recorded (a work folder's owner,
        :mod:`padis3d.volume.work`); KeyError/TypeError/ValueError for a record of another shape."""
        return self.differences(RunIdentity.from_json(recorded))

    def differences(self, before: RunIdentity) -> list[str]:
        """What differs from ``before``, one short phrase each (``--span-deg None -> 90.0``,
        ``--checkpoint content changed``); empty when the identities are equal."""
        out = [f"command {before.command} -> {self.command}"] if before.command != self.command else []
        for name in sorted(set(self.options) | set(before.options)):
            old, new = before.options.get(name), self.options.get(name)
            if old != new:
                out.append(f"{_label(name)} {old!r} -> {new!r}")
        for name in sorted(set(self.files) | set(before.files)):
            old, new = before.files.get(name), self.files.get(name)
            if _file_key(old) == _file_key(new):
                continue
            if old is not None and new is not None and old.get("sha256") and new.get("sha256") and \
                    old.get("builtin") == new.get("builtin"):
                out.append(f"{_label(name)} content changed")
            else:
                out.append(f"{_label(name)} {_given(old)!r} -> {_given(new)!r}")
        return out


def _label(name: str) -> str:
    return f"--{name.replace('_', '-')}" if name.isidentifier() else name


def _file_key(entry: Mapping[str, Any] | None) -> tuple | None:
    return None if entry is None else (entry.get("builtin"), entry.get("sha256"))


def _given(entry: Mapping[str, Any] | None) -> str | None:
    return None if entry is None else entry.get("given")


def file_entry(given: str | None, builtin: str | None, path: Path | None) -> dict:
    """The record of one file input: what was given, the file read and its content hash."""
    return {"given": given, "builtin": builtin, "path": None if path is None else str(Path(path).resolve()),
            "sha256": None if path is None else content_sha256(path)}


def run_identity(args: argparse.Namespace, extra_files: Mapping[str, Path] | None = None) -> RunIdentity:
    """The identity of the run ``args`` describes (``args.command`` names its declaration): the
    values of its identity options and the content hashes of its file inputs, plus ``extra_files``
    (files read that no option names, e.g. the coarse weights beside a ``--lowres`` prior; named by
    a label with spaces). Hashes every file read (1 MiB blocks); PadisError for a missing one."""
    decl = declaration(args.command)
    options = {d: _json(getattr(args, d, None)) for d in decl.identity if d not in decl.inputs}
    resolved = input_files(args)
    files: dict[str, dict | None] = {}
    for dest in decl.identity:
        if dest in decl.inputs:
            builtin, path = resolved.get(dest, (None, None))
            value = getattr(args, dest, None)
            files[dest] = None if dest not in resolved else file_entry(None if value is None else str(value),
                                                                       builtin, path)
    for name, path in (extra_files or {}).items():
        files[name] = file_entry(str(path), None, path)
    return RunIdentity(args.command, options, files)
