"""The cone-beam check: astra CUDA projectors and a cone-beam volume run."""

from __future__ import annotations

import argparse
import math
import time

from .measure import cuda_ready, finite, metric_summary, timed
from .record import Record, Skip
from .volumes import test_volume


def check_cone_beam(rec: Record, args: argparse.Namespace) -> None:
    """astra CUDA: the 2D GPU projector against the CPU one, the cone beam, and a cone-beam volume run."""
    if not cuda_ready(args.dry_run):
        raise Skip("no CUDA")
    import numpy as np
    import torch

    import padis3d
    from padis3d.operators import ConeBeam3D, ParallelBeam2D, astra_cuda_available

    if not astra_cuda_available():
        raise RuntimeError("astra.use_cuda() is False: astra-toolbox was built without CUDA or found no GPU")
    vol, window, what = test_volume(128, args.volume)
    lo, hi = window
    x = torch.from_numpy(np.clip((vol - lo) / (hi - lo), 0, 1))[:, None]  # (128, 1, 128, 128) slices
    rec["volume"] = what
    gpu, cpu = (ParallelBeam2D(128, views=90, span=math.pi / 2, use_cuda=c) for c in (True, False))
    y_gpu, y_cpu = gpu(x), cpu(x)
    f_gpu, f_cpu = gpu.fbp(y_cpu), cpu.fbp(y_cpu)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    rec["parallel2d"] = {"slices": x.shape[0], "views": 90, "forward_rel_diff": rel(y_gpu, y_cpu),
                         "fbp_rel_diff": rel(f_gpu, f_cpu),
                         "ms_forward": {"gpu": 1e3 * timed(lambda: gpu(x), 3), "cpu": 1e3 * timed(lambda: cpu(x), 3)},
                         "ms_fbp": {"gpu": 1e3 * timed(lambda: gpu.fbp(y_cpu), 3),
                                    "cpu": 1e3 * timed(lambda: cpu.fbp(y_cpu), 3)}}
    rec.expect("parallel2d_gpu_matches_cpu_within_5pc", rec["parallel2d"]["forward_rel_diff"] < 0.05)
    rec.expect("fbp_gpu_matches_cpu_within_10pc", rec["parallel2d"]["fbp_rel_diff"] < 0.1)
    rec.save()
    cone = ConeBeam3D((64, 128, 128), views=60)
    v = x[32:96, 0][None, None].contiguous()
    g = torch.Generator().manual_seed(0)
    yr = torch.rand(1, 1, *cone.out_shape, generator=g)
    av, aty = cone(v), cone.adjoint(yr)
    lhs, rhs = float((av * yr).sum()), float((v * aty).sum())
    rec["cone3d"] = {"shape": [64, 128, 128], "views": 60, "out_shape": list(cone.out_shape),
                     "adjoint_rel_mismatch": abs(lhs - rhs) / max(abs(lhs), 1e-12),
                     "ms_forward": 1e3 * timed(lambda: cone(v), 3),
                     "ms_adjoint": 1e3 * timed(lambda: cone.adjoint(yr), 3)}
    rec.expect("cone_forward_finite", bool(torch.isfinite(av).all()) and float(av.abs().max()) > 0)
    rec.save()
    t0 = time.perf_counter()
    result = padis3d.reconstruct_volume(vol[32:64], "ct3d-cone", views=60, prior="chest128_patch", size=64, steps=2,
                                        window=window, device="cuda", precision="auto")
    rec["cone_volume_run"] = {"shape": list(result.shape), "steps": 2, "seconds": time.perf_counter() - t0,
                              "timings_s": result.timings_s, "metrics": metric_summary(result.metrics)}
    rec.expect("cone_volume_metrics_finite", all(finite(m.get("psnr_volume")) for m in
                                                 rec["cone_volume_run"]["metrics"].values()))
