"""Option checks of every command: argparse ``type=`` validators that refuse a value of the
wrong kind, out of range or not finite at parse time (one line, exit 2), the one-line parser,
and the checks shared by the commands that sample (``reconstruct``, ``sample``, volume tasks)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import torch

from padis3d.errors import PadisError

MAX_COUNT = 10**6
"""Upper bound of every count option (steps, views, iterations, sizes): larger values are typos
that would otherwise run for days or allocate without bound."""
MAX_SEED = 2**63 - 1
MAX_BUDGET_MB = 2.0**30
"""1 PiB: the largest memory budget (more is a typo, and its byte count would overflow int64)."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE``, and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None


def int_range(lo: int, hi: int = MAX_COUNT) -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {text}")
        return value
    parse.__name__ = f"integer in {lo}..{hi}"
    parse.numeric = True  # type: ignore[attr-defined]
    return parse


def float_range(lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in the interval ``lo..hi`` (open ends where asked)."""
    def parse(text: str) -> float:
        value = _number(text, float)
        ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and \
            (value < hi if hi_open else value <= hi)
        if not ok:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be a finite number in {left}{lo:g}, {hi:g}{right}, got {text}")
        return value
    parse.__name__ = "number"
    parse.numeric = True  # type: ignore[attr-defined]
    return parse


def positive_float(hi: float = 1e12) -> Callable[[str], float]:
    """argparse type: a finite number in ``(0, hi]``."""
    return float_range(0.0, hi, lo_open=True)


def nonneg_float(hi: float = 1e12) -> Callable[[str], float]:
    """argparse type: a finite number in ``[0, hi]``."""
    return float_range(0.0, hi)


COUNT = int_range(1)
"""argparse type: a count >= 1 (steps, views, iterations, sizes, threads)."""
NONNEG_COUNT = int_range(0)
SEED = int_range(0, MAX_SEED)
PROBABILITY = float_range(0.0, 1.0)


def max_batch_option(text: str) -> int | str:
    """argparse type of ``--max-batch``: a count >= 1, or ``auto`` (measured once the prior is
    loaded: :func:`padis3d.priors.batch_size.measure_tile_batch`)."""
    if text == "auto":
        return text
    try:
        return COUNT(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..{MAX_COUNT} or 'auto', got {text!r}") from None


max_batch_option.numeric = True  # type: ignore[attr-defined]


def scheduler_address(text: str) -> str:
    """argparse type: a dask scheduler address ``[tcp://]host:port``."""
    if not re.fullmatch(r"(tcp|tls|inproc|ucx)://\S+|[\w.\-\[\]:]+:\d{1,5}", text):
        raise argparse.ArgumentTypeError(f"expected a scheduler address like tcp://host:8786, got {text!r}")
    return text


def feature_width(text: str) -> int:
    """argparse type of a UNet level width: a positive multiple of 8 (the group norm's groups)."""
    value = int_range(8, 4096)(text)
    if value % 8:
        raise argparse.ArgumentTypeError(f"must be a multiple of 8 (group normalisation), got {value}")
    return value


feature_width.numeric = True  # type: ignore[attr-defined]


def device_option(text: str) -> str:
    """argparse type of ``--device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (availability is
    checked before the run by :func:`padis3d.device.resolve_device`)."""
    if not re.fullmatch(r"cpu|auto|cuda(:\d{1,3})?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")
    return text


def precision_option(text: str) -> str:
    """argparse type of ``--precision``: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (whether the device
    runs it, fp16 on CUDA only, is checked before the run by :func:`padis3d.precision.resolve_precision`)."""
    from padis3d.precision import CHOICES

    if text not in CHOICES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(CHOICES)}, got {text!r}")
    return text


PRECISION_HELP = ("what the network computes in: auto (bf16 where the CPU or GPU has it natively, else fp32; "
                  "'padis3d info' says which), fp32, bf16, fp16 (CUDA only); the data step and the sampler "
                  "state stay fp32 (default: %(default)s)")


def path_option(text: str) -> Path:
    """argparse type: a non-empty path."""
    return Path(nonempty_text(text))


def orientation_option(text: str) -> str:
    """argparse type of ``--orientation``: 2 or 3 patient-direction letters (:func:`padis3d.io.orientation.parse_codes`)."""
    from padis3d.io.orientation import parse_codes

    try:
        return "".join(parse_codes(text))
    except PadisError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def nonempty_text(text: str) -> str:
    """argparse type: a non-empty string (a path or a name)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def coarse_weight_option(text: str) -> str | float:
    """argparse type of ``--lowres-weight``: ``'measured'`` or a number in [0, 1]."""
    if text == "measured":
        return text
    try:
        w = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'measured' or a number in [0, 1], got {text!r}") from None
    if not 0 <= w <= 1:
        raise argparse.ArgumentTypeError(f"expected 'measured' or a number in [0, 1], got {text!r}")
    return w


class WindowAction(argparse.Action):
    """``--window LO HI``: two finite numbers (each checked by the option's ``type``) with LO < HI,
    refused at parse time otherwise (one line, exit 2)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        lo, hi = values  # type: ignore[misc]
        if not lo < hi:
            raise argparse.ArgumentError(self, f"needs LO < HI (the value mapped to 0, then the one mapped to 1), "
                                               f"got {lo:g} {hi:g}; e.g. --window -1000 1000")
        setattr(namespace, self.dest, [lo, hi])


from padis3d.limits import MIN_SIDE, check_tile_fits  # noqa: E402,F401 - size limits shared with the library


def parse_tile(text: str) -> int | str | None:
    """``--tile``: ``'auto'``, ``'whole'`` (-> ``None``) or a positive int; PadisError otherwise."""
    if text in ("auto", "whole"):
        return None if text == "whole" else text
    try:
        tile = int(text)
    except ValueError:
        raise PadisError(f"--tile must be an integer, 'auto' or 'whole', got {text!r}") from None
    if not 1 <= tile <= MAX_COUNT:
        raise PadisError(f"--tile must be in 1..{MAX_COUNT}, got {tile}")
    return tile


def tile_option(text: str) -> str:
    """argparse type of ``--tile``: checked by :func:`parse_tile`, kept as text."""
    try:
        parse_tile(text)
    except PadisError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--tile ")) from None
    return text


def memory_budget_bytes(args: argparse.Namespace) -> int | None:
    """``--memory-budget-mb`` in bytes (``None`` if not given); PadisError unless finite and > 0."""
    mb = args.memory_budget_mb
    if mb is None:
        return None
    if not 0 < mb <= MAX_BUDGET_MB:
        raise PadisError(f"--memory-budget-mb must be a positive number of MiB up to {MAX_BUDGET_MB}, got {mb}")
    return int(mb * 2**20)


def check_run_options(args: argparse.Namespace) -> None:
    """Checks of the options every sampling command shares, before any file is read or written:
    positive step counts, threads and batch; a parsable tile and budget; a usable device."""
    from padis3d.device import resolve_device

    if getattr(args, "sigma_min", None) is not None and not args.sigma_min < args.sigma_max:
        raise PadisError(f"need --sigma-min < --sigma-max, got {args.sigma_min} and {args.sigma_max}")
    parse_tile(args.tile)
    memory_budget_bytes(args)
    device = resolve_device(args.device)
    if getattr(args, "precision", None) is not None:
        from padis3d.precision import resolve_precision

        resolve_precision(args.precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
