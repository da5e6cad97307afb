"""The autocast check: the shipped patch prior in fp32, bf16 and fp16."""

from __future__ import annotations

import argparse
from typing import Any

from .measure import cuda_ready, timed
from .record import Record


def check_autocast(rec: Record, args: argparse.Namespace) -> None:
    """One evaluation of the shipped patch prior in fp32, bf16, fp16: difference to fp32, ms per evaluation."""
    import torch

    import padis3d

    on_cuda = cuda_ready(args.dry_run)
    device = "cuda" if on_cuda else "cpu"
    n, tile, repeats = (256, 48, 10) if on_cuda else (4, 32, 2)
    g = torch.Generator().manual_seed(2)
    clean_tiles = torch.rand(n, 1, tile, tile, generator=g)
    pos = torch.rand(n, 2, tile, tile, generator=g) * 2 - 1
    rec.update(device=device, tiles=n, tile=tile, prior="chest128_patch", repeats=repeats, precisions={})
    ref: dict[float, torch.Tensor] = {}
    for precision in ("fp32", "bf16", "fp16"):
        if precision == "fp16" and not on_cuda:
            rec["precisions"][precision] = {"status": "skipped", "reason": "no CUDA (fp16 runs on CUDA only)"}
            continue
        prior = padis3d.load_prior("chest128_patch", device=device, precision=precision)
        entry: dict[str, Any] = {"precision": prior.precision}
        x_dev, pos_dev = clean_tiles.to(device), pos.to(device)
        for sigma in (0.05, 1.0):
            noisy = x_dev + sigma * torch.randn(x_dev.shape, generator=g).to(device)
            with torch.inference_mode():
                if precision == "fp32":
                    ref[sigma] = (noisy, prior(noisy, sigma, pos_dev))
                    out = ref[sigma][1]
                else:
                    out = prior(ref[sigma][0], sigma, pos_dev)
            entry[f"finite_sigma_{sigma}"] = bool(torch.isfinite(out).all())
            if precision != "fp32":
                entry[f"max_abs_diff_sigma_{sigma}"] = float((out - ref[sigma][1]).abs().max())
        with torch.inference_mode():
            seconds = timed(lambda: prior(x_dev, 0.5, pos_dev), repeats)
        entry["ms_per_evaluation"] = 1e3 * seconds
        entry["tiles_per_s"] = n / seconds
        rec["precisions"][precision] = entry
        rec.save()
        ok = all(entry[f"finite_sigma_{s}"] for s in (0.05, 1.0))
        if precision != "fp32":
            ok = ok and all(entry[f"max_abs_diff_sigma_{s}"] < 2e-2 for s in (0.05, 1.0))
        rec.expect(f"{precision}_finite_and_within_2e-2_of_fp32", ok)
        del prior
    fp32_ms = rec["precisions"]["fp32"]["ms_per_evaluation"]
    rec["speedup_vs_fp32"] = {p: fp32_ms / e["ms_per_evaluation"] for p, e in rec["precisions"].items()
                              if "ms_per_evaluation" in e}
