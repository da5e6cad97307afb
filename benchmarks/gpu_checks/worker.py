"""One check in its own process: run it, record ok / failed / skipped."""

from __future__ import annotations

import argparse
import contextlib
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from .autocast import check_autocast
from .cone_beam import check_cone_beam
from .cuda_tests import check_cuda_tests
from .environment import check_environment
from .limited_angle import check_limited_angle
from .out_of_core import check_out_of_core
from .record import Record, Skip
from .settings import GPU_CHECKS
from .training import check_training


CHECK_FUNCTIONS: dict[str, Callable[[Record, argparse.Namespace], None]] = {
    "environment": check_environment, "autocast": check_autocast, "training": check_training,
    "out_of_core": check_out_of_core, "cone_beam": check_cone_beam, "limited_angle_256": check_limited_angle,
    "cuda_tests": check_cuda_tests}


def run_worker(args: argparse.Namespace) -> int:
    """Run one check in this process and write its record to ``args.record``."""
    rec = Record(Path(args.record))
    rec.update(check=args.worker, dry_run=args.dry_run)
    rec.save()
    try:
        if args.worker in GPU_CHECKS and not args.dry_run:
            import torch

            if not torch.cuda.is_available():
                raise Skip("no CUDA: these sizes are for a GPU; --dry-run runs the plan on the CPU with tiny sizes")
        CHECK_FUNCTIONS[args.worker](rec, args)
        failed = [k for k, v in rec.get("expectations", {}).items() if not v]
        rec["status"] = "failed" if failed else "ok"
        if failed:
            rec["reason"] = f"expectation(s) not met: {', '.join(failed)}"
    except Skip as exc:
        rec.update(status="skipped", reason=str(exc))
    except (ModuleNotFoundError, OSError) as exc:
        missing = getattr(exc, "name", None)
        what = f"missing Python package {missing!r}" if missing else f"a library failed to load ({exc})"
        rec.update(status="failed", reason=f"{what}: see the needs in benchmarks/gpu_check.py's docstring",
                   traceback=traceback.format_exc()[-3000:])
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the next check still runs
        rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:1000],
                   traceback=traceback.format_exc()[-3000:])
    rec.save()
    return 0


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Ignore warnings while a check runs."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
