"""Tiles per network call chosen by measurement (``--max-batch auto``, issue 16).

:func:`measure_tile_batch` times the loaded prior's own denoiser (at its precision, under
``torch.inference_mode``, on the compute device) on batches of 1, 2, 4, ... tiles up to the
tiles of one evaluation (and no more than a memory budget holds), one warm-up call each, and
picks the batch with the most tiles per second; batches within :data:`TIE_TOLERANCE` of the
fastest count as a tie, which the smaller batch (less memory) wins. The tiles go through
:meth:`padis3d.priors.patch.PatchPrior.tile_fn` with the engine's positions and folding
(``TileGrid.positions``, ``tiling.fold_tiles`` / ``fold_positions``), so the call is the one a
reconstruction makes. Measure on this machine: ``python benchmarks/tile_batch.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior

TIE_TOLERANCE = 0.03
"""Seconds per tile within 3 % of the fastest batch's count as equal: the smallest such batch wins."""
MEASURE_SIGMA = 1.0
"""Noise level of the timed calls (the network's cost does not depend on it)."""


@dataclass(frozen=True)
class BatchChoice:
    """The chosen tiles per call and what was measured: ``measured[batch]`` = seconds per tile
    (the fastest of ``repeats`` timed calls, divided by the batch)."""

    chosen: int
    measured: dict[int, float]
    tiles: int  # tiles of one evaluation (the largest batch that can be in flight)
    memory_cap: int | None = None  # the most tiles the memory budget holds (None: no budget)
    repeats: int = 2
    notes: dict[str, Any] = field(default_factory=dict)

    def to_report(self) -> dict[str, Any]:
        """For ``report.json``: ``{"chosen": N, "measured": {"1": s_per_tile, ...}, ...}``."""
        return {"chosen": self.chosen, "measured": {str(b): s for b, s in self.measured.items()},
                "unit": "seconds per tile", "tiles_per_evaluation": self.tiles, "memory_cap": self.memory_cap,
                "repeats": self.repeats, "tie_tolerance": TIE_TOLERANCE, **self.notes}

    def summary(self) -> str:
        """One line: the choice and the table in ms per tile."""
        table = ", ".join(f"{b}: {1e3 * s:.2f}" for b, s in self.measured.items())
        return f"--max-batch auto: {self.chosen} tiles per call (ms per tile by batch: {table})"


def default_candidates(tiles: int) -> list[int]:
    """1, 2, 4, ... below ``tiles``, and ``tiles`` itself."""
    out = [1 << k for k in range(max(1, tiles).bit_length()) if 1 << k < tiles]
    return out + [tiles]


def choose(measured: dict[int, float], tolerance: float = TIE_TOLERANCE) -> int:
    """The smallest batch whose seconds per tile are within ``tolerance`` of the fastest."""
    best = min(measured.values())
    return min(b for b, s in measured.items() if s <= best * (1 + tolerance))


def _as_prior(prior_or_denoiser: Any, tile_shape: Sequence[int] | None) -> PatchPrior:
    if isinstance(prior_or_denoiser, PatchPrior) or hasattr(prior_or_denoiser, "tile_fn"):
        prior = prior_or_denoiser
        if tile_shape is not None and tuple(tile_shape) != tuple(prior.grid.tile):
            raise PadisError(f"tile_shape {tuple(tile_shape)} is not the prior's tile {tuple(prior.grid.tile)}")
        return prior
    if tile_shape is None:
        raise PadisError("measure_tile_batch needs tile_shape for a bare denoiser")
    # a one-tile-sized image: the same tile_fn and positions path as any PatchPrior
    return PatchPrior(prior_or_denoiser, tuple(tile_shape), tuple(tile_shape))


def measure_tile_batch(prior_or_denoiser: Any, tile_shape: Sequence[int] | None = None,
                       device: torch.device | str | None = None, *, candidates: Sequence[int] | None = None,
                       memory_budget: int | None = None, repeats: int = 2, tiles: int | None = None,
                       clock: Callable[[], float] = time.perf_counter, seed: int = 0) -> BatchChoice:
    """Time the denoiser on batches of tiles and return the fastest per tile (:class:`BatchChoice`).

    prior_or_denoiser: a :class:`PatchPrior` (its grid, folding and ``tile_fn``) or a bare
    ``denoiser(tiles, sigma, positions)`` with ``tile_shape``. device: where the tiles are made
    (the network's device; default the prior's ``device`` limit, else the CPU). tiles: the tiles of
    one evaluation, the largest useful batch (default the prior's grid: one image). candidates:
    batches to time (default 1, 2, 4, ... and ``tiles``); those above ``tiles`` or above what
    ``memory_budget`` bytes hold (the engine's bytes per tile plus the network's activations,
    as :class:`PatchPrior` counts them) are dropped. clock: injectable for tests.
    """
    prior = _as_prior(prior_or_denoiser, tile_shape)
    if repeats < 1:
        raise PadisError(f"repeats must be >= 1, got {repeats}")
    grid = prior.grid
    device = torch.device(device if device is not None else (prior.limits.get("device") or "cpu"))
    tiles = int(tiles) if tiles is not None else grid.num_tiles
    if tiles < 1:
        raise PadisError(f"tiles must be >= 1, got {tiles}")
    config = getattr(prior.denoiser, "config", None)
    channels = 1 if prior.fold_axes or config is None else config.channels
    cap = None
    if memory_budget is not None:
        from tiling import tile_bytes

        per_tile = tile_bytes(grid, channels, torch.float32) + prior.network_bytes()
        cap = int(memory_budget // per_tile)
        if cap < 1:
            raise PadisError(f"a memory budget of {memory_budget / 2**20:.4g} MiB holds no tile "
                             f"({per_tile / 2**20:.4g} MiB each in flight)")
    batches = sorted({int(b) for b in (candidates if candidates is not None else default_candidates(tiles))})
    if any(b < 1 for b in batches):
        raise PadisError(f"candidate batches must be >= 1, got {batches}")
    limit = min(tiles, cap) if cap is not None else tiles
    usable = [b for b in batches if b <= limit]
    if cap is not None and cap < tiles and candidates is None and cap not in usable:
        usable.append(cap)  # the largest batch the budget allows is worth timing too
    if not usable:
        raise PadisError(f"no candidate batch {batches} fits: at most {limit} tiles (tiles of one evaluation "
                         f"{tiles}, memory cap {cap})")
    from tiling import fold_positions, fold_tiles

    fn = prior.tile_fn(MEASURE_SIGMA)
    shift = (0,) * grid.ndim
    gen = torch.Generator().manual_seed(seed)
    measured: dict[int, float] = {}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    with torch.inference_mode():
        for b in sorted(usable):
            x = fold_tiles(torch.randn((b, channels, *grid.tile), generator=gen), prior.fold_axes).to(device)
            pos = fold_positions(grid.positions(shift, torch.arange(b) % grid.num_tiles, device=device),
                                 prior.fold_axes)
            fn(x, pos)  # warm-up: allocator, kernel choice, autocast caches
            sync(device)
            best = math.inf
            for _ in range(repeats):
                t0 = clock()
                fn(x, pos)
                sync(device)
                best = min(best, clock() - t0)
            measured[b] = best / b
            del x, pos
    return BatchChoice(choose(measured), measured, tiles, cap, repeats,
                       {"device": str(device), "precision": getattr(prior.denoiser, "precision", None),
                        "tile": list(grid.tile)})
