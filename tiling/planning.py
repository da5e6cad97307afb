"""Choosing a tile size: the random shift costs ``prod(K P / N)`` tile voxels per image
voxel, and a useful shift range needs ``M`` not too small. The paper's 256 -> 56 choice
(K = 5, M = 24, factor 1.094 per axis) is the optimum of this trade-off."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TileChoice:
    """One candidate tile size along one axis of length ``size``."""

    size: int
    tile: int
    count: int
    pad: int

    @property
    def factor(self) -> float:
        """Tile voxels per image voxel along this axis, ``K P / N``."""
        return self.count * self.tile / self.size

    @property
    def shift_fraction(self) -> float:
        """``M / P``: the share of the tile's offsets that the random shift reaches."""
        return self.pad / self.tile


def tile_candidates(size: int, *, multiple: int = 8, min_tile: int = 32, max_tile: int | None = None) -> list[TileChoice]:
    """Every tile size ``P`` (a multiple of ``multiple``, e.g. ``2**levels``) in range for an axis."""
    if size < 1 or multiple < 1 or min_tile < 1:
        raise ValueError("size, multiple and min_tile must be positive")
    max_tile = size if max_tile is None else max_tile
    first = -(-min_tile // multiple) * multiple
    out = []
    for p in range(first, max_tile + 1, multiple):
        k = size // p + 1
        out.append(TileChoice(size, p, k, k * p - size))
    return out


def suggest_tile(size: int, *, multiple: int = 8, min_tile: int = 32, max_tile: int | None = None,
                 min_shift_fraction: float = 0.25) -> TileChoice:
    """The tile size with the lowest voxel factor among those whose shift range ``M`` is at
    least ``min_shift_fraction * P``; ties go to the larger tile (fewer tiles, more context)."""
    ok = [c for c in tile_candidates(size, multiple=multiple, min_tile=min_tile, max_tile=max_tile)
          if c.shift_fraction >= min_shift_fraction]
    if not ok:
        raise ValueError(f"no tile size in [{min_tile}, {max_tile or size}] (multiple of {multiple}) for an "
                         f"axis of {size} leaves a shift range of {min_shift_fraction:.0%} of the tile")
    return min(ok, key=lambda c: (round(c.factor, 9), -c.tile))


def tile_tradeoff_table(size: int, **kwargs: int) -> str:
    """A plain-text table of every candidate: P, K, M, factor, M/P."""
    rows = [f"{'P':>5} {'K':>4} {'M':>4} {'K*P/N':>7} {'M/P':>6}"]
    for c in tile_candidates(size, **kwargs):
        rows.append(f"{c.tile:>5} {c.count:>4} {c.pad:>4} {c.factor:>7.3f} {c.shift_fraction:>6.2f}")
    return "\n".join(rows)
