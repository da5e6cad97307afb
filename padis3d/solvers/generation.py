"""Unconditional generation: EDM Heun (Karras et al. 2022, Alg. 1, deterministic) and DDIM
(Song et al. 2021, VE form). Both end at σ = 0 after the last listed level. Few steps show
patch seams with a patch prior (PaDIS, App. A.7); annealed Langevin is in ``langevin``."""

from __future__ import annotations

import math

import torch

from padis3d.solvers.common import Callback, StatePrior, check_problem, noise_like, report


def edm_heun(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: None = None,
             y: None = None, generator: torch.Generator | None = None,
             callback: Callback | None = None) -> torch.Tensor:
    """Probability-flow ODE ``dx/dσ = (x - D(x; σ)) / σ`` by Heun's method (Euler on the last step)."""
    check_problem(operator, y, sigmas, x)
    levels = [float(s) for s in sigmas] + [0.0]
    n = len(levels) - 1
    for i in range(n):
        s, s_next = levels[i], levels[i + 1]
        d = prior.denoise(x, s, generator=generator)
        slope = (x - d) / s
        x_next = x + (s_next - s) * slope
        if s_next > 0:
            d_next = prior.denoise(x_next, s_next, generator=generator)
            x_next = x + (s_next - s) * (slope + (x_next - d_next) / s_next) / 2
        x = x_next
        report(callback, i, n, s, x, d)
    return prior.crop(x)


def ddim(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: None = None, y: None = None,
         eta: float = 0.0, generator: torch.Generator | None = None,
         callback: Callback | None = None) -> torch.Tensor:
    """``x ← D + σ_{i+1} (η z + sqrt(1 - η²) (x - D) / σ_i)``; η = 0 is Euler on the ODE."""
    check_problem(operator, y, sigmas, x)
    levels = [float(s) for s in sigmas] + [0.0]
    n = len(levels) - 1
    for i in range(n):
        s, s_next = levels[i], levels[i + 1]
        d = prior.denoise(x, s, generator=generator)
        x = d + s_next * (math.sqrt(1 - eta ** 2) * (x - d) / s + (eta * noise_like(x, generator) if eta else 0))
        report(callback, i, n, s, x, d)
    return prior.crop(x)
