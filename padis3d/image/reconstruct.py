"""``padis3d.reconstruct_image``: a 2D reconstruction in one call. The reference slice (a file, an
array) on its grid, the task's operator and simulated (or given) measurements, the patch prior, the
posterior sampler from the defaults table (:mod:`padis3d.solvers.defaults`), by default chosen
against DDS with a stronger TV term and ADMM-TV by held-out measurements (:mod:`padis3d.image.holdout`),
optionally with test-time adaptation, and the result with its baseline, PSNR/SSIM, time and memory figures.

Example::

    import padis3d
    result = padis3d.reconstruct_image("scan.nii.gz", task="ct", views=20, sampler="dds", slice_index=120)
    print(result.method, result.metrics)  # "dds", {"FBP-Hann": {"psnr": ..., "ssim": ...}, "dds": {...}}
    result.write("reconstruction")      # back in the file's units, orientation and format
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padis3d.errors import PadisError
from padis3d.image.inputs import image_prior, reference_image
from padis3d.image.tasks import default_noise, image_operator, table_task
from padis3d.io.reference import ReferenceSlice
from padis3d.memory import StagePeaks, model_mb, vm_rss_mb
from padis3d.solvers.reconstruct import SamplerSettings


@dataclass
class ImageResult:
    """A 2D reconstruction. ``image`` and ``baseline``: ``(H, W)`` float32 in the prior's [0, 1] units
    (``image`` as the sampler left it, unclipped); ``reference``: the input slice on the same grid with
    how it was normalised (:class:`padis3d.io.reference.ReferenceSlice`; ``reference.image`` is the
    ground truth of ``metrics``: ``{baseline_name: {"psnr", "ssim"}, method: {...}}``, PSNR in dB).
    ``method``: the sampler, or with the held-out choice the candidate chosen (``dds``, ``dds+tv``,
    ``admm-tv``; ``choice``: the :class:`padis3d.solvers.holdout_choice.HoldoutChoice`, else None).
    ``seconds``: sampling time. Memory in MiB: ``overhead_mb`` (resident at start-up, the model left
    out), ``model_mb``, ``stages`` (peak so far at the end of each stage). ``adapter``: the
    :class:`padis3d.adapt.TestTimeAdapter` when the run adapted (its ``save`` writes the weights)."""

    image: np.ndarray
    baseline: np.ndarray
    reference: ReferenceSlice
    baseline_name: str
    method: str
    metrics: dict[str, dict[str, float]]
    settings: SamplerSettings
    operator: Any
    noise: float | None
    seconds: float
    prior_info: dict
    overhead_mb: float
    model_mb: float
    stages: StagePeaks = field(repr=False, default_factory=StagePeaks)
    adapter: Any = None
    choice: Any = None

    @property
    def truth(self) -> np.ndarray:
        """The reference image ``(H, W)`` in [0, 1]."""
        return self.reference.image

    @property
    def evaluations(self) -> int:
        """Network evaluations of the run: the sampler's, times the DDS runs of a held-out choice (each DDS
        candidate on the kept measurements, and the final run unless ADMM-TV was chosen)."""
        if self.choice is None:
            return self.settings.evaluations
        runs = sum(name.startswith("dds") for name in [*self.choice.losses, self.choice.chosen])
        return runs * self.settings.evaluations

    @property
    def peak_rss_mb(self) -> float:
        """This process's peak resident memory so far, in MiB."""
        return self.stages.peak

    def in_units(self) -> np.ndarray:
        """The reconstruction clipped to [0, 1] and mapped back to the input's values, float32 ``(H, W)``."""
        return self.reference.to_units(self.image)

    def write(self, path: str | Path, like: str | None = None) -> Path:
        """Write the reconstruction in the input's format family (NIfTI with its geometry, PNG, else
        ``.npy``; ``like``: the input path, default the reference's source), values and orientation;
        returns the path written (its suffix set by the format)."""
        from padis3d.image.output import save_image

        return save_image(Path(path), self.image, like or self.reference.source, self.reference)


def _measurements(op: Any, truth: np.ndarray, measured: Any, noise: float | None, seed: int
                  ) -> tuple[torch.Tensor, float | None]:
    """``(y (1, 1, *out), noise)``: ``measured`` as given (its shape checked; noise None), else ``op(truth)``
    plus Gaussian noise of std ``noise`` (seed ``seed + 1``)."""
    from padis3d.operators import gaussian_noise

    if measured is not None:
        y = torch.as_tensor(np.asarray(measured, dtype=np.float32))[None, None]
        if tuple(y.shape[2:]) != tuple(op.out_shape):
            raise PadisError(f"the measurements have shape {tuple(y.shape[2:])}, but the geometry gives "
                             f"{tuple(op.out_shape)}: check --size/--views/--factor")
        return y, None
    y = op(torch.from_numpy(truth)[None, None])
    if noise:
        y = gaussian_noise(y, noise, torch.Generator().manual_seed(seed + 1))
    return y, noise


def _sample(prior: Any, op: Any, y: torch.Tensor, settings: SamplerSettings, baseline: torch.Tensor,
            tta: Any, callback: Callable[[dict], None] | None) -> torch.Tensor:
    """The posterior sample; a non-finite image met while adapting is named as the adaptation diverging."""
    from padis3d.adapt.runtime import adaptation_failure
    from padis3d.solvers import reconstruct as solvers  # looked up at call time (tests stand a stub in)

    try:
        result = solvers.reconstruct(prior, op, y, settings, baseline=baseline, callback=callback, adapt=tta)
    except PadisError as exc:
        failure = adaptation_failure(exc, tta, y)
        if failure is exc:
            raise
        raise failure from exc
    if not torch.isfinite(result).all():
        raise PadisError("the reconstruction holds non-finite values (nothing written): lower --adapt-lr or the "
                         "sampler's step sizes")
    return result


def reconstruct_image(source: str | Path | np.ndarray | ReferenceSlice, task: str | Any = "ct", *,
                      prior: Any = None, settings: SamplerSettings | None = None, sampler: str = "dds",
                      budget: str = "cpu", views: int = 20, span_deg: float | None = None,
                      noise: float | None = None, kernel: int = 9, factor: int = 4, sr_mode: str = "average",
                      measured: Any = None, size: int | None = 128, slice_index: int | None = None,
                      axis: int | None = None, window: tuple[float, float] | None = None,
                      orientation: str | None = None, series: str | None = None, tile: int | str | None = "auto",
                      max_batch: int | str | None = None, memory_budget: int | None = None,
                      device: str | torch.device = "cpu", precision: str = "auto", adapt: Any = None,
                      adapter: str | Path | None = None, holdout_choice: bool | None = None,
                      limit_heap: bool | None = None,
                      callback: Callable[[dict], None] | None = None,
                      on_adapt_step: Callable[[Any], None] | None = None,
                      on_batch_choice: Callable[[Any], None] | None = None, **overrides: Any) -> ImageResult:
    """Reconstruct a 2D image with a patch diffusion prior; returns an :class:`ImageResult`.

    source: a file (NIfTI, DICOM, PNG/JPEG, npy, zarr: slice ``slice_index`` of plane ``axis`` of a volume,
    default the middle axial one; ``window``, ``orientation``, ``series`` as in
    :func:`padis3d.io.reference.read_reference_slice`), an ``(H, W)`` array in the canonical orientation
    (its range, or ``window``, mapped to [0, 1]), or a :class:`padis3d.io.reference.ReferenceSlice`
    (used as it is). It is resized to ``size`` on its longer side (None: kept). task: ``ct``
    (``views`` over ``span_deg``), ``ct-fan``, ``deblur`` (``kernel``), ``sr`` (``factor``,
    ``sr_mode``; :mod:`padis3d.image.tasks`) or an operator on ``(1, 1, H, W)`` images with
    ``out_shape`` and ``pinv``. noise: std of the Gaussian noise on the simulated measurements in
    [0, 1] units (default 0 for CT, 0.01 otherwise); measured: measurements to use instead (the
    source is then only the reference of the metrics). prior: a loaded prior or a name/path for
    ``padis3d.load_prior`` (on ``device`` in ``precision``); tile, max_batch (``"auto"``: timed),
    memory_budget (bytes of tiles in flight): :func:`padis3d.image.inputs.image_prior`. settings: a
    :class:`padis3d.solvers.reconstruct.SamplerSettings`; default the table's settings for the task,
    ``sampler`` and ``budget`` (``cpu`` or ``paper``) with ``overrides`` (its fields, e.g. ``steps``,
    ``seed``) on top. adapt: :class:`padis3d.adapt.AdaptSettings` to adapt the prior while sampling
    (``adapter``: a saved adapter to start from). holdout_choice: choose between the DDS settings, DDS
    with ADMM-TV's weight as its TV term and ADMM-TV by held-out measurements
    (:mod:`padis3d.image.holdout`; about 3x the time of DDS alone); None (default): on wherever it applies
    (the DDS sampler without adaptation, the ``ct`` task over 180° and ``deblur``/``sr``, a side of 64, 128
    or 256: the sizes ADMM-TV's weight was tuned at); True where it does not apply is an error.
    limit_heap: glibc's heap kept from holding freed memory
    (:func:`padis3d.volume.pipeline.limit_heap_growth`; default: only with a memory budget, where it
    holds the peak; measured in ``benchmarks/heap_growth.py``). callback: the sampler's per-level dict
    (``i``, ``sigma``, ``residual``, ...); on_adapt_step: each adaptation step; on_batch_choice: the
    measured batch choice.
    """
    from padis3d.volume.pipeline import heap_limit_wanted, limit_heap_growth, release_free_memory

    if settings is None:
        settings = SamplerSettings.for_task(table_task(task if isinstance(task, str) else "", views), sampler, budget,
                                            **overrides)
    elif overrides:
        raise PadisError(f"give sampler settings either as settings= or as keywords, not both ({sorted(overrides)})")
    if heap_limit_wanted(limit_heap, memory_budget):
        limit_heap_growth()
    ref = reference_image(source, task if isinstance(task, str) else "operator", size, factor=factor, index=slice_index,
                          axis=axis, window=window, orientation=orientation, series=series)
    truth = ref.image
    if isinstance(task, str):
        op, baseline_fn, baseline_name = image_operator(task, tuple(truth.shape), views=views, span_deg=span_deg,
                                                        kernel=kernel, factor=factor, sr_mode=sr_mode)
    else:
        op, baseline_name = task, "pseudo-inverse"

        def baseline_fn(y: torch.Tensor) -> torch.Tensor:
            return op.pinv(y).clamp(0, 1)
    if noise is None and measured is None:
        noise = default_noise(task if isinstance(task, str) else "")
    y, noise = _measurements(op, truth, measured, noise, settings.seed)
    _preload_sampler_imports()
    stages = StagePeaks()
    loaded, patch_prior, choice = image_prior(prior, tuple(truth.shape), tile, max_batch=max_batch,
                                              memory_budget=memory_budget, device=device, precision=precision,
                                              on_batch_choice=on_batch_choice)
    from padis3d.io.orientation import PLANES
    from padis3d.priors.checkpoint import check_orientation

    check_orientation(loaded, PLANES[ref.plane][0])  # the slice is in the orientation the prior learned
    if adapt is not None:
        from padis3d.adapt.runtime import preload_adaptation

        preload_adaptation(patch_prior)
    release_free_memory()
    weights_mb = model_mb(loaded.model)
    overhead_mb = vm_rss_mb() - weights_mb  # interpreter, libraries, the ready prior: before sampling
    stages.mark("start")
    baseline = baseline_fn(y)
    tta = None
    if adapt is not None:
        from padis3d.adapt import TestTimeAdapter

        tta = (TestTimeAdapter.from_file(adapter, patch_prior, op, y, adapt) if adapter is not None
               else TestTimeAdapter(patch_prior, op, y, adapt))
        tta.on_step = on_adapt_step
    choosing = _holdout_applies(holdout_choice, task, settings, tta, span_deg, tuple(truth.shape))
    t0 = time.perf_counter()
    held_out = None
    if choosing:
        held_out = _choose(patch_prior, op, y, settings, baseline, callback, table_task(task, views),
                           max(truth.shape))
        result = held_out.image
    else:
        result = _sample(patch_prior, op, y, settings, baseline, tta, callback)
    seconds = time.perf_counter() - t0
    stages.mark("sample")
    image, base = result[0, 0].numpy(), baseline[0, 0].numpy()
    from padis3d.metrics import psnr, ssim

    method = held_out.chosen if held_out is not None else settings.sampler
    metrics = {name: {"psnr": psnr(img, truth), "ssim": ssim(img, truth)}
               for name, img in ((baseline_name, base), (method, image))}
    info = {"tile": list(patch_prior.grid.tile), "precision": loaded.precision, "orientation": loaded.orientation,
            "max_batch": choice.to_report() if choice is not None else max_batch,
            "checkpoint": str(loaded.path if prior is loaded else prior)}
    return ImageResult(image, base, ref, baseline_name, method, metrics, settings, op, noise, seconds, info,
                       overhead_mb, weights_mb, stages, tta, held_out)


def holdout_blocker(task: Any, sampler: str, adapting: bool, span_deg: float | None, side: int) -> str:
    """Why the held-out choice cannot run on this problem ('' where it can)."""
    from padis3d.baselines.tv_weights import TV_WEIGHTS

    if sampler != "dds":
        return "it needs the dds sampler"
    if adapting:
        return "adaptation has its own held-out validation"
    if not (task in ("deblur", "sr") or (task == "ct" and span_deg in (None, 180.0))):
        return "its candidates are set for the ct (over 180 degrees), deblur and sr tasks"
    if side not in TV_WEIGHTS:
        return f"ADMM-TV's weight was tuned at sides {sorted(TV_WEIGHTS)}, not {side}"
    return ""


def _holdout_applies(wanted: bool | None, task: Any, settings: SamplerSettings, tta: Any, span_deg: float | None,
                     shape: tuple[int, ...]) -> bool:
    """Whether the held-out choice runs: ``wanted`` None means wherever it applies; True where it does
    not is an error naming why."""
    if wanted is False:
        return False
    why = holdout_blocker(task, settings.sampler, tta is not None, span_deg, max(shape))
    if why and wanted:
        raise PadisError(f"the held-out choice does not apply here: {why} (turn it off)")
    return not why


def _choose(prior: Any, op: Any, y: torch.Tensor, settings: SamplerSettings, baseline: torch.Tensor,
            callback: Callable[[dict], None] | None, table: str, side: int) -> Any:
    """The held-out choice among :func:`padis3d.image.holdout.holdout_candidates`; the progress callback
    follows the final run only."""
    from padis3d.baselines import tv_weight
    from padis3d.image.holdout import holdout_candidates
    from padis3d.solvers.holdout_choice import choose_by_holdout

    def sample(prior_: Any, op_: Any, y_: torch.Tensor, s: SamplerSettings, baseline: torch.Tensor) -> torch.Tensor:
        return _sample(prior_, op_, y_, s, baseline, None, callback if op_ is op else None)

    candidates = holdout_candidates(prior, settings, baseline, tv_weight(table, side), sample=sample)
    choice = choose_by_holdout(candidates, op, y, seed=settings.seed)
    if not torch.isfinite(choice.image).all():
        raise PadisError("the reconstruction holds non-finite values (nothing written)")
    return choice


def _preload_sampler_imports() -> None:
    """What the samplers import on first use, loaded before the start-up memory is measured:
    torch.autograd.grad (the samplers' data gradients) imports sympy (~40 MiB) through this module."""
    import importlib

    importlib.import_module("torch.fx.experimental.symbolic_shapes")
