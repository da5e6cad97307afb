"""PaDIS (Hu et al. 2024, Algorithm 1): VE diffusion posterior sampling with Langevin inner
steps and the data-misfit gradient taken THROUGH the patch denoiser.

For each level σ_t, ``inner`` times: draw a shift, ``D = D(x; σ_t)``, ``r = A crop(D) - y``;
data step ``x ← x - w Jᵀ Aᵀ r`` (``J = ∂D/∂x``, so ``Jᵀ Aᵀ r = ∇_x ½||r||²``); then with
``α = ε σ_t²`` the Langevin step ``x ← x + α/2 (D - x)/σ_t² + sqrt(α) z`` (no noise at the last
level). Returns ``crop(D)`` of the last evaluation. The state is detached every iteration.

Data-step weight ``w`` (``step_rule``), always capped at ``step_size / ||A||²``:

* ``"misfit"`` (default): ``w = step_size / ||A||²``, gradient descent on ``½||A D - y||²``.
  Why it cannot oscillate: linearise ``D ≈ D0 + J δx`` with ``J`` symmetric, eigenvalues in
  ``[0, 1]`` (a denoiser's Jacobian shrinks); the residual then maps to
  ``(I - w A J Jᵀ Aᵀ) r`` whose eigenvalues lie in ``[1 - w ||A||², 1]``; with
  ``w ||A||² = step_size < 2`` they are inside ``(-1, 1]``: a contraction on the range, the
  residual decreases monotonically (no period-2 cycle) until it meets the prior's pull.
* ``"norm"``: the reference code's ``x -= ζ ∇||A D - y||`` (fixed length: ``w = ζ/||r||``).
* ``"paper"``: the paper's ``ζ_t = ζ/||A D - y||`` on ``∇||A D - y||`` (``w = ζ/||r||²``).

Uncapped, ``"norm"`` and ``"paper"`` exceed the stable limit ``2/||A||²`` as ``||r||`` shrinks
(``||r|| < ζ||A||²/2`` for ``"norm"``) and the iterates enter a period-2 cycle; the cap
``step_size / ||A||²`` (``||A||²`` by power iteration, cached on the operator) keeps them stable.

Test-time adaptation (issue 15): ``adapt(i, n, σ_i, x)`` is called before each level's inner
loop (as in :func:`padis3d.solvers.dds.dds`); ``prior`` must then be the adapter's ``.prior``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, operator_norm_sq, report
from padis3d.solvers.dds import AdaptHook, check_adapt_hook

STEP_RULES = ("misfit", "norm", "paper")


def data_weight(rule: str, norm: torch.Tensor, zeta: float, cap: float) -> torch.Tensor:
    """Weight ``w`` (per batch item, shaped like ``norm``) on the squared-misfit gradient."""
    if rule == "misfit":
        return torch.full_like(norm, cap)
    free = zeta / norm if rule == "norm" else zeta / norm ** 2
    return free.clamp_max(cap)


def padis_dps(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
              step_rule: str = "misfit", step_size: float = 1.5, zeta: float = 0.1, inner: int = 10,
              epsilon: float = 0.5, generator: torch.Generator | None = None,
              callback: Callback | None = None, adapt: AdaptHook | None = None) -> torch.Tensor:
    """x: initial state ``(B, C, *prior.state_shape)``; sigmas: decreasing levels; operator: a
    linear operator on images with ``adjoint``; y: measurements ``(B, C, *out)``. ``step_size``:
    ``c`` of the cap ``c/||A||²`` (stable for ``c < 2``); ``zeta``: ζ of the ``norm``/``paper`` rules
    (image units); ``adapt``: test-time adaptation hook (module docstring). Returns the image
    estimate ``(B, C, *image)``."""
    check_problem(operator, y, sigmas, x)
    check_adapt_hook(adapt, prior, "padis_dps")
    if step_rule not in STEP_RULES or not step_size > 0:
        raise PadisError(f"need step_rule in {STEP_RULES} and step_size > 0, got {step_rule!r}, {step_size}")
    cap = step_size / operator_norm_sq(operator, prior.crop(x))
    n, d = len(sigmas), x
    for i, sigma in enumerate(float(s) for s in sigmas):
        if adapt is not None:
            adapt(i, n, sigma, x)
        for _ in range(inner):
            residual: dict[str, torch.Tensor] = {}

            def cotangent(den: torch.Tensor) -> torch.Tensor:
                r = operator(prior.crop(den)) - y
                residual["norm"] = norm = batch_norm(r).clamp_min(1e-12)
                return prior.embed(operator.adjoint(r * data_weight(step_rule, norm, zeta, cap)))

            d, grad = prior.denoise_vjp(x, sigma, cotangent, generator=generator)
            alpha = epsilon * sigma ** 2
            x = x - grad + alpha / 2 * (d - x) / sigma ** 2
            if i < n - 1:
                x = x + math.sqrt(alpha) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, residual["norm"])
    return prior.crop(d)
