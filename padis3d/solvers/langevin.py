"""Annealed Langevin dynamics (Song & Ermon 2019) with an optional data term, and the
predictor-corrector sampler of Song et al. (2021, VE SDE, Langevin corrector).

Data term for ``y = A x + n``: with ``noise_std`` the Gaussian likelihood score
``Aᵀ(y - A x) / (noise_std² + σ²)`` (exact as σ -> 0 and for ``A Aᵀ = I``); without it the
reference code's normalised step ``ζ Aᵀ r / ||r||``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def _data_score(prior: StatePrior, x: torch.Tensor, sigma: float, operator: Any, y: torch.Tensor,
                noise_std: float | None, zeta: float) -> tuple[torch.Tensor, torch.Tensor]:
    r = y - operator(prior.crop(x))
    norm = batch_norm(r)
    if noise_std is not None:
        return prior.embed(operator.adjoint(r)) / (noise_std ** 2 + sigma ** 2), norm
    return prior.embed(operator.adjoint(r * (zeta / norm.clamp_min(1e-12)))), norm


def langevin(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any = None,
             y: torch.Tensor | None = None, inner: int = 10, epsilon: float = 0.5, noise_std: float | None = None,
             zeta: float = 1.0, generator: torch.Generator | None = None,
             callback: Callback | None = None) -> torch.Tensor:
    """``inner`` Langevin steps ``x ← x + α/2 s(x) + sqrt(α) z``, ``α = ε σ²`` per level; the score
    ``s`` is the prior's plus the data term (noise-std form inside the step, ζ form added as a
    separate gradient step). Returns ``crop(D)`` of the last evaluation."""
    check_problem(operator, y, sigmas, x)
    n = len(sigmas)
    d, norm = x, None
    for i, sigma in enumerate(float(s) for s in sigmas):
        alpha = epsilon * sigma ** 2
        for _ in range(inner):
            d = prior.denoise(x, sigma, generator=generator)
            score = (d - x) / sigma ** 2
            if operator is not None:
                data, norm = _data_score(prior, x, sigma, operator, y, noise_std, zeta)
                if noise_std is not None:
                    score = score + data
                else:
                    x = x + data
            x = x + alpha / 2 * score + math.sqrt(alpha) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, norm)
    return prior.crop(prior.denoise(x, float(sigmas[-1]), generator=generator))


def predictor_corrector(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any = None,
                        y: torch.Tensor | None = None, snr: float = 0.16, corrector_steps: int = 1,
                        noise_std: float | None = None, zeta: float = 1.0,
                        generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Reverse-diffusion predictor ``x ← x + (σ_i² - σ_{i+1}²) s + sqrt(σ_i² - σ_{i+1}²) z`` and
    Langevin corrector with step ``2 (snr ||z|| / ||s||)²`` (Song et al. 2021, Alg. 2/4)."""
    check_problem(operator, y, sigmas, x)
    levels = [float(s) for s in sigmas]
    n, d, norm = len(levels), x, None

    def score_at(x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """(x after a ζ-form data step, score, denoised, residual norm)."""
        den = prior.denoise(x, sigma, generator=generator)
        s = (den - x) / sigma ** 2
        if operator is None:
            return x, s, den, None
        data, nrm = _data_score(prior, x, sigma, operator, y, noise_std, zeta)
        return (x, s + data, den, nrm) if noise_std is not None else (x + data, s, den, nrm)

    for i, sigma in enumerate(levels):
        for _ in range(corrector_steps):
            x, s, d, norm = score_at(x, sigma)
            z = noise_like(x, generator)
            step = 2 * (snr * batch_norm(z) / batch_norm(s).clamp_min(1e-12)) ** 2
            x = x + step * s + (2 * step).sqrt() * z
        x, s, d, norm = score_at(x, sigma)
        if i < n - 1:
            var = sigma ** 2 - levels[i + 1] ** 2
            x = x + var * s + math.sqrt(var) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, norm)
    return prior.crop(d)
