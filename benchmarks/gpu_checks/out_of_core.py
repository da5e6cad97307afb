"""The out-of-core check: ``reconstruct_volume`` on two volumes 4x apart under one memory budget."""

from __future__ import annotations

import argparse
import time

from .measure import cuda_ready, gpu_peak_mb, host_peak_mb, metric_summary, reset_gpu_peak, sync
from .record import Record


def check_out_of_core(rec: Record, args: argparse.Namespace) -> None:
    """``reconstruct_volume`` (denoise, DDS) on two volumes 4x apart in slices, one memory budget."""
    import numpy as np
    import torch

    import padis3d

    on_cuda = cuda_ready(args.dry_run)
    device = "cuda" if on_cuda else "cpu"
    if on_cuda:
        sizes, in_plane, size, budget_mb, band, steps = (32, 128), 256, 128, 64, 8, 2
    else:
        sizes, in_plane, size, budget_mb, band, steps = (8, 32), 64, 32, 16, 4, 1
    rec.update(device=device, task="denoise", denoiser="dds", prior="chest128_patch", size=size,
               budget_mb=budget_mb, band=band, steps=steps, runs={})
    if on_cuda:
        torch.cuda.init()
    for nz in sizes:
        z, y, x = np.mgrid[0:nz, 0:in_plane, 0:in_plane].astype(np.float32)
        vol = np.sin(z / 4) * np.cos(y / 9) + 0.3 * np.sin(x / 5)
        del z, y, x
        reset_gpu_peak()
        t0 = time.perf_counter()
        result = padis3d.reconstruct_volume(vol, "denoise", denoiser="dds", prior="chest128_patch", size=size,
                                            steps=steps, band=band, memory_budget=budget_mb * 2**20,
                                            device=device, precision="auto")
        sync()
        entry = {"slices": nz, "input_shape": list(vol.shape), "seconds": time.perf_counter() - t0,
                 "timings_s": result.timings_s, "gpu_peak_mb": gpu_peak_mb(), "host_peak_rss_mb": host_peak_mb(),
                 "memory": result.memory, "prior": result.prior_info, "metrics": metric_summary(result.metrics)}
        rec["runs"][str(nz)] = entry
        rec.save()
        del result, vol
    small, large = (rec["runs"][str(n)] for n in sizes)
    rec["host_peak_growth_mb"] = large["host_peak_rss_mb"] - small["host_peak_rss_mb"]
    rec.expect("host_peak_grows_under_24_mib_for_4x_slices", rec["host_peak_growth_mb"] < 24)
    if on_cuda:
        model_mb = large["memory"]["model_mb"]
        rec["gpu_bound_mb"] = budget_mb + model_mb
        rec["gpu_peak_mb"] = max(r["gpu_peak_mb"] for r in rec["runs"].values())
        rec.expect("gpu_peak_within_budget_plus_model", rec["gpu_peak_mb"] <= rec["gpu_bound_mb"])
    else:
        rec["gpu"] = {"status": "skipped", "reason": "no CUDA"}
