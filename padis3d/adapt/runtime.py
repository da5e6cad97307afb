"""What a run that adapts needs around the sampler: adaptation's imports paid before the memory
overhead is measured, its fixed memory cost, and a diverged adaptation named as such."""

from __future__ import annotations

from typing import Any

from padis3d.errors import PadisError

ADAPT_FIXED_MB = 30.0
"""Resident memory that test-time adaptation adds once, whatever the image size, on top of the
start-up overhead measured after :func:`preload_adaptation` (which moves torch's Adam imports, ~40
MiB, into that overhead): measured 2026-12-02 with ``padis3d reconstruct --task deblur --tile 16
--memory-budget-mb 4 --sampler dds --steps 2`` with and without ``--adapt --adapt-first 2``: +27, +28
and +26 MiB over plain sampling at 96², 192² and 384² (flat in size: autograd's and the kernels'
first-backward buffers). It enters the run's memory allowance (report.json ``memory``)."""


def adaptation_failure(exc: PadisError, tta: Any, y: Any) -> PadisError:
    """The error to report for ``exc``, raised while sampling: a non-finite image met by a run that adapts
    (``tta`` not None) on finite measurements ``y`` is the adaptation diverging, said as such with what to
    lower, not as bad input; any other error is ``exc`` itself."""
    import torch

    from padis3d.adapt.sampling import AdaptationDiverged

    if tta is None or isinstance(exc, AdaptationDiverged) or "NaN or Inf" not in str(exc) \
            or not bool(torch.isfinite(y).all()):
        return exc
    return AdaptationDiverged(-1, 0.0, "the adapted prior's denoised images are not finite", tta.settings.lr)


def preload_adaptation(prior: Any) -> None:
    """Pay what adaptation imports before the overhead is measured: torch's Adam pulls ~40 MiB of
    modules on its first ``step``. One Adam step of a throw-away adapter on a one-tile image of
    ``prior`` (a :class:`padis3d.priors.patch.PatchPrior`). The ~28 MiB a real run still adds once
    are not reproduced by this small step; they are :data:`ADAPT_FIXED_MB`."""
    import torch

    from padis3d.adapt import AdaptSettings, TestTimeAdapter
    from padis3d.operators import Blur
    from padis3d.priors.patch import PatchPrior

    tile = tuple(int(t) for t in prior.grid.tile)
    small = PatchPrior(prior.denoiser, tile, tile, fold_axes=prior.fold_axes, max_batch=1)
    op = Blur(tile, torch.ones((1,) * len(tile)))
    image = torch.zeros((1, 1, *tile))
    tta = TestTimeAdapter(small, op, op(image), AdaptSettings(steps=1, rank=1))
    tta.adapt(small.embed(image), 1.0)
