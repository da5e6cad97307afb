"""The coarse weight ``w(σ)`` of the two-scale prior (equation (2) of :mod:`padis3d.priors.two_scale`),
measured on clean training data, and its file.

For every σ of a grid, the fine prior's block averages ``B D_f`` and the coarse prior's ``D_c`` are
computed on a noisy copy of a clean training volume ``x``, and the weight is the least-squares slope

    w*(σ) = <B D_f - B x, B D_f - D_c> / |B D_f - D_c|²,   clipped to [0, 1]

(the weight of the mix ``B D_f + w (D_c - B D_f)`` closest to ``B x``; block sums weighted by the
block sizes, so partial blocks count by their voxels). In between, ``w`` is interpolated linearly in
``log σ``; outside the grid it is the end value. A weight belongs to one PAIR of checkpoints, so its
file (JSON, beside the coarse checkpoint: ``<coarse>.weights.json``) holds one entry per fine
checkpoint, each with both files' SHA-256: a prior trained further no longer matches its weight.

Written here because no library calibrates a mixture of two denoisers; the fit is three lines.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padis3d.errors import PadisError
from padis3d.priors.two_scale import TwoScalePrior, block_average, block_sizes


@dataclass(frozen=True)
class CoarseWeight:
    """``w(σ)`` from a table: ``sigmas`` increasing (> 0), ``weights`` in [0, 1], one per σ."""

    sigmas: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        s, w = np.asarray(self.sigmas, float), np.asarray(self.weights, float)
        if s.ndim != 1 or len(s) == 0 or s.shape != w.shape:
            raise PadisError(f"a coarse weight needs as many weights as sigmas (>= 1), got {len(s)} and {len(w)}")
        if not (s > 0).all() or not (np.diff(s) > 0).all():
            raise PadisError(f"the sigmas of a coarse weight must be > 0 and increasing, got {list(s)}")
        if not ((w >= 0) & (w <= 1)).all():
            raise PadisError(f"coarse weights must lie in [0, 1], got {list(w)}")

    def __call__(self, sigma: float) -> float:
        return float(np.interp(math.log(sigma), np.log(self.sigmas), self.weights))


def weight_report(weight: float | Any) -> float | dict[str, list[float]]:
    """A coarse weight for a JSON report: the number, or the table of a :class:`CoarseWeight`."""
    if isinstance(weight, CoarseWeight):
        return {"sigmas": list(weight.sigmas), "weights": list(weight.weights)}
    return float(weight)


def least_squares_weight(fine_coarse: Sequence[torch.Tensor], coarse: Sequence[torch.Tensor],
                         truth: Sequence[torch.Tensor], sizes: Sequence[torch.Tensor]) -> float:
    """``w*`` of the module docstring, one fit over several coarse images: ``B D_f``, ``D_c``, ``B x``
    and the block sizes ``m`` (weights) of each; clipped to [0, 1]; 0 where ``D_c = B D_f`` everywhere."""
    num = den = 0.0
    for bf, dc, bx, m in zip(fine_coarse, coarse, truth, sizes, strict=True):
        diff = bf - dc
        num += float((m * (bf - bx) * diff).sum())
        den += float((m * diff * diff).sum())
    return 0.0 if den == 0 else min(1.0, max(0.0, num / den))


def calibrate(two: TwoScalePrior | Callable[[tuple[int, ...]], TwoScalePrior], clean: Sequence[torch.Tensor],
              sigmas: Sequence[float], *, seed: int = 0) -> tuple[CoarseWeight, list[dict[str, float]]]:
    """Measure ``w(σ)`` on clean TRAINING images or volumes ``(1, 1, *N)`` in [0, 1].

    two: the two-scale prior, or a function of the spatial shape that builds it (for volumes of
    several shapes). One noisy copy and one grid shift per volume and σ (all from ``seed``); the
    fit is joint over the volumes. The noisy input is a sampler's state: noise of std σ on the
    fine prior's whole canvas and σ_c on the coarse prior's padding
    (:meth:`TwoScalePrior.coarse_state`). Returns the weight and, per σ, the coarse-scale PSNR (dB, all
    volumes) of ``B D_f``, ``D_c`` and the mix, and at full resolution of ``D_f`` and of the
    two-scale ``D``: what the weight buys."""
    if not sigmas or not clean:
        raise PadisError("calibrating a coarse weight needs at least one sigma and one clean volume")
    rows, weights = [], []
    for i, sigma in enumerate(sorted(float(s) for s in sigmas)):
        parts: list[tuple[torch.Tensor, ...]] = []
        for j, vol in enumerate(clean):
            prior = two(tuple(vol.shape[2:])) if callable(two) else two
            g = torch.Generator().manual_seed(seed * 1_000_003 + 1000 * j + i)
            # a sampler's state: noise on the whole canvas, padding included (as in training patches)
            state = prior.fine.embed(vol) + sigma * torch.randn((*vol.shape[:2], *prior.fine.state_shape),
                                                                generator=g, dtype=vol.dtype)
            with torch.inference_mode():
                d_f = prior.fine.crop(prior.fine.denoise(state, sigma, generator=g))
                xc, sc, kw = prior.coarse_input(state, sigma, prior.coarse_draws(g, vol.shape[:2]))
                d_c = prior.coarse.crop(prior.coarse.denoise(xc, sc, **kw))
            bf, bx = block_average(d_f.double(), prior.factor), block_average(vol.double(), prior.factor)
            m = block_sizes(vol.shape[2:], prior.factor)
            # |D - x|² = |(I - P)(D_f - x)|² + Σ_b m_b (B D - B x)_b²: the detail's share does not depend on w
            detail = float(((d_f.double() - vol) ** 2).sum()) - float((m * (bf - bx) ** 2).sum())
            parts.append((bf, d_c.double(), bx, m, detail))
        bf, dc, bx, m, detail = zip(*parts)
        w = least_squares_weight(bf, dc, bx, m)
        weights.append(w)
        mix = [a + w * (b - a) for a, b in zip(bf, dc)]
        voxels = sum(float(mi.sum()) * a.shape[0] * a.shape[1] for a, mi in zip(bf, m))
        full = {k: 10 * math.log10(voxels / (sum(detail) + sum(float((mi * (v - t) ** 2).sum())
                                                                for v, t, mi in zip(est, bx, m))))
                for k, est in (("fine_full", bf), ("mix_full", mix))}
        rows.append({"sigma": sigma, "w": w, **{k: _psnr(v, bx, m) for k, v in
                                               (("fine", bf), ("coarse", dc), ("mix", mix))}, **full})
    return CoarseWeight(tuple(r["sigma"] for r in rows), tuple(weights)), rows


def _psnr(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], m: Sequence[torch.Tensor]) -> float:
    """PSNR (dB, peak 1) over full-resolution voxels of coarse images: block ``b`` counts ``m_b`` times."""
    se = sum(float((mi * (ai - bi) ** 2).sum()) for ai, bi, mi in zip(a, b, m))
    n = sum(float(mi.sum()) * ai.shape[0] * ai.shape[1] for ai, mi in zip(a, m))
    return 10 * math.log10(n / se) if se > 0 else math.inf


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_path(coarse_checkpoint: str | Path) -> Path:
    """The weight file beside a coarse checkpoint (a path or a prior name):
    ``chest32_lowres.pt`` -> ``chest32_lowres.weights.json``."""
    from padis3d.priors.registry import resolve_prior

    p = resolve_prior(coarse_checkpoint)
    return p.with_name(p.stem + ".weights.json")


def save_weight(weight: CoarseWeight, fine_checkpoint: str | Path, coarse_checkpoint: str | Path,
                extra: dict[str, Any] | None = None) -> Path:
    """Add (or replace) the fine checkpoint's entry in the coarse checkpoint's weight file."""
    path = weights_path(coarse_checkpoint)
    table = json.loads(path.read_text()) if path.exists() else {}
    table[Path(fine_checkpoint).name] = {
        "fine_sha256": file_sha256(fine_checkpoint), "coarse_sha256": file_sha256(coarse_checkpoint),
        "sigmas": list(weight.sigmas), "weights": list(weight.weights), **(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_weight(fine_checkpoint: str | Path, coarse_checkpoint: str | Path) -> CoarseWeight:
    """The measured ``w(σ)`` of this pair of checkpoints; a clear error when there is none or when
    either checkpoint changed since it was measured."""
    from padis3d.priors.registry import resolve_prior

    path, fine = weights_path(coarse_checkpoint), resolve_prior(fine_checkpoint)
    coarse_checkpoint = resolve_prior(coarse_checkpoint)
    how = ("measure it with `python recipes/calibrate_two_scale.py --fine <checkpoint>` on training data, "
           "or give the weight as a number (1: the coarse prior replaces the fine prior's coarse scale)")
    if not path.exists():
        raise PadisError(f"no coarse weight for {Path(coarse_checkpoint).name}: {path} does not exist; {how}")
    entry = json.loads(path.read_text()).get(fine.name)
    if entry is None:
        raise PadisError(f"{path} has no coarse weight for the fine prior {fine.name}; {how}")
    for key, file in (("fine_sha256", fine), ("coarse_sha256", Path(coarse_checkpoint))):
        if entry[key] != file_sha256(file):
            raise PadisError(f"the coarse weight in {path} was measured for another {file.name} (the checkpoint "
                             f"changed since); {how}")
    return CoarseWeight(tuple(entry["sigmas"]), tuple(entry["weights"]))


def weight_for(choice: str | float, fine_checkpoint: str | Path, coarse_checkpoint: str | Path
               ) -> CoarseWeight | float:
    """The coarse weight a user chose: ``"measured"`` (this pair's stored ``w(σ)``, :func:`load_weight`)
    or a fixed number in ``[0, 1]``."""
    if choice == "measured":
        return load_weight(fine_checkpoint, coarse_checkpoint)
    w = float(choice)
    if not 0.0 <= w <= 1.0:
        raise PadisError(f"a coarse weight is 'measured' or a number in [0, 1], got {choice!r}")
    return w
