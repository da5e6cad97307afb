"""Measurement noise, reproducible through a ``torch.Generator``.

CT line integrals from our projectors are in pixel units of the image (values in
[0, 1]); Poisson photon noise needs them in attenuation units: ``p = scale * sino``.
For the default chest CT (HU -1000..1000 -> 0..1, so value 0.5 is water,
μ_water ≈ 0.0193 /mm at ~70 keV, 512 px over 358 mm) :func:`chest_ct_attenuation_scale`
gives that scale.
"""

from __future__ import annotations

import math

import torch

from padis3d.errors import PadisError

MU_WATER_PER_MM = 0.0193
CHEST_CT_FOV_MM = 358.4


def chest_ct_attenuation_scale(image_size: int, fov_mm: float = CHEST_CT_FOV_MM) -> float:
    """Scale from sinogram units to attenuation for images in [0, 1] over HU -1000..1000:
    ``μ = 2 μ_water v``, pixel length ``fov_mm / image_size``."""
    return 2.0 * MU_WATER_PER_MM * fov_mm / int(image_size)


def gaussian_noise(y: torch.Tensor, sigma: float = 0.01, generator: torch.Generator | None = None) -> torch.Tensor:
    """``y + σ ε`` with ``ε ~ N(0, I)`` (default σ = 0.01, the deblur / SR setting)."""
    if not 0 <= sigma < math.inf:
        raise PadisError(f"noise sigma must be a finite number >= 0, got {sigma}")
    eps = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    return y + sigma * eps


def poisson_photon_noise(sino: torch.Tensor, incident_count: float, attenuation_scale: float,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy sinogram from photon counts ``N ~ Poisson(I0 exp(-scale * sino))``, returned as
    ``-log(max(N, 1) / I0) / scale`` (same units as ``sino``; zero counts clamped to one)."""
    if not incident_count > 0 or not attenuation_scale > 0:
        raise PadisError("incident_count (photons per bin, I0) and attenuation_scale must both be > 0")
    if bool((sino < 0).any()):
        raise PadisError("line integrals must be non-negative for photon noise; clip the image to [0, 1] first")
    rate = incident_count * torch.exp(-attenuation_scale * sino.double())
    counts = torch.poisson(rate, generator=generator).clamp_min(1.0)
    return (-torch.log(counts / incident_count) / attenuation_scale).to(sino.dtype)
