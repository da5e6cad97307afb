"""The ``padis3d`` command: the parser of every subcommand; running one is
:func:`padis3d.cli.runner.run_parsed` (outputs claimed first, one-line errors, exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from padis3d.cli.identity import plan_inputs
from padis3d.cli.outputs import OutputPlan
from padis3d.cli.runner import run_parsed
from padis3d.cli.options import (PRECISION_HELP, SEED, OneLineParser, int_range, nonempty_text, path_option,
                                 precision_option)

Command = Callable[[argparse.Namespace], int]

DESCRIPTIONS = {  # plain text, whole sentences: argparse prints them as written (no markup)
    "padis3d": "Patch-based diffusion priors (PaDIS) for imaging inverse problems, from 2D images to 3D "
               "volumes. Run 'padis3d COMMAND --help' for the options of a command.",
    "info": "Print the library versions, the CPU's bf16 features (AVX512-BF16, AMX) and the precision that "
            "--precision auto picks with the benchmark behind it, the torch thread count, whether CUDA and "
            "astra-CUDA are usable, and where the default data lies.",
    "train": "Train a patch, whole-image, slab or cube diffusion prior on NIfTI, zarr, DICOM, PNG or .npy data, "
             "or on random ellipses. A run is resumable with --resume and writes the prior, its model card "
             "and a loss curve; torchrun runs it on several processes.",
    "reconstruct": "Solve an inverse problem with a diffusion prior: a 2D image (--task ct, ct-fan, deblur, sr) "
                   "or a volume, out of core and resumable (--task ct3d-parallel, ct3d-cone, denoise). The "
                   "measurements are simulated from --input unless --measured gives them. Writes the "
                   "reconstruction, report.json and a figure to --out.",
    "sample": "Generate images from a prior without measurements (unconditional sampling) and write them as "
              "PNG files to --out.",
    "demo": "Run the main job: FBP, ADMM-TV, PnP-ADMM and the patch prior with DDS on held-out chest CT test "
            "slices, sparse-view CT with 20 views by default. Prints a PSNR / SSIM table and writes demo.png "
            "and demo.json to --out.",
    "priors": "List the priors that --checkpoint NAME finds, with their kind, training data, orientation, "
              "size and model card: the shipped ones, and those in the folders of $PADIS3D_PRIORS, which "
              "are searched first.",
    "tiling-demo": "Tile the default chest CT with random shifts, write a figure of the tiling and check the "
                   "out-of-core tiling path under a memory budget.",
}


def test_slice(text: str) -> int:
    """argparse type of the demo's ``--slices``: one of the chest CT's held-out test slices."""
    from padis3d.io.sample_data import TEST_SLICES

    value = int_range(0, 10**6)(text)
    if value not in TEST_SLICES:
        raise argparse.ArgumentTypeError(f"slice {value}: not held-out test slices "
                                         f"({TEST_SLICES[0]}..{TEST_SLICES[-1]})")
    return value


test_slice.numeric = True  # type: ignore[attr-defined]


def _cmd_info(args: argparse.Namespace) -> int:
    from padis3d.cli.info import environment_report

    report = environment_report()
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_priors(args: argparse.Namespace) -> int:
    from padis3d.priors.catalog import list_priors
    from padis3d.priors.registry import USER_PRIORS_ENV, search_folders

    rows = [["name", "kind", "training data", "orientation", "MB", "model card"]] + [e.row() for e in list_priors()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"looked in: {', '.join(map(str, search_folders()))} (${USER_PRIORS_ENV} adds folders, searched first)")
    return 0


def _cmd_tiling_demo(args: argparse.Namespace) -> int:
    from padis3d.cli.tiling_demo import run_tiling_demo

    run_tiling_demo(out_dir=args.out, seed=args.seed)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from padis3d.cli.demo import DemoConfig, format_table, run_demo

    import torch

    torch.set_num_threads(args.threads)
    cfg = DemoConfig.for_sampler(args.sampler, slices=tuple(args.slices), task=args.task, seed=args.seed,
                                 precision=args.precision,
                                 **({"checkpoint": args.checkpoint} if args.checkpoint else {}))
    cfg = cfg.smoke() if args.smoke else cfg
    evals = cfg.evaluations
    print(f"padis3d demo: {cfg.task[2:]}-view CT of chest CT test slice(s) {', '.join(map(str, cfg.slices))} "
          f"at {cfg.size}²; patch prior with the {cfg.sampler.upper()} sampler, {evals} network evaluations per slice{' (SMOKE: not a result)' if args.smoke else ''}.\n"
          "A short version of recipes/paper2d.py (all 23 test slices, more tasks and ablations).", flush=True)
    report = run_demo(args.out, cfg, progress=not args.no_progress)
    print(format_table(report))
    print(f"network precision: {report['precision']} (--precision {cfg.precision})")
    print(f"wrote {args.out}/demo.png and demo.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="padis3d", description=DESCRIPTIONS["padis3d"])
    from padis3d import __version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the package version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="versions, CPU features, threads, CUDA availability and the default data's location",
                       description=DESCRIPTIONS["info"])
    p.set_defaults(run=_cmd_info)

    from padis3d.cli.train import add_train_arguments, run_train, train_outputs

    p = sub.add_parser("train", help="train a patch, whole-image, slab or cube diffusion prior; resumable",
                       description=DESCRIPTIONS["train"])
    add_train_arguments(p)
    p.set_defaults(run=run_train, outputs=train_outputs)

    from padis3d.cli.reconstruct import (add_reconstruct_arguments, add_sample_arguments, reconstruct_outputs,
                                         run_reconstruct, run_sample, sample_outputs)

    p = sub.add_parser("reconstruct", help="solve an inverse problem with a prior: 2D (ct, ct-fan, deblur, sr) "
                                           "or volumes (ct3d-parallel, ct3d-cone, denoise)",
                       description=DESCRIPTIONS["reconstruct"])
    add_reconstruct_arguments(p)
    p.set_defaults(run=run_reconstruct, outputs=reconstruct_outputs)

    p = sub.add_parser("sample", help="generate images from a prior (unconditional)", description=DESCRIPTIONS["sample"])
    add_sample_arguments(p)
    p.set_defaults(run=run_sample, outputs=sample_outputs)

    p = sub.add_parser("demo", help="the main job: FBP vs ADMM-TV vs PaDIS on held-out chest CT slices, 20 views",
                       description=DESCRIPTIONS["demo"])
    p.add_argument("--out", type=path_option, default="outputs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--slices", type=test_slice, nargs="+", default=[115, 125], help="test slices 110..132 (default: %(default)s)")
    p.add_argument("--task", choices=("ct20", "ct8"), default="ct20", help="CT with 20 or 8 views (default: %(default)s)")
    p.add_argument("--checkpoint", type=nonempty_text, default=None, metavar="PRIOR",
                   help="a patch prior: a name ('padis3d priors') or a .pt file (default: chest128_patch)")
    p.add_argument("--sampler", choices=("dds", "padis"), default="dds",
                   help="dds: CG data step, 50 evaluations from the FBP re-noised at σ 0.5 (default); padis: the paper's Algorithm 1, 40 x 5 = 200")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--precision", type=precision_option, default="auto", help=PRECISION_HELP)
    p.add_argument("--threads", type=int_range(1, 1024), default=1,
                   help="torch CPU threads (default: %(default)s; one thread ran the demo in 59 s against 271 s for two on "
                        "a shared 2-core machine: benchmarks/results/threads.txt)")
    p.add_argument("--smoke", action="store_true", help="seconds, not minutes: 1 slice, 2 sampler steps (for tests)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_demo, outputs=lambda a: OutputPlan(a.out, ["demo.png", "demo.json"],
                                                               inputs=plan_inputs(a)))

    p = sub.add_parser("priors", help="the priors found by name: shipped ones and those in $PADIS3D_PRIORS",
                       description=DESCRIPTIONS["priors"])
    p.set_defaults(run=_cmd_priors)

    p = sub.add_parser("tiling-demo", help="tile the default chest CT with random shifts; writes a figure",
                       description=DESCRIPTIONS["tiling-demo"])
    p.add_argument("--out", type=path_option, default="outputs/tiling-demo", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(run=_cmd_tiling_demo, outputs=lambda a: OutputPlan(a.out, ["tiling_demo.png", "tiling_demo.json"]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``padis3d ARGV``: exit 0 on success, 2 on bad input (one line), 130 on Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's one-line error (2) or --help / --version (0)
        return int(exc.code or 0)
    return run_parsed(args, argv)


def entry() -> None:
    """The ``padis3d`` program (console script, ``python -m padis3d[.cli]``): :func:`main`, then leave
    without the interpreter's teardown. A finished run has written, closed and flushed every output;
    the teardown only runs the C++ destructors of torch's libraries, and those of the CUDA build
    that PyPI serves page in about 130 MiB of library data doing it (measured: peak RSS 549 MiB
    with ``import torch`` then ``os._exit``, 679 MiB with a normal exit; the CPU build 224 / 229),
    which would put the process's peak above its documented memory allowance after the work."""
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
