"""The out-of-core stages around a volume run (:mod:`padis3d.volume.runner`): the input normalised and
resized, the simulated measurements and the baseline, all computed band by band of axial
slices into zarr arrays in the work folder; and the memory plan that sizes those bands.

Every stage gives bit for bit what the whole-volume computation gives:

* the intensity window, the clipping and the noise are per voxel;
* the in-plane resize (skimage, anti-aliased, bilinear) leaves z alone (zoom 1, zero blur
  sigma), so a band's slices resize exactly as inside the whole volume;
* the CT operator and FBP work slice by slice;
* the noise is one ``torch.randn`` over the whole measurement array, reproduced in pieces by
  :class:`NormalStream` (hand-written because torch has no streaming normal sampler; see its
  docstring for the one alignment rule that makes the pieces equal the whole).

The prepared arrays are marked done (``prepared.json``) only once complete, with a key of
everything they depend on; a rerun with the same key reuses them, another key redoes them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from padis3d.atomic import write_json
from padis3d.errors import PadisError
from padis3d.io.volume_stream import VolumeSource

PREP_VERSION = 1


class NormalStream:
    """Consecutive pieces of ``torch.randn(total, generator=g)`` (float32), generated in chunks.

    torch's CPU normal sampler fills tensors of >= 16 elements with uniforms, transforms them
    16 at a time (Box-Muller), then redraws the last 16 if the size is not a multiple of 16.
    Calls whose sizes are multiples of 16, then one final call of >= 16 elements, therefore
    draw exactly the numbers of one big call (checked in ``tests/volume/test_volume_stream.py``).
    Memory: one chunk (``chunk`` floats) plus the piece asked for."""

    def __init__(self, generator: torch.Generator, total: int, chunk: int = 2 ** 16):
        self.g, self.total, self.chunk = generator, int(total), max(16, chunk // 16 * 16)
        self.generated = 0
        self.buffer = torch.empty(0)

    def _more(self) -> None:
        left = self.total - self.generated
        n = left if left - self.chunk < 16 else self.chunk  # never leave a tail shorter than 16
        self.buffer = torch.cat([self.buffer, torch.randn(n, generator=self.g)])
        self.generated += n

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` numbers of the stream (1D float32)."""
        if n > self.total - self.generated + self.buffer.numel():
            raise PadisError(f"the noise stream holds {self.total} numbers; {n} more were asked for")
        while self.buffer.numel() < n:
            self._more()
        out, self.buffer = self.buffer[:n], self.buffer[n:].clone()
        return out


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


MMAP_THRESHOLD = 256 * 1024
"""Allocations from this size up get their own memory map (glibc ``M_MMAP_THRESHOLD``)."""


def limit_heap_growth(arenas: int = 2, mmap_threshold: int = MMAP_THRESHOLD) -> None:
    """Keep freed memory from staying resident. Caps glibc's heap arenas (default: 8 per core,
    one per thread that allocates under contention), each of which keeps the freed band
    buffers of the threads that used it; and fixes the size from which an allocation is
    memory-mapped (and so unmapped, returned to the system, when freed) at ``mmap_threshold``.
    glibc's default threshold starts at 128 KiB but rises to the size of every mapped block
    freed, up to 32 MiB, so after the first band the band buffers, network activations and
    codec buffers all came from the heap, whose freed pages stay resident: the peak rose
    stage after stage by tens of MiB above the budget (measured: 470 -> 441 MiB on the chest
    CT at an 18 MiB budget). No-op where glibc is absent."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-8, int(arenas))  # M_ARENA_MAX
        libc.mallopt(-3, int(mmap_threshold))  # M_MMAP_THRESHOLD (setting it also stops the rise)


LIMIT_HEAP_ENV = "PADIS3D_LIMIT_HEAP"
"""Hidden switch for benchmarks (``benchmarks/heap_growth.py``): ``1`` or ``0`` overrides every run's choice."""


def heap_limit_wanted(requested: bool | None, memory_budget: int | None) -> bool:
    """Whether a run calls :func:`limit_heap_growth`: as ``requested``, by default only under a memory
    budget, where it holds the peak; without one it costs time for nothing (a 2D reconstruct measured
    about 1.5x slower wall, 4x the system time, the same peak: ``benchmarks/heap_growth.py``). The
    environment variable :data:`LIMIT_HEAP_ENV` overrides both."""
    import os

    forced = os.environ.get(LIMIT_HEAP_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    return requested if requested is not None else memory_budget is not None


def release_free_memory() -> None:
    """Give freed heap pages back to the system (glibc ``malloc_trim``); no-op elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def plan_rows(budget: int | None, bytes_per_row: int, default: int, multiple: int = 1) -> int:
    """Slices per band so that a band's working set fits ``budget`` bytes (``default`` when no
    budget); at least 1, and a multiple of ``multiple`` (the zarr chunk rows) when that fits."""
    if budget is None:
        return max(1, default)
    rows = max(1, budget // max(1, bytes_per_row))
    return rows // multiple * multiple if rows >= multiple else rows


def prep_bytes_per_row(in_plane: tuple[int, int], size: int, sino: tuple[int, int] | None) -> int:
    """Peak bytes per input slice of :func:`prepare_volume`: the float32 read and its window, the
    float64 copies skimage's resize makes, the resized slice, measurements and baseline."""
    h, w = in_plane
    meas = sino[0] * sino[1] if sino else size * size
    return 32 * h * w + 32 * size * size + 16 * meas


@dataclass
class Prepared:
    """Work arrays ``truth (Z, S, S)``, ``y (Z, *meas)`` and ``baseline (Z, S, S)`` in [0, 1] units."""

    truth: zarr.Array
    y: zarr.Array
    baseline: zarr.Array
    key: str
    reused: bool
    seconds: float


def _work_array(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]) -> zarr.Array:
    return zarr.create_array(store=path, shape=shape, chunks=chunks, dtype="f4", overwrite=True)


def prepare_volume(source: VolumeSource, z_range: tuple[int, int], window: tuple[float, float], size: int,
                   forward: Callable[[torch.Tensor], torch.Tensor], meas_shape: tuple[int, int],
                   baseline: Callable[[torch.Tensor], torch.Tensor], noise: float, seed: int,
                   work: Path, band: int, rows: int, identity: dict,
                   progress: Callable[[int], None] | None = None, reuse: bool = True) -> Prepared:
    """Slices ``z_range`` of ``source``: windowed to [0, 1], resized to ``size`` in-plane, through
    ``forward`` (per slice, ``(n, 1, S, S) -> (n, 1, *meas_shape)``), plus Gaussian noise of std
    ``noise`` drawn as one ``torch.randn`` with seed ``seed + 1``, and ``baseline`` of the noisy
    measurements, ``rows`` input slices at a time, into zarr arrays chunked by ``band`` slices.
    ``identity``: what else the arrays depend on (the input's content, the operator's geometry: the
    CLI passes its run identity, :mod:`padis3d.cli.identity`), part of their key. Arrays marked done
    with the same key are reused unless ``reuse`` is False."""
    t0 = time.perf_counter()
    z0, z1 = z_range
    nz = z1 - z0
    lo, hi = window
    key = hashlib.sha1(json.dumps({"version": PREP_VERSION, "input": identity, "z": [z0, z1], "window": [lo, hi],
                                   "size": size, "meas": list(meas_shape), "noise": noise, "seed": seed,
                                   "band": band}, sort_keys=True).encode()).hexdigest()[:12]
    marker = work / "prepared.json"
    names = {"truth": (nz, size, size), "y": (nz, *meas_shape), "baseline": (nz, size, size)}
    try:
        if reuse and json.loads(marker.read_text()).get("key") == key:
            arrays = {n: zarr.open_array(work / f"{n}.zarr", mode="r") for n in names}
            if all(tuple(arrays[n].shape) == s for n, s in names.items()):
                return Prepared(arrays["truth"], arrays["y"], arrays["baseline"], key, True,
                                time.perf_counter() - t0)
    except (FileNotFoundError, json.JSONDecodeError, ValueError, KeyError):
        pass
    work.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    arrays = {n: _work_array(work / f"{n}.zarr", s, (band, *s[1:])) for n, s in names.items()}
    stream = NormalStream(torch.Generator().manual_seed(seed + 1), nz * math.prod(meas_shape)) if noise else None
    for a in range(0, nz, rows):
        b = min(a + rows, nz)
        image = np.clip((source.read(z0 + a, z0 + b) - lo) / (hi - lo), 0, 1).astype(np.float32)
        if image.shape[1:] != (size, size):
            from skimage.transform import resize

            image = resize(image, (b - a, size, size), anti_aliasing=True, preserve_range=True,
                           order=1).astype(np.float32)
        arrays["truth"][a:b] = image
        y = forward(torch.from_numpy(image)[:, None])[:, 0]
        if stream is not None:
            y = y + noise * stream.take(y.numel()).reshape(y.shape)
        arrays["y"][a:b] = y.numpy()
        arrays["baseline"][a:b] = baseline(y).numpy()
        if progress is not None:
            progress(b - a)
    write_json(marker, {"key": key, "window": [lo, hi], "z": [z0, z1], "size": size})
    return Prepared(arrays["truth"], arrays["y"], arrays["baseline"], key, False, time.perf_counter() - t0)


def centre_planes(arr: Any, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axial, coronal and sagittal centre planes of a ``(z, y, x)`` array, read band by band."""
    nz, ny, nx = arr.shape
    cor, sag = [], []
    for a in range(0, nz, rows):
        band = np.asarray(arr[a:min(a + rows, nz)])
        cor.append(band[:, ny // 2])
        sag.append(band[:, :, nx // 2])
    return np.asarray(arr[nz // 2]), np.concatenate(cor), np.concatenate(sag)
