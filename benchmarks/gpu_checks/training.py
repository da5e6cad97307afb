"""The training check: steps/s and a finite loss of the library training loop."""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from .measure import cuda_ready, finite, gpu_peak_mb, reset_gpu_peak, sync
from .record import Record
from .volumes import chest_available


def check_training(rec: Record, args: argparse.Namespace) -> None:
    """Steps/s of the library training loop and a finite loss, per network and precision."""
    import torch

    from padis3d.priors.network import CPU_CONFIG, PAPER_GPU_CONFIG
    from padis3d.training.data import PatchSampler, chest_ct_training_images
    from padis3d.training.loop import TrainSettings, new_state, train
    from padis3d.training.phantoms import ellipse_training_images

    on_cuda = cuda_ready(args.dry_run)
    device = torch.device("cuda" if on_cuda else "cpu")
    steps = args.train_steps if not args.dry_run else 2
    if on_cuda:
        plans = [("cpu-preset", CPU_CONFIG, 128, [16, 32, 48], [0.2, 0.3, 0.5], 8, ("fp32", "bf16", "fp16")),
                 ("paper-gpu", PAPER_GPU_CONFIG, 256, [16, 32, 56], [0.2, 0.3, 0.5], 16, ("fp32", "bf16"))]
    else:
        plans = [("cpu-preset", CPU_CONFIG, 32, [16], [1.0], 2, ("fp32", "bf16", "fp16"))]
    rec.update(device=str(device), steps=steps, runs={})
    data: dict[int, tuple[Any, dict]] = {}
    for name, config, size, sizes, probs, batch, precisions in plans:
        if size not in data:
            data[size] = (chest_ct_training_images(size) if chest_available() and not args.dry_run
                          else ellipse_training_images(16, size))
        images, info = data[size]
        rec["data"] = info["source"]
        for precision in precisions:
            key = f"{name}/{precision}"
            if precision == "fp16" and not on_cuda:
                rec["runs"][key] = {"status": "skipped", "reason": "no CUDA (fp16 training runs on CUDA only)"}
                continue
            sampler = PatchSampler(images, sizes, probs, batch=batch)
            s = TrainSettings(steps=1, lr=2e-4, log_every=1, checkpoint_every=1e9, progress=False, seed=0,
                              precision=precision)
            state = new_state(config, s)
            state.model.to(device)
            state.ema.to(device)
            with tempfile.TemporaryDirectory() as tmp:
                state = train(state, sampler, s, tmp, info)  # warm-up step (kernels, allocator)
                sync()
                t0 = time.perf_counter()
                state = train(state, sampler, s, tmp, info)  # no step left: the checkpoint write alone
                ckpt_s = time.perf_counter() - t0
                s.steps = 1 + steps
                t0 = time.perf_counter()
                state = train(state, sampler, s, tmp, info)
                sync()
                run_s = time.perf_counter() - t0
            losses = [h[1] for h in state.history]
            weights_finite = all(bool(torch.isfinite(p).all()) for p in state.model.parameters())
            entry = {"steps": steps, "seconds": run_s, "checkpoint_write_s": ckpt_s,
                     "steps_per_s": steps / max(1e-9, run_s - ckpt_s), "batch_sizes": sampler.batch_sizes,
                     "patch_sizes": sizes, "image_size": size, "losses": losses,
                     "nonfinite_skipped": state.nonfinite_skipped, "weights_finite": weights_finite,
                     "gpu_peak_mb": gpu_peak_mb()}
            rec["runs"][key] = entry
            rec.expect(f"{key}_loss_finite", bool(losses) and all(finite(v) for v in losses) and weights_finite
                       and state.nonfinite_skipped == 0)
            rec.save()
            del state
            if on_cuda:
                torch.cuda.empty_cache()
                reset_gpu_peak()
