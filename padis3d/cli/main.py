"""The ``padis3d`` command. Each subcommand is a small function; errors that come from
bad input (PadisError, TilingError, missing files, a full disk) print one line and exit 2,
and an output folder that the failed run created is removed again if nothing was written
into it (a resumable volume run's committed work state is kept)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from padis3d.errors import PadisError

Command = Callable[[argparse.Namespace], int]


def _cmd_info(args: argparse.Namespace) -> int:
    from padis3d.cli.info import environment_report

    report = environment_report()
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_tiling_demo(args: argparse.Namespace) -> int:
    from padis3d.cli.tiling_demo import run_tiling_demo

    run_tiling_demo(out_dir=args.out, seed=args.seed)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from padis3d.cli.demo import DemoConfig, format_table, run_demo

    cfg = DemoConfig.for_sampler(args.sampler, slices=tuple(args.slices), task=args.task, seed=args.seed,
                                 **({"checkpoint": args.checkpoint} if args.checkpoint else {}))
    cfg = cfg.smoke() if args.smoke else cfg
    evals = cfg.evaluations
    print(f"padis3d demo: {cfg.task[2:]}-view CT of chest CT test slice(s) {', '.join(map(str, cfg.slices))} "
          f"at {cfg.size}²; patch prior with the {cfg.sampler.upper()} sampler, {evals} network evaluations per slice{' (SMOKE: not a result)' if args.smoke else ''}.\n"
          "A short version of recipes/paper2d.py (all 23 test slices, more tasks and ablations).", flush=True)
    report = run_demo(args.out, cfg, progress=not args.no_progress)
    print(format_table(report))
    print(f"wrote {args.out}/demo.png and demo.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="padis3d", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions, CUDA availability and the default data's location")
    p.set_defaults(run=_cmd_info)

    from padis3d.cli.train import add_train_arguments, run_train

    p = sub.add_parser("train", help="train a patch (or whole-image) diffusion prior; resumable")
    add_train_arguments(p)
    p.set_defaults(run=run_train)

    from padis3d.cli.reconstruct import (add_reconstruct_arguments, add_sample_arguments, run_reconstruct,
                                         run_sample)

    p = sub.add_parser("reconstruct", help="solve an inverse problem with a prior: 2D (ct, ct-fan, deblur, sr) "
                                           "or volumes (ct3d-parallel, denoise)")
    add_reconstruct_arguments(p)
    p.set_defaults(run=run_reconstruct)

    p = sub.add_parser("sample", help="generate images from a prior (unconditional)")
    add_sample_arguments(p)
    p.set_defaults(run=run_sample)

    p = sub.add_parser("demo", help="the main job: FBP vs ADMM-TV vs PaDIS on held-out chest CT slices, 20 views")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--slices", type=int, nargs="+", default=[115, 125], help="test slices 110..132 (default: %(default)s)")
    p.add_argument("--task", choices=("ct20", "ct8"), default="ct20")
    p.add_argument("--checkpoint", default=None, help="patch prior (default: the shipped checkpoints/chest128_patch.pt)")
    p.add_argument("--sampler", choices=("dds", "padis"), default="dds",
                   help="dds: CG data step, 100 evaluations (default); padis: the paper's Algorithm 1, 200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="seconds, not minutes: 1 slice, 2 sampler steps (for tests)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_cmd_demo)

    p = sub.add_parser("tiling-demo", help="tile the default chest CT with random shifts; writes a figure")
    p.add_argument("--out", default="outputs/tiling-demo", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_tiling_demo)
    return parser


def prune_empty_dirs(path: Path) -> None:
    """Remove ``path`` and the folders below it that hold no file, deepest first; files and
    the folders that contain them are never touched."""
    if not path.is_dir():
        return
    subdirs = sorted((p for p in path.rglob("*") if p.is_dir() and not p.is_symlink()),
                     key=lambda p: len(p.parts), reverse=True)
    for folder in [*subdirs, path]:
        with contextlib.suppress(OSError):
            folder.rmdir()  # fails (and is skipped) unless empty


def main(argv: Sequence[str] | None = None) -> int:
    from padis3d.atomic import is_disk_full
    from tiling.errors import TilingError

    args = build_parser().parse_args(argv)
    out = getattr(args, "out", None)
    fresh_out = isinstance(out, (str, Path)) and not Path(out).exists()
    try:
        return args.run(args)
    except (PadisError, TilingError, FileNotFoundError) as exc:
        print(f"padis3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(f"padis3d {args.command}: error: no space left on the device ({exc}); free disk space and rerun",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"padis3d {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if fresh_out:
            prune_empty_dirs(Path(out))


if __name__ == "__main__":
    sys.exit(main())
