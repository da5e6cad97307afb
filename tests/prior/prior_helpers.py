"""Shared fixtures: one thread, tiny synthetic images, tiny network configs."""

from __future__ import annotations

import numpy as np
import torch

from padis3d.priors.network import PriorConfig

torch.set_num_threads(1)


def blob_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` piecewise-constant discs on a dark background, values in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        for _ in range(3):
            cy, cx, r = rng.uniform(6, size - 6, 2).tolist() + [rng.uniform(3, size / 4)]
            out[i, 0][(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = rng.uniform(0.3, 1.0)
    return torch.from_numpy(out)


def tiny_config(**kw) -> PriorConfig:
    base = dict(features=(16, 32), attention_levels=(False, False), norm_num_groups=8, num_head_channels=8)
    base.update(kw)
    return PriorConfig(**base)




def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """MONAI zero-initialises the last conv of every residual branch and the output conv (so an
    untrained F is 0); give every parameter small random values so untrained outputs depend on inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def ddp_setup():
    """Tiny config, sampler with even batch sizes, and 3-step settings shared by the DDP test and worker."""
    from padis3d.training.data import PatchSampler
    from padis3d.training.loop import TrainSettings

    sampler = PatchSampler(blob_images(6, 16, seed=2), [8, 16], [0.5, 0.5], batch_sizes=[8, 4])
    settings = TrainSettings(steps=3, lr=1e-3, lr_warmup_steps=1, ema_halflife_patches=50, log_every=1,
                             checkpoint_every=1e9, progress=False, seed=4)
    return tiny_config(), sampler, settings
