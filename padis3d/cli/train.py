"""``padis3d train``: train a patch (or whole-image, slab, no-positions) prior.

Run folder ``--out`` holds ``state.pt`` (full resume state), ``prior.pt`` (EMA weights + config),
loss-curve PNGs and model cards; ``--export`` writes extra copies of the prior (e.g. into
``checkpoints/``). ``--resume`` continues from ``--out``/state.pt, or from a given state or prior file.
Multi-process: ``torchrun --nproc-per-node 2 -m padis3d.cli.train ...`` (gloo on CPU).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from padis3d.cli.outputs import OutputPlan
from padis3d.cli.options import (COUNT, PROBABILITY, SEED, OneLineParser, WindowAction, device_option, feature_width, float_range,
                                 int_range,
                                 nonempty_text, nonneg_float, orientation_option, path_option, positive_float,
                                 precision_option)

if TYPE_CHECKING:
    from padis3d.cli.identity import RunIdentity
    from padis3d.priors.network import PriorConfig

PRESETS = {
    # CPU default: 128^2 chest CT, tiles of 16/32/48, ~2.5M parameters.
    "cpu": dict(size=128, patch_sizes=[16, 32, 48], patch_probs=[0.2, 0.3, 0.5], batch=8, lr=2e-4,
                ema_halflife=20_000.0, network="CPU_CONFIG"),
    # The paper's GPU configuration (256^2, P = 56, 128 base channels); not run on CPU.
    "paper-gpu": dict(size=256, patch_sizes=[16, 32, 56], patch_probs=[0.2, 0.3, 0.5], batch=16, lr=1e-4,
                      ema_halflife=500_000.0, network="PAPER_GPU_CONFIG"),
}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``padis3d train`` options to ``parser`` (and the command's name, which selects its
    option declaration in :mod:`padis3d.cli.identity`)."""
    parser.set_defaults(command="train")
    a = parser.add_argument
    a("--out", required=True, type=path_option, help="run folder (state.pt, prior.pt, loss PNG, model card)")
    a("--export", action="append", default=[], type=path_option, help="also write the prior here (repeatable)")
    a("--resume", nargs="?", const="auto", default=None, type=nonempty_text,
      help="continue: no value = OUT/state.pt; or a state/prior file (a prior file resumes weights only)")
    a("--preset", choices=sorted(PRESETS), default="cpu", help="defaults for geometry, network and optimiser")
    a("--data", type=nonempty_text, default="chest-ct",
      help="'chest-ct' (default dataset), 'ellipses' (random-ellipse phantoms, padis3d.training.phantoms) "
           "or a file/folder readable by padis3d.io")
    a("--ellipse-images", type=int_range(1, 100_000), default=None,
      help="--data ellipses: number of training images (default 1000; drawn with --seed)")
    a("--axis", type=int_range(0, 2), default=None, help="plane of volumes given with --data: 0 axial (default), "
      "1 coronal, 2 sagittal, each slice in the canonical orientation (NIfTI/DICOM from their geometry); recorded "
      "in the checkpoint, which then serves that plane only")
    a("--orientation", type=orientation_option, default=None, metavar="CODES",
      help="how npy/zarr/PNG data given with --data are stored (3 letters for a volume's (z, y, x), 2 for images' "
      "(rows, columns), e.g. SAL); default: as stored, taken as canonical SPL (anterior at the top, the patient's "
      "left on the right); NIfTI and DICOM give their own")
    a("--series", type=nonempty_text, default=None, metavar="UID",
      help="the DICOM series to train on, from a folder that holds several (SeriesInstanceUID or a unique prefix)")
    a("--window", type=float_range(-1e9, 1e9), nargs=2, action=WindowAction, default=None, metavar=("LO", "HI"),
      help="HU window for CT data given with --data (default: -1000 1000 for NIfTI and DICOM CT, as "
      "padis3d reconstruct reads them; min-max per volume or image for other formats)")
    a("--size", type=int_range(1, 16384), default=None, help="image side after resizing (preset default)")
    a("--subset", type=COUNT, default=None, help="train on this many chest CT training slices (12, 25, 50, 100)")
    a("--mode", choices=["patch", "whole", "slab", "cube"], default="patch",
      help="patch prior, whole-image prior (the image is the only patch, no positions), slab prior, or a "
           "3D prior on P^3 cubes of the training block (in-plane positions; add --slab-z-position for z)")
    a("--slab", type=int_range(1, 64), default=3, help="slices per slab for --mode slab")
    a("--downsample", type=int_range(1, 64), default=None, metavar="F",
      help="train on the data block-averaged by F along every spatial axis (cube: z, y, x, so the 100x128x128 "
           "training block becomes 25x32x32 at F = 4; patch/whole: y, x of each image), the coarse prior of a "
           "two-scale prior (padis3d.priors.two_scale); recorded in the checkpoint meta as 'downsample'; "
           "not with --mode slab")
    a("--slab-jumps", action="store_true",
      help="slab mode: also train on slice-jump slabs (slices i, i+k, ..., i+(k-1)k), which "
           "volume_prior_from(..., slice_jump=True) denoises half of the time")
    a("--slab-z-position", action="store_true",
      help="slab/cube mode: also feed the slab's centre z (cube: the voxel z) (position channel 0); off by default because training and "
           "test volumes are different z ranges, so z does not identify anatomy")
    a("--no-positions", action="store_true", help="ablation: the network gets no position channels")
    a("--augment", nargs="+", type=augment_item, action=AugmentAction, default=None, metavar="KIND[=VALUE]",
      help="training-time augmentation of each drawn image before its patches are cut (patch, whole and slab "
           "modes; padis3d.training.augment): flips (rows, columns, p = 1/2 each), rot90 (k x 90 degrees), "
           "scale[=S] (resampled by a factor log-uniform in [1/S, S], default S = 1.414: a 2x range of pixel "
           "spacings, same size), intensity[=A] (window jitter clip(0.5 + a (x - 0.5) + b, 0, 1), a log-uniform "
           "in [1/A, A], default A = 1.25, b uniform in [-0.1, 0.1]); S and A in [1, 4]; default: none")
    a("--patch-sizes", type=int_range(1, 16384), nargs="+", default=None)
    a("--patch-probs", type=PROBABILITY, nargs="+", default=None)
    a("--batch", type=int_range(1, 1_000_000), default=None, help="batch at the largest patch size; smaller patches scale by area")
    a("--batch-sizes", type=int_range(1, 1_000_000), nargs="+", default=None, help="explicit batch per patch size")
    a("--features", type=feature_width, nargs="+", default=None, help="UNet channels per level")
    a("--res-blocks", type=int_range(1, 64), default=None)
    a("--steps", type=int_range(1, 10**9), default=1000, help="total steps (counting resumed ones)")
    a("--hours", type=positive_float(1e5), default=None, help="stop this run after this wall time (a checkpoint is written)")
    a("--budget-hours", type=positive_float(1e5), default=None,
      help="stop when the run folder's total training time reaches this, resumed runs included: CPU hours "
           "on CPU (independent of other jobs on the machine), wall hours on CUDA")
    a("--lr", type=float_range(0.0, 1.0, lo_open=True), default=None)
    a("--ema-halflife", type=positive_float(), default=None, help="EMA half-life in patches")
    a("--grad-clip", type=positive_float(), default=5.0, help="gradient-norm clip (guards spikes)")
    a("--seed", type=SEED, default=0)
    a("--checkpoint-minutes", type=nonneg_float(1e6), default=10.0)
    a("--threads", type=int_range(1, 1024), default=1, help="torch CPU threads per process")
    a("--device", type=device_option, default="cpu")
    a("--precision", type=precision_option, default="auto",
      help="network forward/backward: auto (bf16 where native, else fp32), fp32, bf16, fp16 (CUDA, with loss "
           "scaling); weights, EMA and optimizer stay fp32; may change on --resume (default: %(default)s)")
    a("--no-progress", action="store_true")


def augment_item(text: str) -> str:
    """argparse type of one ``--augment`` item: ``KIND`` or ``KIND=VALUE``, written canonically."""
    from padis3d.errors import PadisError
    from padis3d.training.augment import parse_item

    try:
        return parse_item(text)
    except PadisError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class AugmentAction(argparse.Action):
    """``--augment KIND ...``: each kind at most once, stored in the order applied (so the run identity
    does not depend on the order given)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from padis3d.errors import PadisError
        from padis3d.training.augment import canonical_items

        try:
            setattr(namespace, self.dest, canonical_items(list(values)))  # type: ignore[arg-type]
        except PadisError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def _images(args: argparse.Namespace, size: int):
    """``(samples (n, C, *S), extra coordinates or None, data description)``, block-averaged by
    ``--downsample``."""
    from padis3d.training import data as d

    images, extra, info = _full_images(args, size)
    if args.downsample and args.downsample > 1:
        images, info = d.block_downsample(images, args.downsample, info)
    return images, extra, info


def _full_images(args: argparse.Namespace, size: int):
    import torch

    from padis3d.training import data as d

    if args.mode == "slab":
        if args.data != "chest-ct":
            from padis3d.errors import PadisError
            raise PadisError("--mode slab currently trains on the default chest CT only (--data chest-ct)")
        slabs, z, info = d.chest_ct_training_slabs(size, args.slab, args.slab_jumps)
        return slabs, z, info
    if args.mode == "cube":
        if args.data != "chest-ct":
            from padis3d.errors import PadisError
            raise PadisError("--mode cube currently trains on the default chest CT only (--data chest-ct)")
        volume, info = d.chest_ct_training_volume(size)
        return volume, None, info
    if args.data == "chest-ct":
        images, info = d.chest_ct_training_images(size, args.subset)
        return images, None, info
    if args.data == "ellipses":
        from padis3d.training.phantoms import ellipse_training_images
        images, info = ellipse_training_images(args.ellipse_images or 1000, size, seed=args.seed)
        return images, None, info
    from padis3d.io import load_training_images
    images, info = load_training_images(args.data, size=size, axis=args.axis, window=args.window,
                                        orientation=args.orientation, series=args.series)
    return torch.as_tensor(images), None, info


def network_config(name: str, args: argparse.Namespace, **kw) -> PriorConfig:
    """The preset's network (``padis3d.priors.network.CPU_CONFIG`` or ``PAPER_GPU_CONFIG``) with the data's
    dimensions and channels and the ``--features``/``--res-blocks`` overrides."""
    import dataclasses

    from padis3d.priors import network as nn

    base = getattr(nn, name)
    if args.features:
        f = tuple(args.features)
        kw.update(features=f, attention_levels=(False,) * len(f),
                  norm_num_groups=32 if min(f) % 32 == 0 and min(f) >= 64 else 16 if min(f) % 16 == 0 else 8)
        if f[-1] % base.num_head_channels:  # the middle block's attention splits the last level into heads
            kw["num_head_channels"] = math.gcd(base.num_head_channels, f[-1])
    if args.res_blocks:
        kw["num_res_blocks"] = args.res_blocks
    return dataclasses.replace(base, **kw)


def train_outputs(args: argparse.Namespace) -> OutputPlan:
    """What ``padis3d train`` writes (run folder, ``--export`` copies with their loss plots and
    model cards) and reads (every file input of its declaration, :mod:`padis3d.cli.identity`:
    ``--data``, ``--resume``). The run's own state ``OUT/state.pt`` that ``--resume`` continues is
    meant to be replaced by the run, by nothing else (``--export``)."""
    from padis3d.cli.identity import plan_inputs

    extra = [q for e in args.export for q in (e, e.with_suffix(".loss.png"), e.with_suffix(".md"))]
    state = (Path(args.out) / "state.pt").resolve()
    inputs = plan_inputs(args)
    own = [p for p in inputs if p.resolve() == state]
    return OutputPlan(args.out, ["state.pt", "prior.pt", "prior.loss.png", "prior.md"], extra,
                      inputs=[p for p in inputs if p not in own], own=own)


def run_options(args: argparse.Namespace) -> dict:
    """The options that define a training run (the ``identity`` of ``train``'s declaration in
    :mod:`padis3d.cli.identity`; ``--data`` as given): a resumed run must give the same. Those
    declared neutral there (``--steps``, ``--hours``, ``--budget-hours``, ``--checkpoint-minutes``,
    ``--threads``, ``--device``, ``--precision``, ``--export``) may change."""
    from padis3d.cli.identity import declaration

    return {name: getattr(args, name) for name in declaration("train").identity}


def check_resumed_options(path: Path, args: argparse.Namespace, identity: RunIdentity) -> None:
    """PadisError when ``path`` (a state or prior written by ``padis3d train``) recorded another run
    identity (other options, or ``--data`` of other content); states recorded before identities
    compare their run options as given."""
    from padis3d.cli.identity import RunIdentity
    from padis3d.errors import PadisError
    from padis3d.priors.checkpoint import read_checkpoint

    meta = read_checkpoint(path)["meta"]
    if meta.get("run_identity") is not None:
        differ = identity.differences(RunIdentity.from_json(meta["run_identity"]))
    else:
        stored = meta.get("run_options")
        if stored is None:  # written before run options were recorded: nothing to compare
            return
        differ = [f"--{k.replace('_', '-')} {stored.get(k)!r} -> {v!r}" for k, v in run_options(args).items()
                  if json_value(stored.get(k)) != json_value(v)]
    if differ:
        raise PadisError(f"--resume {path}: the run was started with other options ({'; '.join(differ)}); "
                         f"resume with the same options, or start a new run folder")


def json_value(value: object) -> object:
    """Options as stored in a checkpoint (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def check_train_options(args: argparse.Namespace, sizes: list, probs: list | None) -> None:
    """Cross-option checks, before any data is read: one probability per patch size summing to 1,
    one batch per patch size."""
    from padis3d.errors import PadisError

    if args.patch_probs is not None and len(args.patch_probs) != len(sizes):
        raise PadisError(f"--patch-probs gives {len(args.patch_probs)} values for {len(sizes)} patch sizes {sizes}")
    if probs is not None and abs(sum(probs) - 1.0) > 1e-6:
        raise PadisError(f"--patch-probs {probs} must sum to 1, got {sum(probs):g}")
    if args.ellipse_images is not None and args.data != "ellipses":
        raise PadisError("--ellipse-images is for --data ellipses")
    if args.subset is not None and args.data == "ellipses":
        raise PadisError("--subset picks chest CT slices; with --data ellipses use --ellipse-images")
    if args.downsample is not None and args.downsample > 1 and args.mode == "slab":
        raise PadisError("--downsample is for --mode cube, patch or whole (a slab's slices are its channels)")
    if args.augment and args.mode == "cube":
        raise PadisError("--augment is for --mode patch, whole or slab (a cube's volume would be transformed "
                         "whole for every patch drawn)")
    if args.batch_sizes is not None and len(args.batch_sizes) != len(sizes):
        raise PadisError(f"--batch-sizes gives {len(args.batch_sizes)} values for {len(sizes)} patch sizes {sizes}")


def run_train(args: argparse.Namespace) -> int:
    """Build data, model and state from ``args`` and train; returns an exit code."""
    import torch

    from padis3d.training.loop import init_distributed

    torch.set_num_threads(args.threads)
    distributed = init_distributed()
    try:
        return _train(args)
    finally:
        if distributed:
            torch.distributed.destroy_process_group()


def _data_and_network(args: argparse.Namespace, preset: dict, size: int, sizes: list, probs: list | None):
    """``(images, PatchSampler, PriorConfig, data info)`` of a training run: the data, how patches are
    drawn from it, and the network that fits them (position channels, levels)."""
    from padis3d.errors import PadisError
    from padis3d.training.augment import Augment
    from padis3d.training.data import PatchSampler

    images, extra, info = _images(args, size)
    sampler = PatchSampler(images, sizes, probs, batch=args.batch or (1 if args.mode == "whole" else preset["batch"]),
                           batch_sizes=args.batch_sizes, extra_coords=extra,
                           augment=Augment.from_items(args.augment))
    nd = images.ndim - 2
    # Position channels the sampler provides: [slab centre z,] then one per spatial axis.
    axes = () if (args.no_positions or args.mode == "whole") else tuple(range(nd + sampler.extra.shape[1]))
    if args.mode in ("slab", "cube") and not args.slab_z_position:
        axes = axes[1:]
    config = network_config(preset["network"], args, spatial_dims=nd, channels=images.shape[1], position_axes=axes)
    bad = [p for p in sizes if (p or min(sampler.shape)) % config.multiple]
    if bad:
        raise PadisError(f"patch sizes {bad} must be divisible by {config.multiple} for a UNet with "
                         f"{len(config.features)} levels")
    return images, sampler, config, info


def _train(args: argparse.Namespace) -> int:
    import torch

    from padis3d.device import resolve_device
    from padis3d.errors import PadisError
    from padis3d.priors.network import count_parameters
    from padis3d.training.loop import TrainSettings, dist_info, new_state, resume_state, train

    preset = PRESETS[args.preset]
    size = args.size or preset["size"]
    rank, _ = dist_info()
    if args.mode == "whole":
        sizes, probs = [None], [1.0]
    else:
        sizes = args.patch_sizes or preset["patch_sizes"]
        probs = args.patch_probs or (preset["patch_probs"] if args.patch_sizes is None else None)
    check_train_options(args, sizes, probs)
    from padis3d.precision import resolve_precision

    precision = resolve_precision(args.precision, resolve_device(args.device))
    from padis3d.cli.identity import run_identity

    identity = run_identity(args)  # options and the content of --data
    resume = None
    if args.resume is not None:
        resume = args.out / "state.pt" if args.resume == "auto" else Path(args.resume)
        check_resumed_options(resume, args, identity)
    elif (args.out / "state.pt").exists():
        raise PadisError(f"{args.out / 'state.pt'} exists: add --resume to continue it, or choose another --out")
    images, sampler, config, info = _data_and_network(args, preset, size, sizes, probs)
    nd = images.ndim - 2
    settings = TrainSettings(steps=args.steps, time_limit=None if args.hours is None else args.hours * 3600,
                             budget=None if args.budget_hours is None else args.budget_hours * 3600,
                             budget_clock="wall" if str(args.device).startswith("cuda") else "cpu",
                             lr=args.lr or preset["lr"], ema_halflife_patches=args.ema_halflife or preset["ema_halflife"],
                             grad_clip=args.grad_clip, seed=args.seed, checkpoint_every=args.checkpoint_minutes * 60,
                             progress=not args.no_progress, precision=precision)
    command = "padis3d " + shlex.join(getattr(args, "argv", ["train", *sys.argv[1:]]))
    commands = []
    if resume is not None:
        explicit = args.features is not None or args.res_blocks is not None
        state, meta = resume_state(resume, settings, config if explicit else None)
        commands = list(meta.get("commands", []))
    else:
        state = new_state(config, settings)
    world = dist_info()[1]
    sampler.batch_sizes = [-(-b // world) * world for b in sampler.batch_sizes]  # train() needs multiples of world
    device = resolve_device(args.device)
    if device.type == "cuda" and world > 1 and device.index is None:  # one GPU per torchrun process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    state.model.to(device)
    state.ema.to(device)
    if rank == 0:
        print(f"padis3d train: {count_parameters(state.model)} parameters, data {info['source']} "
              f"({images.shape[0]} samples of {tuple(images.shape[1:])}), patch sizes {sampler.sizes} "
              f"batches {sampler.batch_sizes}, from step {state.step} to {settings.steps}, precision {precision}",
              flush=True)
    train(state, sampler, settings, args.out, info, exports=args.export,
          extra_meta={"commands": commands + [command], "parameters": count_parameters(state.model),
                      "mode": args.mode, "preset": args.preset, "run_options": run_options(args),
                      "run_identity": identity.to_json(),
                      "downsample": [int(args.downsample or 1)] * nd})
    return _finished(state, args.out, rank)


def _finished(state, out: Path, rank: int) -> int:
    """Say how the run ended (rank 0) and give the exit code: 130 when Ctrl-C stopped it."""
    if rank == 0 and state.stopped_by:
        print(f"stopped by {state.stopped_by} at step {state.step}: checkpoint written to {out / 'state.pt'}; "
              f"rerun the same command with --resume to continue", flush=True)
    elif rank == 0:
        print(f"done: step {state.step}, prior at {out / 'prior.pt'}", flush=True)
    return 130 if state.stopped_by == "SIGINT" else 0


def main(argv: list[str] | None = None) -> int:
    """``padis3d train ARGV`` (what ``python -m padis3d.cli.train`` and ``torchrun`` run)."""
    from padis3d.cli.runner import run_parsed

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = OneLineParser(prog="padis3d train", description=__doc__.splitlines()[0])
    add_train_arguments(parser)
    parser.set_defaults(command="train", run=run_train, outputs=train_outputs)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's one-line error (2) or --help (0)
        return int(exc.code or 0)
    return run_parsed(args, ["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
