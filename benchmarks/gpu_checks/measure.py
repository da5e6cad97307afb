"""Timing, CUDA and host memory peaks, and metric summaries of the checks."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any


def cuda_ready(dry_run: bool) -> bool:
    """Whether this check uses CUDA: never in a dry run, else when torch sees a GPU."""
    import torch

    return not dry_run and torch.cuda.is_available()


def sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() \
        else None


def reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def host_peak_mb() -> float:
    from padis3d.memory import vm_hwm_mb

    return vm_hwm_mb()


def metric_summary(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    keep = ("psnr_volume", "ssim_volume", "psnr_3views", "ssim_3views")
    return {name: {k: m[k] for k in keep if k in m} for name, m in metrics.items()}


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
