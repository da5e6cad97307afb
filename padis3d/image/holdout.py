"""The default candidates of the held-out choice for the 2D tasks
(:func:`padis3d.solvers.holdout_choice.choose_by_holdout`): DDS at the table's settings, DDS with
ADMM-TV's weight as the TV term of its data step, and ADMM-TV itself (its tuned weight,
:func:`padis3d.baselines.tv_weight`, 500 PDHG iterations).

Every DDS candidate starts from ``baseline`` computed from all measurements (the sampler re-noises it at
σ = 0.5, far above the image's contrast, so what it carries of the held-out part is mostly drowned);
ADMM-TV starts from zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.solvers.holdout_choice import Method
from padis3d.solvers.reconstruct import SamplerSettings

TV_ITERS = 500
"""PDHG iterations of the ADMM-TV candidate (as the baselines' tables)."""


def holdout_candidates(prior: Any, settings: SamplerSettings, baseline: torch.Tensor, tv_lambda: float,
                       sample: Callable[..., torch.Tensor] | None = None) -> list[tuple[str, Method]]:
    """``[(name, method)]``: ``dds`` (``settings``), ``dds+tv`` (``settings`` with ``tv = tv_lambda``;
    left out if that is ``settings.tv``) and ``admm-tv`` (weight ``tv_lambda``). ``sample``: the sampler
    call, default :func:`padis3d.solvers.reconstruct.reconstruct` (``(prior, op, y, settings, baseline=)``)."""
    from padis3d.baselines import admm_tv
    from padis3d.solvers.reconstruct import reconstruct

    if settings.sampler != "dds":
        raise PadisError(f"the held-out choice's candidates are DDS variants and ADMM-TV; got sampler "
                         f"{settings.sampler!r}")
    if not tv_lambda > 0:
        raise PadisError(f"the ADMM-TV weight must be > 0, got {tv_lambda}")
    run = sample or reconstruct

    def dds(s: SamplerSettings) -> Method:
        return lambda op, y: run(prior, op, y, s, baseline=baseline)

    def tv(op: Any, y: torch.Tensor) -> torch.Tensor:
        return admm_tv(op, y, tv_lambda, max_iter=TV_ITERS)

    out: list[tuple[str, Method]] = [("dds", dds(settings))]
    if tv_lambda != settings.tv:
        out.append(("dds+tv", dds(replace(settings, tv=tv_lambda))))
    return out + [("admm-tv", tv)]
