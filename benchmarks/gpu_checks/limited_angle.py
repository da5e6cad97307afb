"""The limited-angle check: a timed 256^3 ct3d-parallel reconstruction, as many levels as fit."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from .measure import cuda_ready, finite, gpu_peak_mb, host_peak_mb, metric_summary, reset_gpu_peak
from .record import Record
from .volumes import test_volume


def check_limited_angle(rec: Record, args: argparse.Namespace) -> None:
    """A timed limited-angle reconstruction of an n^3 volume: calibration, then the levels that fit."""
    import torch

    import padis3d

    on_cuda = cuda_ready(args.dry_run)
    device = "cuda" if on_cuda else "cpu"
    n = 32 if args.dry_run else args.size
    max_levels = 2 if args.dry_run else args.levels
    calibration_levels = 1 if args.dry_run else 2
    t_start = time.perf_counter()
    vol, window, what = test_volume(n, args.volume)
    rec.update(device=device, shape=[n, n, n], volume=what, task="ct3d-parallel", views=args.views, span_deg=90,
               prior="chest128_slab3", projector="astra CPU, slice by slice (ct3d-parallel)",
               volume_seconds=time.perf_counter() - t_start)
    if on_cuda:
        torch.cuda.init()

    def run(steps: int) -> dict[str, Any]:
        marks: list[float] = []

        def on_event(event: dict[str, Any]) -> None:
            if event.get("stage") == "sample":
                marks.append(time.perf_counter())
        reset_gpu_peak()
        t0 = time.perf_counter()
        result = padis3d.reconstruct_volume(vol, "ct3d-parallel", views=args.views, span_deg=90,
                                            prior="chest128_slab3", size=n, steps=steps, window=window,
                                            device=device, precision="auto", callback=on_event)
        total = time.perf_counter() - t0
        per_level = [b - a for a, b in zip(marks, marks[1:])]
        return {"levels": steps, "total_seconds": total, "timings_s": result.timings_s,
                "seconds_per_level": per_level, "mean_seconds_per_level": statistics.mean(per_level),
                "gpu_peak_mb": gpu_peak_mb(), "host_peak_rss_mb": host_peak_mb(), "prior": result.prior_info,
                "metrics": metric_summary(result.metrics)}

    rec["calibration"] = run(calibration_levels)
    rec.save()
    cal = rec["calibration"]
    fixed = cal["total_seconds"] - cal["timings_s"]["sample"]
    left = args.deadline_s - (time.perf_counter() - t_start) - 15  # margin for the record and exit
    fits = int((left - fixed) // max(cal["mean_seconds_per_level"], 1e-3))
    rec["levels_chosen"] = {"fits_in_time_left": fits, "max": max_levels, "time_left_s": left}
    levels = min(max_levels, fits)
    if levels < 2:
        rec["main"] = {"status": "skipped", "reason": f"only {fits} level(s) fit in the {left:.0f} s left"}
        rec.expect("main_run_fits", False)
        return
    rec["main"] = run(levels)
    main = rec["main"]
    for name, m in main["metrics"].items():
        rec.expect(f"{name}_psnr_finite", finite(m.get("psnr_volume")))
    names = list(main["metrics"])
    rec["dds_minus_fbp_psnr_db"] = main["metrics"][names[-1]]["psnr_volume"] - main["metrics"][names[0]]["psnr_volume"]
