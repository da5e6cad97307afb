"""Out-of-core 3D reconstruction (DDS with a patch/slab prior) over zarr stores, resumable.

The sampler state is a canvas-sized zarr array on disk, chunked along z. Each noise level:
(1) the prior's denoiser streams over the state tile band by tile band
(:func:`tiling.map_tiles_store`) into a zarr array ``D``; (2) band by band along z, the image
part of ``D`` is made data-consistent by CG on ``||A x - y||² + ρ||x - D||²`` (parallel-beam
CT is separable by slice, so each band needs only its own sinogram rows) and the next state
is written to the other of two state buffers; (3) the step index is committed atomically.
An operator that is not separable by slice (cone beam) gets the whole image region at once in
step (2) (``separable=False``: the volume and its projections must fit in memory), while the
denoiser and the re-noising still stream band by band.
A two-scale prior (:class:`padis3d.priors.two_scale.TwoScalePrior` around a PatchPrior) adds,
between (1) and (2), its coarse term ``U [D_c(B x; σ_c) - B D_f]``: one pass over the bands sums
the blocks of the state and of ``D`` (both block averages, ``1 / f³`` of the voxels, are held in
memory), the coarse prior denoises in memory, and step (2) adds the upsampled correction to each
band's ``D`` as it reads it; so the memory stays flat in the slices up to the coarse volume.
A run killed at any moment resumes from the last committed step and, because every random
draw is a pure function of ``(seed, step, band)``, ends with exactly the uninterrupted result.
dask schedules the band work: threads by default, or a ``distributed.Client``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import torch
import zarr

from padis3d.atomic import is_disk_full, write_json
from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior
from padis3d.priors.two_scale import TwoScalePrior, axis_factors, block_average, block_sizes, upsample_nearest
from padis3d.solvers.dds import data_consistency
from tiling import map_tiles_store, plan_batch, tile_bytes
from tiling.store import store_tile_budget


@dataclass(frozen=True)
class VolumeSettings:
    """DDS settings for a volume: levels, data weight ρ, CG steps, re-noising η, seed, and the
    z-band (slices per chunk of work) and memory budget of the tiled network passes."""

    sigma_max: float = 3.0
    sigma_min: float = 0.005
    steps: int = 40
    rho: float = 1.0
    cg_iters: int = 5
    eta: float = 0.85
    seed: int = 0
    band: int = 16
    memory_budget: int | None = None
    init: str = "noise"  # "measurements": the state starts as y (denoising: y = x + σ_max n)

    def __post_init__(self) -> None:
        if self.init not in ("noise", "measurements"):
            raise PadisError(f"init must be 'noise' or 'measurements', got {self.init!r}")
        if self.steps < 1:
            raise PadisError(f"steps must be >= 1, got {self.steps}")
        if not (0 < self.sigma_min < self.sigma_max < math.inf):
            raise PadisError(f"need 0 < sigma_min < sigma_max < inf, got {self.sigma_min}, {self.sigma_max}")
        if not (self.rho > 0 and math.isfinite(self.rho)) or self.cg_iters < 0 or not 0 <= self.eta <= 1:
            raise PadisError(f"need rho > 0, cg_iters >= 0 and 0 <= eta <= 1, got {self.rho}, {self.cg_iters}, "
                             f"{self.eta}")
        if self.band < 1:
            raise PadisError(f"band (slices per chunk of work) must be >= 1, got {self.band}")

    def sigmas(self) -> np.ndarray:
        return np.geomspace(self.sigma_max, self.sigma_min, self.steps)


def check_volume_budget(prior: PatchPrior, settings: VolumeSettings) -> None:
    """PadisError/TilingError unless ``max_batch`` is valid and ``settings.memory_budget`` holds at
    least one band of tiles with one tile in flight (the error gives the minimum); no file is touched."""
    g = prior.grid
    plan_batch(1, 1, max_batch=prior.limits["max_batch"])
    if settings.memory_budget is not None:
        store_tile_budget(g, 1, 1, 1, 4, tile_bytes(g, 1, torch.float32) + prior.network_bytes(),
                          settings.memory_budget)


def whole_volume_bytes(volume: tuple[int, ...], projections: tuple[int, ...]) -> int:
    """Memory of a whole-volume CG data step in float32: the image region, its CG vectors
    (x, r, p, A p, right-hand side, ...: 8 copies) and the projections (y and two A x)."""
    return 4 * (8 * math.prod(volume) + 3 * math.prod(projections))


SHIFTS, NOISE, COARSE_SHIFTS = 1, 2, 3  # independent random streams


def _rng(*key: int) -> torch.Generator:
    """A generator that is a pure function of ``key`` (seed, stream, step, band)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))


def _forget_task_names() -> None:
    """Empty dask's memo of task-name prefixes (``dask.utils.key_split``, an LRU cache of
    100 000 names): every level makes new task names, so left alone it would grow with the
    number of bands times levels, i.e. with the volume, up to tens of MB."""
    cache_clear = getattr(getattr(dask.utils, "key_split", None), "cache_clear", None)
    if cache_clear is not None:
        cache_clear()


def check_resumable(work_dir: str | Path, settings: VolumeSettings, key: str | None = None) -> None:
    """PadisError when ``work_dir`` holds committed progress of another run, so that a rerun never
    discards finished work silently. With ``key`` (the run's full identity: settings, grid,
    measurements) any other identity is refused; without it (before the measurements exist) only
    other settings are."""
    try:
        stored = json.loads((Path(work_dir) / "progress.json").read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return
    if int(stored.get("step", 0)) == 0 or (key is not None and stored.get("key") == key):
        return
    now = json.loads(json.dumps(asdict(settings)))
    before = stored.get("settings", {})
    differ = [f"{k} {before.get(k)!r} -> {v!r}" for k, v in now.items() if before.get(k) != v]
    if key is None and not differ:
        return
    raise PadisError(f"{work_dir} holds a run at step {stored['step']} made with "
                     + (f"other settings ({'; '.join(differ)})" if differ else "other input, geometry, prior or precision")
                     + ": rerun its command to resume it, add --restart to discard it, or use another --out/--work-dir")


def discard_progress(work_dir: str | Path) -> None:
    """Forget the committed progress in ``work_dir``: the next run there starts at step 0."""
    (Path(work_dir) / "progress.json").unlink(missing_ok=True)


class VolumeRun:
    """A resumable reconstruction in ``work_dir`` (state buffers, denoised canvas, progress)."""

    def __init__(self, prior: PatchPrior | TwoScalePrior, slice_operator: Any, y: np.ndarray | zarr.Array,
                 work_dir: str | Path,
                 settings: VolumeSettings, scheduler: Any = None, tag: str = "", separable: bool = True,
                 restart: bool = False):
        """``y``: measurements ``(Z, *slice_operator.out_shape)``; ``tag``: an identity of their
        contents (e.g. a hash of how they were made) that, like the settings, must match for a
        rerun to resume instead of starting over. ``separable=False``: ``slice_operator`` maps the
        whole volume ``(1, 1, Z, Y, X) -> (1, 1, *out_shape)`` and ``y`` has its ``out_shape``.
        A work folder with progress of another run is refused (:func:`check_resumable`) unless
        ``restart``, which starts this run over it (from step 0, even where the progress is this
        run's own). ``prior``: a PatchPrior, or a TwoScalePrior whose
        fine prior is one (its coarse prior runs in memory on the block averages)."""
        self.coarse: Any = None
        self.two_scale: TwoScalePrior | None = None
        self.factor: tuple[int, ...] = (1, 1, 1)
        self._correction: torch.Tensor | None = None
        if isinstance(prior, TwoScalePrior):
            if type(prior.fine) is not PatchPrior:
                raise PadisError(f"the out-of-core volume run streams a two-scale prior's fine prior as a plain "
                                 f"PatchPrior, got {type(prior.fine).__name__}")
            self.two_scale, self.coarse = prior, prior.coarse
            self.factor = axis_factors(prior.factor, len(prior.fine.grid.shape))
            prior = prior.fine
        g = prior.grid
        if g.ndim != 3:
            raise PadisError(f"a volume run needs a 3D prior grid, got {g}")
        if type(prior) is not PatchPrior:
            raise PadisError(f"the out-of-core volume run streams a plain PatchPrior, got {type(prior).__name__} "
                             "(slice-jump slabs run in memory: padis3d.solvers.dds)")
        z, views_bins = g.shape[0], tuple(slice_operator.out_shape)
        expected = (z, *views_bins) if separable else views_bins
        if tuple(y.shape) != expected:
            raise PadisError(f"measurements of shape {tuple(y.shape)} do not match the volume: expected "
                             f"{expected}" + (f" for {z} slices" if separable else " (the operator's output)"))
        takes = tuple(slice_operator.in_shape)
        if takes != (g.shape[1:] if separable else g.shape):
            raise PadisError(f"the {'slice ' if separable else ''}operator takes {takes} "
                             f"{'images' if separable else 'volumes'}, the volume is {g.shape}")
        self.prior, self.op, self.y, self.settings, self.scheduler = prior, slice_operator, y, settings, scheduler
        self.separable, self._estimate = separable, None
        if settings.init == "measurements" and not (separable and views_bins == g.shape[1:]):
            raise PadisError("init 'measurements' needs measurements that are images of the slices (denoising), "
                             f"got measurements of shape {tuple(y.shape)} for slices of {g.shape[1:]}")
        check_volume_budget(prior, settings)
        if not separable and settings.memory_budget is not None:
            need = whole_volume_bytes(g.shape, views_bins)
            if need > settings.memory_budget:
                raise PadisError(f"the data step of an operator that is not separable by slice (cone beam) holds "
                                 f"the whole volume and its projections: about {need / 2**20:.2f} MiB, over the "
                                 f"memory budget of {settings.memory_budget / 2**20:.2f} MiB; raise the budget")
        self.dir = Path(work_dir)
        identity = {"settings": asdict(settings), "grid": repr(g), "y": list(y.shape)}
        if getattr(getattr(prior, "denoiser", None), "slab_ends", None):  # runs before slab tiles at the ends got real slices differ
            identity["slab_ends"] = prior.denoiser.slab_ends
        if self.coarse is not None:
            identity["coarse"] = {"grid": repr(getattr(self.coarse, "grid", None)), "factor": list(self.factor),
                                  "padding": "noisy"}  # runs before its canvas padding got σ_c noise differ
            weights = [self.two_scale.weight(float(sigma)) for sigma in settings.sigmas()]
            if any(w != 1 for w in weights):  # equation (1) runs keep the identity they had before weights
                identity["coarse"]["weights"] = weights
        if not separable:
            identity["operator"] = repr(slice_operator)
        if tag:
            identity["tag"] = tag
        fingerprint = json.dumps(identity, sort_keys=True)
        self.key = hashlib.sha1(fingerprint.encode()).hexdigest()[:12]
        if restart:
            discard_progress(self.dir)
        else:
            check_resumable(self.dir, settings, self.key)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            chunks = (settings.band, *g.canvas_shape[1:])
            self.states = [self._array(f"state{i}.zarr", g.canvas_shape, chunks) for i in (0, 1)]
            self.denoised = self._array("denoised.zarr", g.canvas_shape, chunks)
        except OSError as exc:
            raise self._disk_error(exc) if is_disk_full(exc) else exc

    def _disk_error(self, exc: OSError) -> PadisError:
        step = self.committed_step()
        return PadisError(f"no space left on the device while writing the work state in {self.dir} "
                          f"({exc.strerror or exc}): free disk space and rerun the same command; it resumes "
                          f"from the last committed step ({step}), which is intact")

    def __getstate__(self) -> dict:
        """Band tasks travel to dask workers without the client that schedules them."""
        return {**self.__dict__, "scheduler": None}

    def _array(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> zarr.Array:
        path = self.dir / name
        try:
            arr = zarr.open_array(path, mode="r+")
            if tuple(arr.shape) == shape:
                return arr
        except (FileNotFoundError, ValueError, KeyError):
            pass
        return zarr.create_array(store=path, shape=shape, chunks=chunks, dtype="f4", overwrite=True)

    # -- progress -------------------------------------------------------------------------
    @property
    def progress_path(self) -> Path:
        return self.dir / "progress.json"

    def committed_step(self) -> int:
        """Levels already done (0: start, or another run's leftovers)."""
        try:
            p = json.loads(self.progress_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return 0
        return int(p["step"]) if p.get("key") == self.key else 0

    def _commit(self, step: int) -> None:
        write_json(self.progress_path, {"key": self.key, "step": step, "settings": asdict(self.settings)})

    # -- band work ----------------------------------------------------------------------------
    def _bands(self) -> list[tuple[int, int]]:
        n, b = self.prior.grid.canvas_shape[0], self.settings.band
        return [(a, min(a + b, n)) for a in range(0, n, b)]

    def _run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``fn(*args, a, b)`` for every band ``[a, b)``, scheduled by dask; their results in band order."""
        delayed = [dask.delayed(fn)(*args, a, b) for a, b in self._bands()]
        if self.scheduler is None or isinstance(self.scheduler, str):
            # under a memory budget one band at a time: a band's float64 working set is not in the
            # budget, and one per core in flight added ~15-30 MiB to the peak (chest CT, 18 MiB)
            workers = {"num_workers": 1} if self.settings.memory_budget is not None else {}
            return list(dask.compute(*delayed, scheduler=self.scheduler or "threads", **workers))
        return list(self.scheduler.compute(delayed, sync=True))

    def _initial_band(self, a: int, b: int) -> None:
        shape = (b - a, *self.prior.grid.canvas_shape[1:])
        z = torch.randn(shape, generator=_rng(self.settings.seed, NOISE, 0, a))
        state = (self.settings.sigma_max * z).numpy()
        g, mz = self.prior.grid, self.prior.grid.pad[0]
        lo, hi = max(a, mz), min(b, mz + g.shape[0])
        if self.settings.init == "measurements" and hi > lo:  # the noisy slices are the state at σ_max
            state[(slice(lo - a, hi - a), *g.image_slices()[1:])] = np.asarray(self.y[lo - mz:hi - mz])
        self.states[0][a:b] = state

    def _step_band(self, step: int, src: zarr.Array, dst: zarr.Array, a: int, b: int) -> None:
        """Data consistency on the image slices of canvas rows ``[a, b)``, then the next state
        (or, at the last level, the corrected estimate) into ``dst``."""
        g, s = self.prior.grid, self.settings
        sigmas = s.sigmas()
        x, d = torch.from_numpy(src[a:b]).double(), torch.from_numpy(self.denoised[a:b]).double()
        mz = g.pad[0]
        lo, hi = max(a, mz), min(b, mz + g.shape[0])  # image slices inside this band
        if self._correction is not None and hi > lo:  # the two-scale prior's coarse term
            d[(slice(lo - a, hi - a), *g.image_slices()[1:])] += self._upsampled_correction(lo - mz, hi - mz)
        corrected = d.clone()
        if hi > lo and not self.separable:
            inner = (slice(lo - a, hi - a), *g.image_slices()[1:])
            corrected[inner] = torch.from_numpy(self._estimate[lo - mz:hi - mz]).double()
        elif hi > lo:
            inner = (slice(lo - a, hi - a), *g.image_slices()[1:])
            y = torch.from_numpy(np.asarray(self.y[lo - mz:hi - mz], dtype=np.float32))[:, None]
            est = data_consistency(self.op, y, d[inner][:, None].float(), s.rho, s.cg_iters)
            corrected[inner] = est[:, 0].double()
        if step < s.steps - 1:
            z = torch.randn(x.shape, generator=_rng(s.seed, NOISE, step + 1, a), dtype=torch.float64)
            nxt = sigmas[step + 1]
            corrected = corrected + nxt * (s.eta * z + math.sqrt(1 - s.eta ** 2) * (x - d) / sigmas[step])
        dst[a:b] = corrected.float().numpy()

    def _whole_volume_consistency(self) -> np.ndarray:
        """The data step on the whole image region of ``denoised`` (non-separable operators)."""
        g, s = self.prior.grid, self.settings
        d = torch.from_numpy(np.asarray(self.denoised[g.image_slices()], dtype=np.float32))[None, None]
        if self._correction is not None:
            d = d + self._upsampled_correction(0, g.shape[0]).float()
        y = torch.from_numpy(np.asarray(self.y[...], dtype=np.float32))[None, None]
        return data_consistency(self.op, y, d, s.rho, s.cg_iters)[0, 0].numpy()

    # -- the two-scale prior's coarse term ------------------------------------------------------
    def _block_sums_band(self, src: zarr.Array, a: int, b: int) -> tuple[int, np.ndarray, np.ndarray] | None:
        """Block sums of the state and of ``D`` over the image slices in canvas rows ``[a, b)``:
        ``(first coarse slice k0, sums of x (n, Yc, Xc), sums of D)`` float64, or None outside the image."""
        g = self.prior.grid
        mz, fz = g.pad[0], self.factor[0]
        lo, hi = max(a, mz), min(b, mz + g.shape[0])
        if hi <= lo:
            return None
        region = (slice(lo, hi), *g.image_slices()[1:])
        k = torch.arange(lo - mz, hi - mz) // fz
        k0 = int(k[0])
        out = []
        for arr in (src, self.denoised):
            v = torch.from_numpy(np.asarray(arr[region], dtype=np.float32)).double()[None, None]
            in_plane = block_average(v, (1, *self.factor[1:])) * block_sizes(v.shape[2:], (1, *self.factor[1:]))
            sums = torch.zeros((int(k[-1]) - k0 + 1, *in_plane.shape[3:]), dtype=torch.float64)
            out.append(sums.index_add_(0, k - k0, in_plane[0, 0]).numpy())
        return k0, out[0], out[1]

    def _coarse_term(self, step: int, src: zarr.Array) -> torch.Tensor:
        """``w(σ) [D_c(B x; σ_c) - B D_f]`` ``(Zc, Yc, Xc)`` float64 for level ``step``: block sums band by band,
        the coarse prior in memory (its draws, :meth:`TwoScalePrior.coarse_draws`, a pure function of
        ``(seed, step)``)."""
        g, s = self.prior.grid, self.settings
        m = block_sizes(g.shape, self.factor)[0, 0]
        w = self.two_scale.weight(float(s.sigmas()[step]))
        if w == 0:  # equation (2) with w = 0: the fine prior alone, no pass over the bands
            return torch.zeros_like(m)
        done = self._run(self._block_sums_band, src)
        bx, bd = torch.zeros_like(m), torch.zeros_like(m)
        for part in done:
            if part is not None:
                k0, sx, sd = part
                bx[k0:k0 + len(sx)] += torch.from_numpy(sx)
                bd[k0:k0 + len(sd)] += torch.from_numpy(sd)
        bx, bd = bx / m, bd / m
        sigma = self.two_scale.coarse_sigma(float(s.sigmas()[step]), len(self.factor))
        kw, padding = self.two_scale.coarse_draws(_rng(s.seed, COARSE_SHIFTS, step), (1, 1))
        xc = self.two_scale.coarse_state(bx.float()[None, None], sigma, padding)
        dc = self.coarse.crop(self.coarse.denoise(xc, sigma, **kw))
        return w * (dc[0, 0].double() - bd)

    def _upsampled_correction(self, i0: int, i1: int) -> torch.Tensor:
        """``U`` of the coarse term on image slices ``[i0, i1)``: ``(i1 - i0, Y, X)`` float64."""
        g, fz = self.prior.grid, self.factor[0]
        k0, k1 = i0 // fz, (i1 - 1) // fz + 1
        up = upsample_nearest(self._correction[k0:k1][None, None], self.factor, ((k1 - k0) * fz, *g.shape[1:]))
        return up[0, 0, i0 - k0 * fz:i1 - k0 * fz]

    # -- the run ---------------------------------------------------------------------------------
    def run(self, output: zarr.Array, callback: Callable[[dict], None] | None = None) -> zarr.Array:
        """Run (or resume) all levels; writes the final estimate ``(Z, Y, X)`` into ``output``."""
        g, s = self.prior.grid, self.settings
        if tuple(output.shape) != g.shape:
            raise PadisError(f"output must have the volume's shape {g.shape}, got {tuple(output.shape)}")
        try:
            return self._levels(output, callback)
        except OSError as exc:
            raise self._disk_error(exc) if is_disk_full(exc) else exc

    def _denoise_level(self, step: int, src: zarr.Array) -> None:
        """Level ``step``'s denoiser on the state ``src``: the fine prior's ``D_f`` streamed into
        ``denoised`` and, for a two-scale prior, the coarse term kept for the data step."""
        g, s = self.prior.grid, self.settings
        shift = g.random_shift(_rng(s.seed, SHIFTS, step))
        map_tiles_store(self.prior.tile_fn(float(s.sigmas()[step])), src, g, shift, self.denoised,
                        memory_budget=s.memory_budget, max_batch=self.prior.limits["max_batch"],
                        device=self.prior.limits["device"], fold_axes=self.prior.fold_axes,
                        scheduler=self.scheduler,
                        fn_bytes_per_tile=0 if s.memory_budget is None else self.prior.network_bytes())
        if self.coarse is not None:
            self._correction = self._coarse_term(step, src)

    def _levels(self, output: zarr.Array, callback: Callable[[dict], None] | None) -> zarr.Array:
        g, s = self.prior.grid, self.settings
        sigmas = s.sigmas()
        start = self.committed_step()
        if start == 0:
            self._run(self._initial_band)
        for step in range(start, s.steps):
            src, dst = self.states[step % 2], self.states[(step + 1) % 2]
            self._denoise_level(step, src)
            if not self.separable:
                self._estimate = self._whole_volume_consistency()
            self._run(self._step_band, step, src, dst)
            self._estimate = self._correction = None
            self._commit(step + 1)
            _forget_task_names()
            if callback is not None:
                callback({"i": step, "n": s.steps, "sigma": float(sigmas[step])})
        final = self.states[s.steps % 2]
        rows = output.chunks[0]
        for z0 in range(0, g.shape[0], rows):  # chunk-aligned copy of the image region
            z1 = min(z0 + rows, g.shape[0])
            output[z0:z1] = final[g.pad[0] + z0:g.pad[0] + z1][(slice(None), *g.image_slices()[1:])]
        return output
