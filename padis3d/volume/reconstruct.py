"""``padis3d.reconstruct_volume``: a volume reconstruction in one call, out of core and resumable.

The input (a file read band by band, or an array) is windowed to [0, 1] and resized in-plane into
zarr work arrays with the simulated measurements and the baseline (:mod:`padis3d.volume.pipeline`);
DDS runs over the bands with the prior (:class:`padis3d.volume.runner.VolumeRun`; one Tweedie pass for
``denoise``); the metrics stream over the bands. Band sizes come from ``memory_budget``, so the peak
memory is the budget plus the model plus a fixed overhead, whatever the number of slices.

A work folder makes the run resumable: rerunning the same call continues from the last finished
level and ends with exactly the uninterrupted result; a folder holding a run of another identity is
refused unless ``restart``. ``denoise`` returns by default the prior's Tweedie estimate ``E[x | y]`` at
the noise level (one denoiser pass over the noisy volume, which is the diffusion state at
``sigma = noise``); ``denoiser="dds"`` samples from noise instead.

Example (``docs/api/volume_example.py``, which the test suite runs)::

    import padis3d
    result = padis3d.reconstruct_volume("scan.nii.gz", task="ct3d-parallel", views=90, span_deg=90,
                                        prior="chest128_slab3", steps=50, work_dir="work")
    print(result.metrics)           # PSNR/SSIM per plane of the FBP baseline and of DDS
    result.write("reconstruction")  # back in the file's units, orientation and format
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from padis3d.errors import PadisError
from padis3d.memory import StagePeaks, model_mb, vm_rss_mb
from padis3d.limits import MIN_SIDE, check_tile_fits
from padis3d.volume.result import VolumeResult
from padis3d.volume.runner import VolumeSettings
from padis3d.volume.source import intensity_window, is_array, open_source
from padis3d.volume.tasks import VolumeTask, volume_task, whole_volume_measurements
from padis3d.volume.work import KeyIdentity, WorkIdentity, check_work_identity, record_work_identity, undo_work

Callback = Callable[[dict[str, Any]], None]
SETTING_FIELDS = tuple(f.name for f in fields(VolumeSettings))


@dataclass
class _Priors:
    """The built prior of a run and what the report says of it."""

    prior: Any  # PatchPrior, or TwoScalePrior around one
    fine: Any
    loaded: Any
    lowres: Any
    model_mb: float
    info: dict


def _axial_range(source: Any, slices: tuple[int, int] | None) -> tuple[int, int]:
    """``(z0, z1)``: the axial range to reconstruct; PadisError for a range outside the volume or
    non-square slices (the volume tasks resize to ``size x size``; the parallel beam needs a square)."""
    nz_all, h, w = source.shape
    z0, z1 = slices if slices else (0, nz_all)
    if not 0 <= z0 < z1 <= nz_all:
        raise PadisError(f"--slices {z0} {z1} is outside 0..{nz_all} of {source.source}")
    if h != w:
        raise PadisError(f"slices of {source.source} are {h}x{w} (y x x): the volume tasks need square slices; "
                         f"crop or pad them to a square first")
    return int(z0), int(z1)


def _volume_shape(z0: int, z1: int, size: int) -> tuple[int, int, int]:
    """The reconstructed shape ``(z1 - z0, size, size)``; PadisError below :data:`MIN_SIDE` on any axis."""
    shape = (z1 - z0, size, size)
    if min(shape) < MIN_SIDE:  # the metrics' SSIM window; fail before the run, not after it
        raise PadisError(f"the volume to reconstruct is {shape[0]} slices of {size}x{size}: every axis needs "
                         f">= {MIN_SIDE} voxels (the SSIM window of the report); widen --slices or --size")
    return shape


def _check_whole_volume_budget(task: VolumeTask, shape: tuple[int, int, int], budget: int | None) -> None:
    """A whole-volume operator (cone beam) holds the volume and its projections: PadisError over ``budget``."""
    from padis3d.volume.runner import whole_volume_bytes

    if task.whole_operator is None or budget is None:
        return
    need = whole_volume_bytes(shape, tuple(task.whole_operator.out_shape))
    if need > budget:
        raise PadisError(f"{task.name} holds the whole volume and its projections in memory (about "
                         f"{need / 2**20:.2f} MiB, budget {budget / 2**20:.2f} MiB): raise --memory-budget-mb "
                         f"or reconstruct fewer --slices")


def _load(prior: Any, device: str | torch.device, precision: str) -> Any:
    """A loaded :class:`padis3d.priors.checkpoint.Prior` as it is; a name or path loaded."""
    from padis3d.priors.checkpoint import Prior

    if isinstance(prior, Prior):
        return prior
    import padis3d

    if prior is None:
        from padis3d.priors.registry import DEFAULT_PRIOR

        prior = DEFAULT_PRIOR
    from padis3d.device import resolve_device

    return padis3d.load_prior(prior, device=resolve_device(device), precision=precision)


def _build_priors(prior: Any, lowres: Any, lowres_weight: float | str, shape: tuple[int, int, int],
                  tile: int | str, max_batch: int | str | None, budget: int | None, device: str | torch.device,
                  precision: str, callback: Callback | None) -> _Priors:
    """The volume prior of ``shape`` (patch, slab or cube; two-scale with ``lowres``), its batch
    (``max_batch="auto"``: measured on one band of tiles), checked for the canonical axial orientation."""
    from padis3d.priors.checkpoint import check_orientation
    from padis3d.priors.factory import volume_prior_from

    loaded = _load(prior, device, precision)
    choice = None
    if max_batch == "auto":  # timed on one band of tiles (the most the out-of-core runner has in flight)
        choice = _measure_batch(volume_prior_from(loaded, shape, tile), loaded.device, budget)
        max_batch = choice.chosen
        if callback is not None:
            callback({"stage": "max_batch", "choice": choice})
    built = volume_prior_from(loaded, shape, tile, max_batch=max_batch)
    weights_mb, low, lowres_info = model_mb(loaded.model), None, None
    if lowres is not None:  # the two-scale prior: the coarse prior runs in memory on the block averages
        from padis3d.priors.coarse_weight import weight_for, weight_report
        from padis3d.priors.factory import two_scale_prior_from

        low = _load(lowres, device, precision)
        weight = weight_for(lowres_weight, loaded.path, low.path)
        built = two_scale_prior_from(built, low, shape, max_batch=max_batch, coarse_weight=weight)
        weights_mb += model_mb(low.model)
        lowres_info = {"checkpoint": str(low.path if lowres is low else lowres),
                       "factor": list(built.factor), "coarse_tile": list(built.coarse.grid.tile),
                       "weight": weight_report(built.coarse_weight)}
    fine = built.fine if low is not None else built
    for each in (loaded, low) if low is not None else (loaded,):
        check_orientation(each, "axial")  # the volume tasks stream canonical axial slices
    info = {"tile": list(fine.grid.tile), "precision": loaded.precision, "orientation": loaded.orientation,
            "max_batch": choice.to_report() if choice is not None else max_batch, "lowres": lowres_info,
            "checkpoint": str(loaded.path if prior is loaded else prior)}
    return _Priors(built, fine, loaded, low, weights_mb, info)


def _measure_batch(prior: Any, device: torch.device, budget: int | None) -> Any:
    """``max_batch="auto"``: :func:`padis3d.priors.batch_size.measure_tile_batch` on one band of tiles (one
    tile row along z: what ``tiling.map_tiles_store`` has in flight), within what the memory budget leaves
    for tiles once a band is held (as the runner plans it)."""
    from padis3d.priors.batch_size import measure_tile_batch
    from tiling import tile_bytes
    from tiling.store import store_tile_budget

    g = prior.grid
    left = None if budget is None else store_tile_budget(g, 1, 1, 1, 4, tile_bytes(g, 1, torch.float32)
                                                         + prior.network_bytes(), budget)
    return measure_tile_batch(prior, None, device, memory_budget=left, tiles=g.num_tiles // g.counts[0])


def _settings(settings: VolumeSettings | None, overrides: dict[str, Any], band: int, budget: int | None,
              tweedie: bool, noise: float) -> VolumeSettings:
    """The run's :class:`VolumeSettings`: ``settings`` (default: its defaults) with ``overrides``, the
    band and the budget; for the Tweedie denoiser one pass at the noise level from the measurements."""
    unknown = sorted(set(overrides) - set(SETTING_FIELDS))
    if unknown:
        raise PadisError(f"unknown sampler setting(s) {', '.join(unknown)}; VolumeSettings has "
                         f"{', '.join(SETTING_FIELDS)}")
    s = replace(settings or VolumeSettings(), **overrides, band=band, memory_budget=budget)
    if tweedie:  # the noisy volume is the state at σ = noise: one denoiser pass, no data step
        if not noise > 0:
            raise PadisError(f"--denoiser tweedie denoises at the noise level: give --noise > 0, got {noise}")
        s = replace(s, sigma_max=noise, sigma_min=noise / 2, steps=1, cg_iters=0, init="measurements")
    return s


def _source_digest(source: Any, rows: int) -> str:
    """SHA-256 of what the run reads: a file's (or folder's) bytes, or an array's values band by band."""
    from padis3d.io.content_hash import content_sha256

    if source.kind != "array":
        return content_sha256(source.source)
    h = hashlib.sha256(repr(tuple(source.shape)).encode())
    for z0 in range(0, source.shape[0], rows):
        h.update(np.ascontiguousarray(source.read(z0, min(z0 + rows, source.shape[0]))).tobytes())
    return h.hexdigest()


def default_identity(source: Any, priors: _Priors, task: VolumeTask, rows: int, options: dict) -> KeyIdentity:
    """The identity of a library call made without one: the input's content, the priors' files, the task's
    geometry (or the operator's repr) and ``options`` (what else decides the result)."""
    from padis3d.io.content_hash import content_sha256

    record = {"input": _source_digest(source, rows), "prior": content_sha256(priors.loaded.path),
              "lowres": None if priors.lowres is None else content_sha256(priors.lowres.path),
              "task": task.name, "geometry": task.geometry, "options": options,
              "operator": repr(task.whole_operator if task.whole_operator is not None else task.slice_operator)}
    text = json.dumps(record, sort_keys=True, default=str)
    return KeyIdentity(hashlib.sha256(text.encode()).hexdigest()[:16])


def _prepare(source: Any, work: Path, identity: WorkIdentity, restart: bool, created: bool, task: VolumeTask,
             plan: dict, settings: VolumeSettings, callback: Callback | None) -> Any:
    """Check and claim the work folder, then window, resize and measure the input into it
    (:func:`padis3d.volume.pipeline.prepare_volume`); a failed preparation leaves the folder as it was."""
    from padis3d.volume import pipeline
    from padis3d.volume.runner import check_resumable, discard_progress

    fresh = created or not work.exists()  # its arrays go if preparation fails
    if restart:  # computed afresh: progress and prepared arrays alike
        discard_progress(work)
    else:  # before the preparation rewrites the work folder's arrays
        check_resumable(work, settings)
        check_work_identity(work, identity)
    existed = set(work.iterdir()) if work.is_dir() else set()  # an earlier run's arrays are never dropped
    total, done = plan["shape"][0], [0]

    def progress(n: int) -> None:
        done[0] += n
        if callback is not None:
            callback({"stage": "prepare", "slices": n, "done": done[0], "total": total})
    try:
        record_work_identity(work, identity)
        return pipeline.prepare_volume(source, plan["slices"], plan["window"], plan["shape"][1], task.forward,
                                       tuple(task.slice_operator.out_shape), task.baseline,
                                       0.0 if task.whole_operator is not None else task.noise, settings.seed, work,
                                       settings.band, plan["rows"]["prepare"], {"run": identity.key},
                                       progress=progress, reuse=not restart)
    except BaseException:  # bad voxels or a truncated file found mid-stream: drop the half-prepared arrays
        undo_work(work, fresh, existed)
        raise


def _sample(priors: _Priors, task: VolumeTask, prep: Any, work: Path, settings: VolumeSettings, tag: str,
            restart: bool, scheduler: Any, callback: Callback | None) -> tuple[Any, Any, int, float]:
    """The DDS levels over the bands: ``(reconstruction zarr, baseline, resumed-from step, seconds)``."""
    from padis3d.volume.pipeline import release_free_memory
    from padis3d.volume.runner import VolumeRun

    if task.whole_operator is None:
        run = VolumeRun(priors.prior, task.slice_operator, prep.y, work, settings, scheduler=scheduler, tag=tag,
                        restart=restart)
        baseline = prep.baseline
    else:
        y, baseline = whole_volume_measurements(task.whole_operator, prep.truth[...], task.noise, settings.seed)
        run = VolumeRun(priors.prior, task.whole_operator, y, work, settings, scheduler=scheduler, separable=False,
                        restart=restart, tag=tag)
    shape = tuple(prep.truth.shape)
    result = zarr.create_array(store=work / "reconstruction.zarr", shape=shape, chunks=(settings.band, *shape[1:]),
                               dtype="f4", overwrite=True)
    done = run.committed_step()
    if callback is not None:
        callback({"stage": "sample", "start": done, "n": settings.steps})

    def level_done(info: dict) -> None:
        release_free_memory()  # each level hands its freed band buffers back
        if callback is not None:
            callback({"stage": "sample", **info})
    t0 = time.perf_counter()
    run.run(result, callback=level_done)
    return result, baseline, done, time.perf_counter() - t0


def reconstruct_volume(source: str | Path | np.ndarray | Any, task: str | Any = "ct3d-parallel", *,
                       prior: Any = None, settings: VolumeSettings | None = None, views: int = 20,
                       span_deg: float | None = None, noise: float | None = None, denoiser: str = "tweedie",
                       slices: tuple[int, int] | None = None, size: int = 128,
                       window: tuple[float, float] | None = None, orientation: str | None = None,
                       series: str | None = None, tile: int | str = "auto", max_batch: int | str | None = None,
                       lowres: Any = None, lowres_weight: float | str = "measured",
                       device: str | torch.device = "cpu", precision: str = "auto",
                       memory_budget: int | None = None, band: int = 16, work_dir: str | Path | None = None,
                       restart: bool = False, identity: WorkIdentity | str | Callable[[], WorkIdentity] | None = None,
                       work_created: bool = False, scheduler: Any = None, limit_heap: bool | None = None,
                       callback: Callback | None = None, **sampler: Any) -> VolumeResult:
    """Reconstruct a volume with a diffusion prior; returns a :class:`padis3d.volume.result.VolumeResult`.

    source: a NIfTI / zarr / DICOM-series / ``.npy`` path (read band by band in the canonical orientation;
    ``orientation`` declares how an npy/zarr file is stored, ``series`` picks a DICOM series), or a
    ``(z, y, x)`` array (numpy or zarr) already canonical (:mod:`padis3d.io.orientation`), any units.
    Slices must be square. task: ``"ct3d-parallel"`` (``views`` over ``span_deg`` degrees, default
    180), ``"ct3d-cone"`` (astra CUDA; default 360), ``"denoise"`` (``denoiser`` ``"tweedie"`` or
    ``"dds"``), or an operator on slices ``(S, S)`` or on the whole volume (:mod:`padis3d.volume.tasks`).
    noise: std of the Gaussian noise added to the simulated measurements (default 0.05 for denoise,
    else 0), in [0, 1] units. slices: the axial range ``[z0, z1)`` (default all); size: the in-plane side
    ``S`` the slices are resized to; window: the input values mapped to [0, 1] (default -1000..1000 HU
    for NIfTI/DICOM, else the volume's range). prior: a loaded :class:`padis3d.priors.checkpoint.Prior`,
    or a name or path for :func:`padis3d.load_prior` (on ``device`` in ``precision``; default the
    shipped 2D patch prior, run slice by slice); ``tile``: patch size or ``"auto"``; ``max_batch``:
    tiles per network call, or ``"auto"`` (timed). lowres / lowres_weight: the coarse prior of the
    two-scale prior and its weight (``"measured"`` or a number in [0, 1]). settings / ``**sampler``: the
    DDS settings (:class:`padis3d.volume.runner.VolumeSettings` fields: ``steps``, ``sigma_max``,
    ``sigma_min``, ``rho``, ``cg_iters``, ``eta``, ``seed``). memory_budget: bytes of band and tile work
    in flight (None: unbounded); band: slices per chunk of work. work_dir: where the resumable state
    lives (None: a temporary folder, removed at the end, and numpy arrays in the result); ``restart``
    discards its progress; ``identity``: what owns the folder (:mod:`padis3d.volume.work`; a text is a
    key; a callable without arguments is called once every check has passed, before the folder is
    touched; default: hashes of the input, prior and task); ``work_created``: the caller made the folder for
    this run (a failed preparation removes it whole). scheduler: a dask scheduler name or
    ``distributed.Client``. limit_heap: keep freed memory from staying resident
    (:func:`padis3d.volume.pipeline.limit_heap_growth`; default: with a memory budget). callback: called
    with a dict per event: ``{"stage": "prepare", "slices", "done", "total"}`` per band prepared,
    ``{"stage": "sample", "start", "n"}`` once, then ``{"stage": "sample", "i", "n", "sigma"}`` per level,
    and ``{"stage": "max_batch", "choice"}`` with ``max_batch="auto"``.
    """
    from padis3d.volume.pipeline import heap_limit_wanted, limit_heap_growth, plan_rows, release_free_memory

    if heap_limit_wanted(limit_heap, memory_budget):
        limit_heap_growth()
    if tile is None:
        raise PadisError("--tile whole is for 2D tasks; a volume needs a patch or slab prior: use an int or 'auto'")
    if denoiser not in ("tweedie", "dds"):
        raise PadisError(f"denoiser must be 'tweedie' or 'dds', got {denoiser!r}")
    stages, src = StagePeaks(), open_source(source, orientation, series)
    z0, z1 = _axial_range(src, slices)
    lo_hi = intensity_window(src, window, plan_rows(memory_budget, 8 * src.shape[1] * src.shape[2], band))
    shape, zoom = _volume_shape(z0, z1, size), src.shape[1] / size
    spec = volume_task(task, shape, views=views, span_deg=span_deg, noise=noise)  # no astra CUDA: fails here
    _check_whole_volume_budget(spec, shape, memory_budget)
    check_tile_fits(tile, shape)
    band = min(band, shape[0])  # a band of the whole volume is the most there is
    rows = band_rows(memory_budget, src.shape[1:], size, tuple(spec.slice_operator.out_shape), band)
    priors = _build_priors(prior, lowres, lowres_weight, shape, tile, max_batch, memory_budget, device, precision,
                           callback)
    tweedie = spec.name == "denoise" and denoiser == "tweedie"
    run_settings = _settings(settings, sampler, band, memory_budget, tweedie, spec.noise)
    from padis3d.volume.runner import check_volume_budget

    check_volume_budget(priors.fine, run_settings)  # measures the network's activations per tile (cached)
    release_free_memory()  # that measurement's freed buffers
    overhead_mb = vm_rss_mb() - priors.model_mb  # interpreter, libraries, allocator, the ready prior
    stages.mark("start")
    temporary = tempfile.TemporaryDirectory(prefix="padis3d-volume-") if work_dir is None else None
    work = Path(temporary.name if temporary is not None else work_dir)
    try:
        identity = _owner(identity, lambda: default_identity(src, priors, spec, rows["prepare"], {
            "window": lo_hi, "tile": tile, "max_batch": max_batch, "device": str(device),
            "lowres_weight": lowres_weight, "denoiser": denoiser}))
        plan = {"shape": shape, "slices": (z0, z1), "window": lo_hi, "rows": rows}
        prep = _prepare(src, work, identity, restart, work_created, spec, plan, run_settings, callback)
        stages.mark("prepare")
        release_free_memory()  # each stage hands its freed band buffers back before the next one
        # a resumed run continues with the same identity (options, input, priors) and precision (mixing is refused)
        tag = f"{prep.key} run {identity.key} precision {priors.loaded.precision}"
        result, baseline, done, seconds = _sample(priors, spec, prep, work, run_settings, tag, restart, scheduler,
                                                  callback)
        stages.mark("sample")
        t1 = time.perf_counter()
        method = "tweedie" if tweedie else "dds"
        metrics = _metrics({spec.baseline_name: baseline, method: result}, prep.truth, rows["metrics"])
        timings = {"prepare": prep.seconds, "sample": seconds, "metrics": time.perf_counter() - t1}
        stages.mark("metrics")
        arrays = [result, baseline, prep.truth]
        if temporary is not None:  # no work folder to keep them in: the arrays come back in memory
            arrays = [np.asarray(a[...]) for a in arrays]
    finally:
        if temporary is not None:
            temporary.cleanup()
    return VolumeResult(*arrays, spec.baseline_name, method, metrics, spec.name, src, shape, (z0, z1), lo_hi, zoom,
                        spec.noise, spec.geometry, run_settings, identity.to_json(), priors.info, done, prep.reused,
                        seconds, timings, overhead_mb, priors.model_mb, rows, stages,
                        None if temporary is not None else work)


def band_rows(budget: int | None, in_plane: tuple[int, int], size: int, meas_shape: tuple[int, ...],
              band: int) -> dict[str, int]:
    """Slices per band of each streamed stage (``prepare``, ``metrics``, ``write``) so that a band's working
    set fits ``budget`` bytes (``band`` when there is no budget): the memory plan of a run."""
    from padis3d.metrics import metrics_band_bytes
    from padis3d.volume.pipeline import plan_rows, prep_bytes_per_row

    return {"prepare": plan_rows(budget, prep_bytes_per_row(in_plane, size, meas_shape), band, band),
            "metrics": max(1, plan_rows(budget, metrics_band_bytes(size * size), band + 6) - 6),
            "write": plan_rows(budget, 16 * size * size, band, band)}


def _owner(identity: WorkIdentity | str | Callable[[], WorkIdentity] | None,
           default: Callable[[], WorkIdentity]) -> WorkIdentity:
    """The work folder's owner: as given, a text as a :class:`KeyIdentity`, a callable called now (after
    every check, before the folder is touched), None: ``default()``."""
    if identity is None:
        return default()
    if isinstance(identity, str):
        return KeyIdentity(identity)
    return identity() if callable(identity) else identity


def _metrics(volumes: dict[str, Any], truth: Any, rows: int) -> dict[str, dict[str, float]]:
    """:func:`padis3d.metrics.volume_metrics_banded` of each volume against ``truth`` (the reconstruction is
    read clipped to the prior's range, the intensity window)."""
    from padis3d.metrics import volume_metrics_banded

    return {name: volume_metrics_banded(vol, truth, rows) for name, vol in volumes.items()}


__all__ = ["reconstruct_volume", "default_identity"]
