"""Running a parsed command: claim its outputs (:mod:`padis3d.cli.outputs`), run it, and turn
errors that come from bad input (PadisError, TilingError, missing files, OS errors, a full disk,
memory) into one line and exit 2; Ctrl-C exits 130. An output folder that the failed run created
is removed again if nothing was written into it, with the parents the run created for it (a resumable
volume run's committed state is kept)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from padis3d.cli.outputs import OutputPlan, claim_outputs
from padis3d.errors import PadisError


def one_line(message: object) -> str:
    """``message`` on one line (library errors, torch's among them, can span several)."""
    return " ".join(str(message).split())


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's allocation failures (CPU and CUDA) are RuntimeErrors that say so."""
    text = str(exc)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def is_rank_zero() -> bool:
    """Not a non-zero rank of a ``torchrun`` job (those share rank 0's output folder and its lock)."""
    return os.environ.get("RANK", "0") == "0"


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


MEMORY_OPTIONS = {"reconstruct": ("--size", "--max-batch", "--memory-budget-mb"),
                  "sample": ("--size", "--count", "--max-batch", "--memory-budget-mb"),
                  "train": ("--size", "--batch", "--patch-sizes", "--features")}
"""The options of each command that lower its memory, named when it runs out (a test checks that each
command has them)."""


def memory_hint(command: str) -> str:
    """What to lower when ``command`` runs out of memory: its own options, or free memory."""
    options = MEMORY_OPTIONS.get(command)
    if not options:
        return "free memory (close other programs) and rerun"
    return f"lower {', '.join(options[:-1])} or {options[-1]}"


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` (absolute) and those of its parents that do not exist yet, outermost first: what
    creating ``folder`` would create."""
    chain, path = [], Path(folder).absolute()
    while not path.exists() and path != path.parent:
        chain.append(path)
        path = path.parent
    return chain[::-1]


def run_parsed(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``args.run(args)`` inside its claimed outputs (``args.outputs(args)``, if it writes any)."""
    from padis3d.atomic import is_disk_full
    from tiling.errors import TilingError

    args.argv = argv  # recorded in model cards and reports as the command that made them
    fresh: list[Path] = []
    try:
        plan: OutputPlan | None = args.outputs(args) if hasattr(args, "outputs") else None
        made = [*plan.folders, *{Path(p).parent for p in plan.extra}] if plan else []
        chains = [missing_folders(f) for f in made]
        # created by the checks, parents included: removed again if left empty (outermost first)
        fresh = list(dict.fromkeys(chain[0] for chain in chains if chain))
        args.created_folders = frozenset(p for chain in chains for p in chain)  # none of them existed before
        with claim_outputs(plan, lock=is_rank_zero()) if plan else contextlib.nullcontext():
            return args.run(args)
    except (PadisError, TilingError, FileNotFoundError) as exc:
        print(f"padis3d {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        reason = (f"no space left on the device ({exc}); free disk space and rerun" if is_disk_full(exc) else
                  f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}")
        print(f"padis3d {args.command}: error: {one_line(reason)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not is_out_of_memory(exc):
            raise
        print(f"padis3d {args.command}: error: out of memory ({one_line(exc)[:160]}); {memory_hint(args.command)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"padis3d {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        for folder in fresh:
            prune_empty_dirs(folder)
