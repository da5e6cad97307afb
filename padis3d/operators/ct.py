"""CT forward projectors on astra-toolbox: 2D parallel/fan beam, 3D parallel (slice by
slice) and 3D cone beam (astra CUDA only).

Geometry conventions (the paper's): pixel size 1, image centred at the origin,
``detector_bins`` defaults to twice the image width at detector spacing 1 (so a 256²
image has 512 bins), parallel-beam angles ``linspace(0, span, views, endpoint=False)``
with ``span = π``.  Sinograms are ``(views, bins)``; 3D parallel ``(slices, views, bins)``.

astra's 3D and CUDA routines kill a GPU-less process with SIGFPE, so every CUDA path is
guarded by :func:`astra_cuda_available`; without CUDA only the 2D CPU projectors run.
Adjoints use astra's ``BP`` with the same projector (exact adjoint on CPU).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import torch

from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator, check_tensor

FBP_FILTERS = ("hann", "ram-lak")
CT_TASKS: dict[str, dict] = {
    "ct20": {"views": 20},
    "ct8": {"views": 8},
    "ct60": {"views": 60},
    "la90": {"views": 90, "span": math.pi / 2},  # limited angle: 0..89 degrees, 1 degree apart
}
"""Paper CT tasks: keyword arguments of :class:`ParallelBeam2D`."""


def astra_cuda_available() -> bool:
    """True iff astra can run its CUDA routines here (the only safe check before any)."""
    try:
        import astra
        return bool(astra.use_cuda())
    except Exception:  # astra missing or built without CUDA
        return False


def _want_cuda(device: torch.device, use_cuda: bool | None) -> bool:
    if use_cuda is None:
        return device.type == "cuda" and astra_cuda_available()
    if use_cuda and not astra_cuda_available():
        raise PadisError("astra CUDA was requested but astra.use_cuda() is False on this machine "
                         "(no GPU or a CPU-only astra build); use use_cuda=False for the CPU projectors")
    return bool(use_cuda)


class _Astra2D:
    """Persistent astra data objects and FP/BP/FBP algorithms for one 2D geometry. The data
    objects are shared, so calls are serialised by a lock (dask and other threads may share
    an operator)."""

    def __init__(self, vol_geom: dict, proj_geom: dict, projector: str, cuda: bool) -> None:
        import astra
        self.astra, self.cuda = astra, cuda
        self.lock = threading.Lock()
        self.proj_id = astra.create_projector("cuda" if cuda else projector, proj_geom, vol_geom)
        self.vol_id = astra.data2d.create("-vol", vol_geom, 0.0)
        self.sino_id = astra.data2d.create("-sino", proj_geom, 0.0)
        sfx = "_CUDA" if cuda else ""
        self.fp_id = self._alg("FP" + sfx, VolumeDataId=self.vol_id)
        self.bp_id = self._alg("BP" + sfx, ReconstructionDataId=self.vol_id)
        self.fbp_ids: dict[str, int] = {}

    def _alg(self, name: str, **cfg_extra) -> int:
        cfg = self.astra.astra_dict(name)
        cfg.update(ProjectorId=self.proj_id, ProjectionDataId=self.sino_id, **cfg_extra)
        if name == "FBP_CUDA":
            cfg["option"] = {"FilterType": cfg_extra.get("FilterType")}
        return self.astra.algorithm.create(cfg)

    def run(self, src_id: int, dst_id: int, alg_id: int, data: np.ndarray) -> np.ndarray:
        with self.lock:
            self.astra.data2d.store(src_id, data)
            self.astra.algorithm.run(alg_id)
            return self.astra.data2d.get(dst_id)

    def fp(self, img: np.ndarray) -> np.ndarray:
        return self.run(self.vol_id, self.sino_id, self.fp_id, img)

    def bp(self, sino: np.ndarray) -> np.ndarray:
        return self.run(self.sino_id, self.vol_id, self.bp_id, sino)

    def fbp(self, sino: np.ndarray, filt: str) -> np.ndarray:
        with self.lock:
            known = filt in self.fbp_ids
        if not known:
            name = "FBP_CUDA" if self.cuda else "FBP"
            self.fbp_ids[filt] = self._alg(name, ReconstructionDataId=self.vol_id, FilterType=filt)
        return self.run(self.sino_id, self.vol_id, self.fbp_ids[filt], sino)

    def __del__(self) -> None:
        try:
            for a in [self.fp_id, self.bp_id, *self.fbp_ids.values()]:
                self.astra.algorithm.delete(a)
            self.astra.data2d.delete([self.vol_id, self.sino_id])
            self.astra.projector.delete(self.proj_id)
        except Exception:
            pass


def _stack_map(fn, t: torch.Tensor) -> torch.Tensor:
    """Apply a numpy 2D map to every slice of a stack ``(n, *s)``."""
    arr = t.detach().to("cpu", torch.float32).numpy()
    out = np.stack([fn(np.ascontiguousarray(a)) for a in arr])
    return torch.from_numpy(out).to(t.device, t.dtype)


class _CT2D(LinearOperator):
    """Shared 2D machinery: astra geometry -> operator on ``(n, n)`` images."""

    pinv_is_exact = False  # pinv is FBP (parallel) or truncated CG (fan)

    def __init__(self, image_size: int, proj_geom: dict, projector: str,
                 device: str | torch.device | None, use_cuda: bool | None) -> None:
        import astra
        n = int(image_size)
        if n < 2:
            raise PadisError(f"image_size must be >= 2, got {image_size}")
        views, bins = len(proj_geom["ProjectionAngles"]), int(proj_geom["DetectorCount"])
        super().__init__((n, n), (views, bins), device)
        self.angles = np.asarray(proj_geom["ProjectionAngles"], dtype=np.float64)
        self.cuda = _want_cuda(self.device, use_cuda)
        self._geometry = (astra.create_vol_geom(n, n), proj_geom, projector, self.cuda)
        try:
            self._astra = _Astra2D(*self._geometry)
        except Exception as exc:  # astra raises plain Exception for bad projector/geometry
            raise PadisError(f"astra rejected the geometry or projector {projector!r}: {exc}") from exc

    def __getstate__(self) -> dict:
        """Pickle the geometry, not astra's process-local objects (for dask.distributed workers)."""
        state = self.__dict__.copy()
        del state["_astra"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._astra = _Astra2D(*self._geometry)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return _stack_map(self._astra.fp, x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return _stack_map(self._astra.bp, y)

    def _fbp(self, y: torch.Tensor, filter: str) -> torch.Tensor:
        if filter not in FBP_FILTERS:
            raise PadisError(f"unknown FBP filter {filter!r}; choose one of {FBP_FILTERS}")
        check_tensor(y, self.out_shape, "sinogram y")
        b, c = y.shape[:2]
        out = _stack_map(lambda s: self._astra.fbp(s, filter), y.reshape(b * c, *self.out_shape))
        return out.reshape(b, c, *self.in_shape)



def _check_detector(n: int, bins: int, width_at_centre: float) -> None:
    """The detector must see the whole disc inscribed in the ``n x n`` image at every angle,
    i.e. be at least as wide as the image at the rotation centre; a narrower one truncates the
    projections of every view."""
    if bins < 1 or not width_at_centre >= n:
        raise PadisError(f"the detector ({bins} bins) covers {width_at_centre:.1f} pixels at the rotation centre, "
                         f"less than the {n}-pixel image: rays would miss part of the image at every angle; "
                         f"use more bins or a wider spacing (at least {n} pixels; the default, 2 x {n} bins, "
                         f"covers the image's corners too)")


def _angles(views: int, span: float, angles: Sequence[float] | None) -> np.ndarray:
    if angles is not None:
        a = np.asarray(angles, dtype=np.float64).ravel()
        if a.size == 0 or not np.isfinite(a).all():
            raise PadisError("angles must be a non-empty sequence of finite radians")
        return a
    if int(views) < 1:
        raise PadisError(f"views must be >= 1, got {views}")
    if not (math.isfinite(span) and span != 0):
        raise PadisError(f"the angular span must be a finite non-zero angle, got {span} rad")
    return np.linspace(0.0, span, int(views), endpoint=False)


class ParallelBeam2D(_CT2D):
    """2D parallel-beam CT: ``(B, C, n, n) -> (B, C, views, bins)``, line integrals in pixel units.

    ``projector`` is an astra CPU projector (``'linear'`` default, ``'line'``, ``'strip'``);
    CUDA projectors are used when ``device`` is CUDA and ``astra.use_cuda()``.
    """

    def __init__(self, image_size: int, views: int = 20, span: float = math.pi,
                 angles: Sequence[float] | None = None, detector_bins: int | None = None,
                 detector_spacing: float = 1.0, projector: str = "linear",
                 device: str | torch.device | None = "cpu", use_cuda: bool | None = None) -> None:
        import astra
        bins = int(detector_bins or 2 * int(image_size))
        _check_detector(int(image_size), bins, bins * float(detector_spacing))
        geom = astra.create_proj_geom("parallel", float(detector_spacing), bins, _angles(views, span, angles))
        super().__init__(image_size, geom, projector, device, use_cuda)

    def fbp(self, y: torch.Tensor, filter: str = "hann") -> torch.Tensor:
        """Filtered back-projection (astra ``FBP``), ``(B, C, views, bins) -> (B, C, n, n)``;
        ``filter`` is ``'hann'`` or ``'ram-lak'``.  Scaled so that ``fbp(A x) ≈ x``."""
        return self._fbp(y, filter)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """FBP with the Hann filter (the CT stand-in for a pseudo-inverse)."""
        return self.fbp(y, "hann")


class FanBeam2D(_CT2D):
    """2D flat-detector fan-beam CT: ``(B, C, n, n) -> (B, C, views, bins)``.

    Defaults: source-origin ``2n``, origin-detector ``n`` (magnification 1.5), detector
    spacing = magnification (so a bin is one pixel wide at the rotation centre), ``2n``
    bins, angles on ``[0, 2π)`` (a fan scan over only ``[0, π)`` is incomplete data).
    astra's CPU FBP is parallel-only: :meth:`fbp` needs CUDA, :meth:`pinv` is least squares
    by CG on the normal equations.
    """

    def __init__(self, image_size: int, views: int = 20, span: float = 2 * math.pi,
                 angles: Sequence[float] | None = None, detector_bins: int | None = None,
                 source_origin: float | None = None, origin_detector: float | None = None,
                 detector_spacing: float | None = None, projector: str = "line_fanflat",
                 device: str | torch.device | None = "cpu", use_cuda: bool | None = None) -> None:
        import astra
        n = int(image_size)
        so = float(source_origin if source_origin is not None else 2 * n)
        od = float(origin_detector if origin_detector is not None else n)
        if so <= n / math.sqrt(2):
            raise PadisError(f"source_origin={so} puts the source inside the image circle (radius {n / math.sqrt(2):.1f})")
        spacing = float(detector_spacing if detector_spacing is not None else (so + od) / so)
        bins = int(detector_bins or 2 * n)
        # the fan's half-angle sees a disc of radius so * sin(half-angle) around the rotation centre
        half = math.atan(bins * spacing / 2 / (so + od)) if spacing > 0 else 0.0
        _check_detector(n, bins, 2 * so * math.sin(half))
        geom = astra.create_proj_geom("fanflat", spacing, bins,
                                      _angles(views, span, angles), so, od)
        super().__init__(n, geom, projector, device, use_cuda)

    def fbp(self, y: torch.Tensor, filter: str = "hann") -> torch.Tensor:
        """Fan-beam FBP through astra ``FBP_CUDA`` (CUDA only; PadisError on CPU)."""
        if not self.cuda:
            raise PadisError("fan-beam FBP needs astra CUDA (astra's CPU FBP is parallel-beam only); "
                             "use FanBeam2D.pinv (least squares) or a ParallelBeam2D geometry")
        return self._fbp(y, filter)

    def pinv(self, y: torch.Tensor, iters: int = 50) -> torch.Tensor:
        """Least-squares reconstruction: ``iters`` CG steps on ``AᵀA x = Aᵀy`` from 0."""
        from padis3d.baselines.cg import conjugate_gradient
        with torch.no_grad():
            return conjugate_gradient(self.normal, self.adjoint(y), iters=iters)


class ParallelBeam3D(LinearOperator):
    """3D parallel beam, rotation axis = first spatial axis: ``(B, C, D, n, n) -> (B, C, D, views, bins)``.

    Exact as slice-by-slice 2D projection (the rays never leave their axial slice), so it
    runs on astra's 2D CPU projectors; keyword arguments are those of :class:`ParallelBeam2D`.
    """

    pinv_is_exact = False

    def __init__(self, volume_shape: Sequence[int], **kwargs) -> None:
        d, h, w = (int(s) for s in volume_shape)
        if h != w:
            raise PadisError(f"volume_shape {tuple(volume_shape)} must have square axial slices (D, n, n)")
        self.slice_op = ParallelBeam2D(h, **kwargs)
        super().__init__((d, h, w), (d, *self.slice_op.out_shape), self.slice_op.device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slice_op._forward(x.reshape(-1, *self.in_shape[1:])).reshape(-1, *self.out_shape)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.slice_op._adjoint(y.reshape(-1, *self.out_shape[1:])).reshape(-1, *self.in_shape)

    def fbp(self, y: torch.Tensor, filter: str = "hann") -> torch.Tensor:
        """Slice-by-slice 2D FBP, ``(B, C, D, views, bins) -> (B, C, D, n, n)``."""
        check_tensor(y, self.out_shape, "sinogram y")
        b, c, d = y.shape[:3]
        out = self.slice_op.fbp(y.reshape(b * c * d, 1, *self.out_shape[1:]), filter)
        return out.reshape(b, c, *self.in_shape)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self.fbp(y, "hann")


class ConeBeam3D(LinearOperator):
    """3D circular cone beam through astra CUDA: ``(B, C, D, H, W) -> (B, C, rows, views, cols)``.

    Needs ``astra.use_cuda()``: without it the constructor raises PadisError *before* any
    astra 3D call (which would kill the process with SIGFPE).  astra's 3D GPU back-projector
    is only approximately matched to its forward projector.  ``device`` is where the tensors
    live (astra copies them to the GPU itself); tomosipo would call the same astra CUDA code.
    """

    def __init__(self, volume_shape: Sequence[int], views: int = 60, span: float = 2 * math.pi,
                 detector_shape: Sequence[int] | None = None, source_origin: float | None = None,
                 origin_detector: float | None = None, detector_spacing: float | None = None,
                 device: str | torch.device | None = "cpu") -> None:
        if not astra_cuda_available():
            raise PadisError("3D cone-beam CT needs astra with CUDA (a GPU), and astra.use_cuda() is False "
                             "on this machine; use ParallelBeam3D (slice-by-slice, CPU) or run on a GPU machine")
        import astra
        d, h, w = (int(s) for s in volume_shape)
        rows, cols = (int(s) for s in (detector_shape or (2 * d, 2 * max(h, w))))
        so = float(source_origin if source_origin is not None else 2 * max(d, h, w))
        od = float(origin_detector if origin_detector is not None else max(d, h, w))
        spacing = float(detector_spacing if detector_spacing is not None else (so + od) / so)
        angles = _angles(views, span, None)
        super().__init__((d, h, w), (rows, len(angles), cols), device)
        self._astra = astra
        self.vol_geom = astra.create_vol_geom(h, w, d)
        self.proj_geom = astra.create_proj_geom("cone", spacing, spacing, rows, cols, angles, so, od)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        def fp(v: np.ndarray) -> np.ndarray:
            sid, sino = self._astra.create_sino3d_gpu(v, self.proj_geom, self.vol_geom)
            self._astra.data3d.delete(sid)
            return sino
        return _stack_map(fp, x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        def bp(s: np.ndarray) -> np.ndarray:
            vid, vol = self._astra.create_backprojection3d_gpu(s, self.proj_geom, self.vol_geom)
            self._astra.data3d.delete(vid)
            return vol
        return _stack_map(bp, y)
