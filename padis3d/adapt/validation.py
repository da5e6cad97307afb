"""Self-validated adaptation (issue 28 §1, ALGORITHMS.md §9): a seeded split of the measurements
into a kept part (the adaptation loss sees only it) and a held-out part (its loss tells over-fitting
from help), with no noise level needed.

* :class:`MaskedOperator`: ``A_M x = M ⊙ A x`` and ``A_Mᵀ y = Aᵀ (M ⊙ y)`` for any operator with
  ``__call__``, ``adjoint``, ``in_shape``, ``out_shape`` (CT, blur, resampling, user operators);
* :func:`split_measurements`: whole views held out for CT (rows of the sinogram), single
  measurements (pixels) for every other operator;
* :class:`HeldOutLoss`: ``V(D) = ||M_v ⊙ (A x̂ − y)||²`` with ``x̂ = CG_keep(crop D(x; σ))``, the
  data step of the adaptation loss on the kept part only, so ``y_v`` is predicted, never fitted;
* :class:`Validation`: per adaptation round (one scheduled level), the held-out loss of three
  candidates at the same state and grid shift (the un-adapted prior, the adapter before the round
  and after it); the lower adapter is kept if it beats the un-adapted prior by a relative margin,
  else the un-adapted start (a worse round is rolled back), ``patience`` rounds without a better new
  adapter stop adaptation, and the decision at the end is "adapted" only if the adapter kept beat
  the un-adapted prior at its last comparison.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from padis3d.adapt.loss import SelfSupervisedLoss
from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator


class MaskedOperator(LinearOperator):
    """``x -> mask ⊙ A x`` for ``operator`` ``A``; ``mask`` ``(*A.out_shape)`` of 0/1 (bool or float),
    broadcast over batch and channels. Its adjoint is ``y -> Aᵀ (mask ⊙ y)`` (a 0/1 mask is its own
    adjoint). Differentiable wherever ``A`` is."""

    def __init__(self, operator: Any, mask: torch.Tensor) -> None:
        out_shape = tuple(int(s) for s in operator.out_shape)
        if tuple(mask.shape) != out_shape:
            raise PadisError(f"the measurement mask has shape {tuple(mask.shape)}, the operator's measurements "
                             f"{out_shape}")
        super().__init__(operator.in_shape, out_shape, getattr(operator, "device", "cpu"))
        self.operator, self.mask = operator, mask.to(self.device)

    def _weights(self, t: torch.Tensor) -> torch.Tensor:
        return self.mask.to(t.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``M ⊙ A x``: ``(B, C, *in_shape) -> (B, C, *out_shape)``."""
        y = self.operator(x)
        return y * self._weights(y)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᵀ (M ⊙ y)``: ``(B, C, *out_shape) -> (B, C, *in_shape)``."""
        return self.operator.adjoint(y * self._weights(y))

    A_adjoint = adjoint


def view_axis(operator: Any) -> int | None:
    """The axis of ``operator.out_shape`` that indexes projection views (CT), else None."""
    from padis3d.operators.ct import ConeBeam3D, ParallelBeam3D, _CT2D

    if isinstance(operator, MaskedOperator):
        return view_axis(operator.operator)
    if isinstance(operator, _CT2D):
        return 0  # (views, bins)
    if isinstance(operator, (ParallelBeam3D, ConeBeam3D)):
        return 1  # (slices, views, bins) / (rows, views, cols)
    return None


@dataclass(frozen=True)
class MeasurementSplit:
    """A partition of the measurements: ``keep`` ``(*out_shape)`` bool, its complement held out.
    unit: ``views`` (whole CT views held out) or ``measurements`` (single entries); ``units``: how
    many views / entries there are, ``held_units``: how many are held out."""

    keep: torch.Tensor
    unit: str
    units: int
    held_units: int
    fraction: float
    seed: int

    @property
    def held(self) -> torch.Tensor:
        return ~self.keep

    def kept_operator(self, operator: Any) -> MaskedOperator:
        return MaskedOperator(operator, self.keep)

    def held_operator(self, operator: Any) -> MaskedOperator:
        return MaskedOperator(operator, self.held)

    def to_report(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "unit": self.unit, "units": self.units, "held_out": self.held_units,
                "kept": self.units - self.held_units, "seed": self.seed}


def split_measurements(operator: Any, fraction: float, seed: int) -> MeasurementSplit:
    """Hold out ``round(fraction * units)`` (at least 1, at most all but one) random views (CT) or
    measurements (any other operator), drawn by a generator seeded with ``seed``."""
    if not 0 < fraction < 1:
        raise PadisError(f"the held-out fraction must be in (0, 1), got {fraction}")
    shape = tuple(int(s) for s in operator.out_shape)
    axis = view_axis(operator)
    units = shape[axis] if axis is not None else math.prod(shape)
    if units < 2:
        raise PadisError(f"cannot hold out part of {units} measurement{'s' * (units != 1)}")
    held_units = min(max(round(fraction * units), 1), units - 1)
    order = torch.randperm(units, generator=torch.Generator().manual_seed(int(seed)))
    held = torch.zeros(units, dtype=torch.bool)
    held[order[:held_units]] = True
    if axis is None:
        held = held.reshape(shape)
    else:
        view_shape = [1] * len(shape)
        view_shape[axis] = units
        held = held.reshape(view_shape).expand(shape).clone()
    return MeasurementSplit(~held, "views" if axis is not None else "measurements", units, held_units,
                            float(fraction), int(seed))


class HeldOutLoss:
    """``V = ||M_v ⊙ (A x̂ − y)||²`` (a float, summed over the batch) of a prior's estimate
    ``x̂ = CG_keep(crop D(x; σ))`` at a given grid shift; ``cg_iters``, ``rho`` as in the adaptation loss."""

    def __init__(self, operator: Any, y: torch.Tensor, split: MeasurementSplit, cg_iters: int, rho: float):
        keep = split.keep.to(y.device, y.dtype)
        self.kept = SelfSupervisedLoss(split.kept_operator(operator), y * keep, cg_iters, rho)
        self.held_op = split.held_operator(operator)
        self.y_held = y * (1 - keep)

    @torch.no_grad()
    def __call__(self, prior: Any, x: torch.Tensor, sigma: float, shift: tuple[int, ...]) -> float:
        estimate = self.kept.estimate(prior.crop(prior.denoise(x, sigma, shift=shift)))
        return float(((self.held_op(estimate) - self.y_held) ** 2).sum())


@dataclass
class ValidationRound:
    """One round (the adaptation steps at one level): held-out losses at that level's state of the
    un-adapted prior (``unadapted``), the adapter kept before the round (``before``) and after its
    steps (``after``); ``kept``: which of the three the run goes on with (``after``, ``before`` or
    ``unadapted``)."""

    level: int
    sigma: float
    steps: int
    unadapted: float
    before: float
    after: float
    kept: str


@dataclass
class Validation:
    """The held-out bookkeeping of one run (module docstring). ``current``: index of the round whose
    adapter is in use (None: the un-adapted start); ``touched``: whether any level was denoised with
    another adapter than the start one (then returning the un-adapted result means sampling again)."""

    split: MeasurementSplit
    loss: HeldOutLoss
    patience: int
    rounds: list[ValidationRound] = field(default_factory=list)
    current: int | None = None
    touched: bool = False
    stale: int = 0
    seconds: float = 0.0
    resampled: bool = False

    def record(self, r: ValidationRound) -> str:
        """Add a round whose ``kept`` is set; returns the stop reason (``validation``) or ''."""
        self.rounds.append(r)
        if r.kept == "after":
            self.current, self.stale = len(self.rounds) - 1, 0
        else:
            self.stale += 1
            if r.kept == "unadapted":
                self.current = None
        self.touched |= self.current is not None
        return "validation" if self.stale >= self.patience else ""

    @property
    def adapted(self) -> bool:
        """The decision: the adapter in use beat the un-adapted prior on the held-out part at its last
        comparison (the last round, where the lowest of the three was kept)."""
        return self.current is not None

    @property
    def resample(self) -> bool:
        """Whether the run must sample again without adaptation to return the un-adapted result."""
        return not self.adapted and self.touched

    def to_report(self) -> dict[str, Any]:
        """report.json's record: the split, the curve (one entry per round), the round chosen and the decision."""
        last = self.rounds[-1] if self.rounds else None
        chosen = self.rounds[self.current] if self.current is not None else None
        return {**self.split.to_report(), "patience": self.patience, "curve": [asdict(r) for r in self.rounds],
                "chosen_round": self.current, "chosen_level": chosen.level if chosen else None,
                "decision": "adapted" if self.adapted else "un-adapted",
                "heldout_unadapted": last.unadapted if last else None,
                "heldout_adapted": min(last.before, last.after) if last else None,
                "resampled_unadapted": self.resampled, "seconds": self.seconds}

    def summary(self) -> str:
        """One line for the terminal."""
        return summary_line(self.to_report())


def summary_line(report: dict[str, Any]) -> str:
    """One line of :meth:`Validation.to_report`'s record."""
    if not report["curve"]:
        return "validation: no round (nothing adapted)"
    verdict = (f"adapted (round {report['chosen_round']}, level {report['chosen_level']})"
               if report["decision"] == "adapted"
               else "returned the un-adapted result" + " (sampled again)" * report["resampled_unadapted"])
    return (f"validation on {report['held_out']} held-out {report['unit']}: {len(report['curve'])} rounds, held-out "
            f"loss un-adapted {report['heldout_unadapted']:.4g} vs adapted {report['heldout_adapted']:.4g}: {verdict}")
