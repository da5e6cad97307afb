"""What a 2D reconstruction starts from: the reference slice on its reconstruction grid (a file read by
:func:`padis3d.io.reference.read_reference_slice`, or an array), and the patch prior for that grid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padis3d.errors import PadisError
from padis3d.image.tasks import reconstruction_shape
from padis3d.io.normalize import require_finite
from padis3d.io.reference import ReferenceSlice
from padis3d.limits import check_input_shape, check_not_constant, check_tile_fits


def array_reference(image: np.ndarray, window: tuple[float, float] | None = None,
                    name: str = "the array") -> ReferenceSlice:
    """A 2D array ``(H, W)`` (canonical orientation: anterior at the top, the patient's left on the right)
    as a :class:`ReferenceSlice`: ``window`` (values mapped to 0 and 1) or its own range mapped to [0, 1];
    results go back to its values."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise PadisError(f"{name} has shape {a.shape}; a 2D reconstruction needs an (H, W) image "
                         f"(for a volume use padis3d.reconstruct_volume)")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise PadisError(f"{name} holds {a.dtype} values; give real numbers")
    a = a.astype(np.float32)
    require_finite(a, name)
    lo, hi = (float(window[0]), float(window[1])) if window is not None else (float(a.min()), float(a.max()))
    if not hi > lo:
        raise PadisError(f"{name} is constant ({lo:g}) or its window is inverted: nothing to reconstruct")
    norm = {"kind": "window", "window": [lo, hi]} if window is not None else {"kind": "min_max", "range": [lo, hi]}
    return ReferenceSlice(np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32), name, "array", a.shape, norm,
                          (lo, hi), orientation={"stored": "PL", "from": "as stored", "canonical": "SPL",
                                                 "plane": "axial"})


def reference_image(source: str | Path | np.ndarray | ReferenceSlice, task: str, size: int | None = None, *,
                    factor: int = 4, index: int | None = None, axis: int | None = None,
                    window: tuple[float, float] | None = None, orientation: str | None = None,
                    series: str | None = None) -> ReferenceSlice:
    """The reference slice on its reconstruction grid (:func:`padis3d.image.tasks.reconstruction_shape`
    for ``size``; None keeps an array's own shape): a :class:`ReferenceSlice` as it is, an array
    (:func:`array_reference`), or slice ``index`` of plane ``axis`` of a file (any format
    :func:`padis3d.io.reference.read_reference_slice` reads). Checked for size and contrast before it is
    resized."""
    if isinstance(source, ReferenceSlice):
        return source
    if isinstance(source, (str, Path)):
        from padis3d.io.reference import read_reference_slice

        ref = read_reference_slice(source, index, axis, window, orientation=orientation, series=series)
    else:
        ref = array_reference(source, window)
    check_input_shape(ref.input_shape, ref.source)  # the input's own size, before it is resized
    check_not_constant(ref.image, ref.source)
    if size is None:
        return ref
    return ref.resized(reconstruction_shape(ref.input_shape, size, task, factor))


def image_prior(prior: Any, shape: tuple[int, ...], tile: int | str | None = "auto", *,
                max_batch: int | str | None = None, memory_budget: int | None = None,
                device: str | torch.device = "cpu", precision: str = "auto", images: int = 1,
                on_batch_choice: Callable[[Any], None] | None = None) -> tuple[Any, Any, Any]:
    """``(loaded checkpoint, PatchPrior for images of shape, batch choice or None)``. ``prior``: a loaded
    :class:`padis3d.priors.checkpoint.Prior` or a name/path for ``padis3d.load_prior`` (default the shipped
    2D patch prior). ``max_batch="auto"`` measures the tiles per network call for ``images`` images per
    evaluation within ``memory_budget`` bytes (:func:`padis3d.priors.batch_size.measure_tile_batch`)."""
    from padis3d.priors.checkpoint import Prior
    from padis3d.priors.factory import patch_prior_from

    if isinstance(prior, Prior):
        loaded = prior
    else:
        import padis3d
        from padis3d.device import resolve_device

        if prior is None:
            from padis3d.priors.registry import DEFAULT_PRIOR

            prior = DEFAULT_PRIOR
        loaded = padis3d.load_prior(prior, device=resolve_device(device), precision=precision)
    check_tile_fits(tile, shape)
    choice = None
    if max_batch == "auto":
        from padis3d.priors.batch_size import measure_tile_batch

        trial = patch_prior_from(loaded, shape, tile, memory_budget=memory_budget)
        choice = measure_tile_batch(trial, None, loaded.device, memory_budget=memory_budget,
                                    tiles=images * trial.grid.num_tiles)
        max_batch = choice.chosen
        if on_batch_choice is not None:
            on_batch_choice(choice)
    return loaded, patch_prior_from(loaded, shape, tile, max_batch=max_batch, memory_budget=memory_budget), choice
