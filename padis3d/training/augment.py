"""Training-time augmentation (``padis3d train --augment``): a prior that travels to other anatomy,
scanners, pixel spacings and HU windows than the ones it was trained on.

Applied by :class:`padis3d.training.data.PatchSampler` to each drawn training image (or slab) as a
whole, before its patches are cut, so the crop positions stay those of the augmented image. The
kinds, in the order they are applied (each independently per sample):

* ``flips``: each in-plane axis (rows, columns) flipped with probability 1/2.
* ``rot90``: a rotation by ``k`` quarter turns in the (rows, columns) plane, ``k`` uniform in 0..3
  (square images only). With ``flips``: the 8 symmetries of the square. Both are exact permutations
  of the pixel values.
* ``scale[=S]``: resampling by a factor ``s`` log-uniform in ``[1/S, S]`` about the image centre
  (default ``S = sqrt 2``: a 2x range of pixel spacings, the spread between scanners and fields of
  view), keeping the image size: ``s > 1`` zooms in (the borders fall outside), ``s < 1`` zooms
  out (the border is filled with 0, air in a CT window). Bilinear, so the values stay within
  ``[min(0, x), max(x)]`` (no overshoot out of [0, 1]); not anti-aliased (at most a 1.41x
  reduction).
* ``intensity[=A]``: ``x -> clip(0.5 + a (x - 0.5) + b, 0, 1)`` with the contrast ``a``
  log-uniform in ``[1/A, A]`` (default ``A = 1.25``) and the shift ``b`` uniform in
  ``[-INTENSITY_SHIFT, INTENSITY_SHIFT]`` (0.1): the same HU data read through another window,
  of width ``W / a`` and level ``L - b W / a`` for a training window of width ``W`` and level
  ``L`` (the chest CT's ``[-1000, 1000]`` HU becomes a width of 1600-2500 HU and a level within
  about +-250 HU).

Every random number comes from the training run's ``torch.Generator`` (the one ``state.pt``
saves), drawn only for the enabled kinds, so equal seeds give equal batches, a resumed run
continues bit-identically, and a run without augmentation draws exactly what it drew before.

Written with torch operations (``torch.flip``, ``torch.rot90``, ``affine_grid``/``grid_sample``)
rather than MONAI's ``RandFlip``/``RandRotate90``/``RandZoom``/``RandAdjustContrast``: those
transform one unbatched image at a time and draw from their own numpy ``RandomState``, which the
run's saved generator would not cover (so resume would not be exact), and their per-image
MetaTensor overhead would be paid ~70 times per step (the 16-pixel patches' batch); the torch
calls here transform the whole batch at once, with a parameter per sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from padis3d.errors import PadisError

KINDS = ("flips", "rot90", "scale", "intensity")
"""The augmentation kinds, in the order they are applied."""
DEFAULTS = {"scale": math.sqrt(2.0), "intensity": 1.25}
"""The parameter of the kinds that take one (``KIND=VALUE``), when not given."""
PARAM_RANGE = (1.0, 4.0)
"""Allowed ``S`` of ``scale=S`` and ``A`` of ``intensity=A`` (1 = no change)."""
INTENSITY_SHIFT = 0.1
"""Largest window-level shift ``b`` of ``intensity`` (in [0, 1] intensity units)."""


def parse_item(text: str) -> str:
    """One ``--augment`` item, ``KIND`` or ``KIND=VALUE``, checked and written canonically
    (``scale=1.5``); PadisError with a one-line reason otherwise."""
    kind, sep, value = text.strip().lower().partition("=")
    if kind not in KINDS:
        raise PadisError(f"unknown augmentation {text!r}: choose from {', '.join(KINDS)} "
                         f"(scale=S and intensity=A take a factor)")
    if not sep:
        return kind
    if kind not in DEFAULTS:
        raise PadisError(f"augmentation {kind!r} takes no value, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise PadisError(f"{kind}=VALUE needs a number, got {text!r}") from None
    lo, hi = PARAM_RANGE
    if not (math.isfinite(number) and lo <= number <= hi):
        raise PadisError(f"{kind}=VALUE must be a number in [{lo:g}, {hi:g}], got {text!r}")
    return f"{kind}={number:g}"


def canonical_items(items: Sequence[str]) -> list[str]:
    """Checked items (:func:`parse_item`) in :data:`KINDS` order; PadisError for a kind given twice."""
    parsed = [parse_item(t) for t in items]
    kinds = [p.partition("=")[0] for p in parsed]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise PadisError(f"augmentation {', '.join(twice)} given more than once")
    return sorted(parsed, key=lambda p: KINDS.index(p.partition("=")[0]))


@dataclass(frozen=True)
class Augment:
    """Which augmentations a training run applies; ``scale`` (``S``) and ``intensity`` (``A``)
    are None when off (see the module docstring for their meaning)."""

    flips: bool = False
    rot90: bool = False
    scale: float | None = None
    intensity: float | None = None
    intensity_shift: float = INTENSITY_SHIFT

    @classmethod
    def from_items(cls, items: Sequence[str] | None) -> Augment | None:
        """The augmentation of ``--augment`` items (``KIND`` or ``KIND=VALUE``); None for none."""
        if not items:
            return None
        values = {}
        for item in canonical_items(items):
            kind, _, value = item.partition("=")
            values[kind] = True if kind not in DEFAULTS else float(value) if value else DEFAULTS[kind]
        return cls(**values)

    def to_dict(self) -> dict:
        """What the checkpoint meta records (``kinds`` in the order applied, and every parameter)."""
        kinds = [k for k in KINDS if getattr(self, k) not in (False, None)]
        return {"kinds": kinds, **asdict(self)}

    def describe(self) -> str:
        """One line for the model card."""
        parts = (["random flips of rows and columns (p = 1/2 each)"] if self.flips else []) + \
            (["rotations by k x 90 degrees, k uniform in 0..3"] if self.rot90 else []) + \
            ([f"scale jitter: resampled by a factor log-uniform in [{1 / self.scale:.3f}, {self.scale:.3f}] "
              f"about the centre, same size (bilinear, zero border)"] if self.scale else []) + \
            ([f"window jitter: x -> clip(0.5 + a (x - 0.5) + b, 0, 1), a log-uniform in "
              f"[{1 / self.intensity:.3f}, {self.intensity:.3f}], b uniform in "
              f"[-{self.intensity_shift:g}, {self.intensity_shift:g}]"] if self.intensity else [])
        return "; ".join(parts) + " (each drawn per training image, before patches are cut)"

    def check(self, shape: Sequence[int]) -> None:
        """PadisError unless images of spatial ``shape`` can be augmented (2 spatial axes; square for rot90)."""
        if len(shape) != 2:
            raise PadisError(f"augmentation is for images (2 spatial axes: patch, whole or slab mode), "
                             f"got samples of spatial shape {tuple(shape)}")
        if self.rot90 and shape[0] != shape[1]:
            raise PadisError(f"rot90 augmentation needs square images, got {tuple(shape)}; drop rot90")

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copies of ``images`` ``(n, C, H, W)`` (float, [0, 1]; ``C`` slab slices share the
        draw); every draw from ``generator``. Returns ``(n, C, H, W)``."""
        self.check(images.shape[2:])
        x, n = images, images.shape[0]
        if self.flips:
            flip = torch.randint(2, (n, 2), generator=generator).bool()
            x = torch.where(flip[:, 0, None, None, None], x.flip(-2), x)
            x = torch.where(flip[:, 1, None, None, None], x.flip(-1), x)
        if self.rot90:
            turns = torch.randint(4, (n,), generator=generator)
            x = x.clone()
            for k in (1, 2, 3):
                sel = turns == k
                if bool(sel.any()):
                    x[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
        if self.scale:
            s = log_uniform(self.scale, n, generator)
            x = zoom(x, s)
        if self.intensity:
            a = log_uniform(self.intensity, n, generator).to(x.dtype).reshape(n, 1, 1, 1)
            b = (self.intensity_shift * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
                 ).to(x.dtype).reshape(n, 1, 1, 1)
            x = (0.5 + a * (x - 0.5) + b).clamp(0.0, 1.0)
        return x


def log_uniform(top: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` factors log-uniform in ``[1/top, top]`` (float64)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.exp((2 * u - 1) * math.log(top))


def zoom(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``images`` ``(n, C, H, W)`` magnified by ``factors`` ``(n,)`` about the centre, same size: pixel
    ``u`` (normalised, align_corners=False) takes the bilinear value at ``u / s``, 0 outside."""
    n = images.shape[0]
    theta = torch.zeros(n, 2, 3, dtype=images.dtype)
    inv = (1.0 / factors).to(images.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = inv, inv
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
