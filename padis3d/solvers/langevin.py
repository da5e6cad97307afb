"""Annealed Langevin dynamics (Song & Ermon 2019) with a data term, and the predictor-corrector
sampler of Song et al. (2021, VE SDE, Langevin corrector), as the PaDIS ablation runs them
(paper App. A.5 and the authors' reference code).

Data term for ``y = A x + n`` on the state ``x`` (not through the network):

* default (the reference's): a gradient step ``x ← x + ζ min(40, 200σ) Aᵀ r / ||r||``,
  ``r = y - A crop(x)``, taken before each Langevin step (a fixed-length step: tune ζ);
* with ``noise_std = s``: the annealed Gaussian likelihood score ``Aᵀ r / (s² + σ²)`` added to the
  prior score inside the step (exact as σ -> 0; used to check the samplers in closed form).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def data_step(prior: StatePrior, x: torch.Tensor, sigma: float, operator: Any, y: torch.Tensor,
              noise_std: float | None, zeta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(term, ||r||): the likelihood score (``noise_std`` given) or the reference's step
    ``ζ min(40, 200σ) Aᵀr/||r||``, both on the state ``(B, C, *state_shape)``."""
    r = y - operator(prior.crop(x))
    norm = batch_norm(r)
    if noise_std is not None:
        return prior.embed(operator.adjoint(r)) / (noise_std ** 2 + sigma ** 2), norm
    return prior.embed(operator.adjoint(r * (zeta * min(40.0, 200.0 * sigma) / norm.clamp_min(1e-12)))), norm


def langevin(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any = None,
             y: torch.Tensor | None = None, inner: int = 10, epsilon: float = 1.0, noise_std: float | None = None,
             zeta: float = 1.0, generator: torch.Generator | None = None,
             callback: Callback | None = None) -> torch.Tensor:
    """``inner`` steps per level: data step, then ``x ← x + α/2 (D - x)/σ² + sqrt(α) z`` with
    ``α = ε σ²`` (reference: ε = 1), no noise at the last level. Returns ``crop(D)`` of the last
    evaluation ``(B, C, *image)``."""
    check_problem(operator, y, sigmas, x)
    n = len(sigmas)
    d, norm = x, None
    for i, sigma in enumerate(float(s) for s in sigmas):
        alpha = epsilon * sigma ** 2
        for _ in range(inner):
            if operator is not None and noise_std is None:
                step, norm = data_step(prior, x, sigma, operator, y, None, zeta)
                x = x + step
            d = prior.denoise(x, sigma, generator=generator)
            score = (d - x) / sigma ** 2
            if operator is not None and noise_std is not None:
                like, norm = data_step(prior, x, sigma, operator, y, noise_std, zeta)
                score = score + like
            x = x + alpha / 2 * score
            if i < n - 1:
                x = x + math.sqrt(alpha) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, norm)
    return prior.crop(d)


def predictor_corrector(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any = None,
                        y: torch.Tensor | None = None, snr: float = 0.16, corrector_steps: int = 1,
                        noise_std: float | None = None, zeta: float = 1.0,
                        generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Per level: ``corrector_steps`` Langevin corrector steps ``x ← x + ε s + sqrt(2ε) z`` with
    ``ε = 2 (snr ||z|| / ||s||)²`` (Song et al. 2021, Alg. 4), then the reverse-diffusion predictor
    ``x ← x + (σ_i² - σ_{i+1}²) s + sqrt(σ_i² - σ_{i+1}²) z`` (none after the last level); the data
    term as in :func:`langevin` before every evaluation. ``corrector_steps + 1`` evaluations per level.
    Returns ``crop(D)`` of the last evaluation."""
    check_problem(operator, y, sigmas, x)
    levels = [float(s) for s in sigmas]
    n, d, norm = len(levels), x, None

    def score_at(x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """(x after the ζ-form data step, score, denoised, residual norm)."""
        nrm = None
        if operator is not None and noise_std is None:
            step, nrm = data_step(prior, x, sigma, operator, y, None, zeta)
            x = x + step
        den = prior.denoise(x, sigma, generator=generator)
        s = (den - x) / sigma ** 2
        if operator is not None and noise_std is not None:
            like, nrm = data_step(prior, x, sigma, operator, y, noise_std, zeta)
            s = s + like
        return x, s, den, nrm

    for i, sigma in enumerate(levels):
        for _ in range(corrector_steps):
            x, s, d, norm = score_at(x, sigma)
            z = noise_like(x, generator)
            step = 2 * (snr * batch_norm(z) / batch_norm(s).clamp_min(1e-12)) ** 2
            x = x + step * s + (2 * step).sqrt() * z
        if i < n - 1:
            x, s, d, norm = score_at(x, sigma)
            var = sigma ** 2 - levels[i + 1] ** 2
            x = x + var * s + math.sqrt(var) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, norm)
    return prior.crop(d)
