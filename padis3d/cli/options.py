"""Option checks shared by the commands that sample (``reconstruct``, ``sample``, volume tasks)."""

from __future__ import annotations

import argparse
import math

import torch

from padis3d.errors import PadisError

MIN_SIDE = 7
"""Smallest image side (and volume axis) a run accepts: the 7-pixel SSIM window of the report's metrics."""


def parse_tile(text: str) -> int | str | None:
    """``--tile``: ``'auto'``, ``'whole'`` (-> ``None``) or a positive int; PadisError otherwise."""
    if text in ("auto", "whole"):
        return None if text == "whole" else text
    try:
        tile = int(text)
    except ValueError:
        raise PadisError(f"--tile must be an integer, 'auto' or 'whole', got {text!r}") from None
    if tile < 1:
        raise PadisError(f"--tile must be >= 1, got {tile}")
    return tile


def memory_budget_bytes(args: argparse.Namespace) -> int | None:
    """``--memory-budget-mb`` in bytes (``None`` if not given); PadisError unless finite and > 0."""
    mb = args.memory_budget_mb
    if mb is None:
        return None
    if not 0 < mb < math.inf:
        raise PadisError(f"--memory-budget-mb must be a positive number of MiB, got {mb}")
    return int(mb * 2**20)


def check_run_options(args: argparse.Namespace) -> None:
    """Checks of the options every sampling command shares, before any file is read or written:
    positive step counts, threads and batch; a parsable tile and budget; a usable device."""
    from padis3d.device import resolve_device

    for name in ("steps", "inner"):
        if getattr(args, name, 1) < 1:
            raise PadisError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise PadisError(f"--threads must be >= 1, got {args.threads}")
    if args.max_batch is not None and args.max_batch < 1:
        raise PadisError(f"--max-batch must be >= 1, got {args.max_batch}")
    parse_tile(args.tile)
    memory_budget_bytes(args)
    resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
