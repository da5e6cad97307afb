"""Choosing a reconstruction method by held-out measurements (issue 28: a prior that never loses to TV
on data unlike its training set).

Each candidate (a function ``(operator, y) -> x``) reconstructs from the kept part of a seeded split
of the measurements (:func:`padis3d.adapt.validation.split_measurements`: 15% of the CT views, or of
the pixels for deblurring and super-resolution); the one whose image predicts the held-out part best,
``||M_v ⊙ (A x − y)||² / ||M_v ⊙ y||²``, is run again on all measurements and returned. This is hold-out
cross-validation of the method, as for choosing a regularisation weight (Hastie, Tibshirani & Friedman,
*Elements of Statistical Learning*, §7.10); it needs no noise level and no ground truth, and every
candidate sees the same split. Cost: one run per candidate on the kept part plus the final run.

The default candidates of the 2D tasks (:data:`padis3d.solvers.defaults.HOLDOUT_CANDIDATES`) are DDS
with the table's TV weight, DDS with ADMM-TV's weight in its data step, and ADMM-TV itself: on images
like the prior's training set the first wins, on piecewise-constant or unlike images the others do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from padis3d.errors import PadisError

Method = Callable[[Any, torch.Tensor], torch.Tensor]
"""A reconstruction method: ``(operator, y (B, C, *out)) -> x (B, C, *in)``."""


@dataclass
class HoldoutChoice:
    """The outcome: ``chosen`` (a candidate's name), ``image`` (its run on all measurements),
    ``losses`` (relative held-out misfit per candidate, in the order given), ``split`` (the split's
    record), ``seconds`` (per candidate on the kept part, and ``final``)."""

    chosen: str
    image: torch.Tensor
    losses: dict[str, float]
    split: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_report(self) -> dict[str, Any]:
        """report.json's record (no image)."""
        return {"chosen": self.chosen, "heldout_loss": self.losses, "split": self.split, "seconds": self.seconds}

    def summary(self) -> str:
        """One line for the terminal."""
        ranked = ", ".join(f"{name} {loss:.3g}" for name, loss in sorted(self.losses.items(), key=lambda kv: kv[1]))
        return (f"held-out choice on {self.split['held_out']} of {self.split['units']} {self.split['unit']}: "
                f"{self.chosen} (relative held-out misfit: {ranked})")


def choose_by_holdout(candidates: Sequence[tuple[str, Method]], operator: Any, y: torch.Tensor, *,
                      fraction: float = 0.15, seed: int = 0) -> HoldoutChoice:
    """Run each ``(name, method)`` on the kept measurements, keep the one with the lowest held-out misfit,
    and return it run on all of ``y`` (module docstring). Ties go to the earlier candidate."""
    from padis3d.adapt.validation import split_measurements

    names = [name for name, _ in candidates]
    if not candidates or len(set(names)) != len(names):
        raise PadisError(f"held-out choice needs at least one candidate with distinct names, got {names}")
    split = split_measurements(operator, fraction, seed)
    keep = split.keep.to(y.device)
    y_kept, y_held = y * keep.to(y.dtype), y * (~keep).to(y.dtype)
    kept_op, held_op = split.kept_operator(operator), split.held_operator(operator)
    scale = float((y_held ** 2).sum()) or 1.0
    losses: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name, method in candidates:
        t0 = time.perf_counter()
        x = method(kept_op, y_kept)
        seconds[name] = time.perf_counter() - t0
        if not torch.isfinite(x).all():
            losses[name] = float("inf")
            continue
        with torch.no_grad():
            losses[name] = float(((held_op(x) - y_held) ** 2).sum()) / scale
    chosen = min(names, key=lambda n: (losses[n], names.index(n)))
    if losses[chosen] == float("inf"):
        raise PadisError("every candidate gave non-finite values on the kept measurements")
    t0 = time.perf_counter()
    image = dict(candidates)[chosen](operator, y)
    seconds["final"] = time.perf_counter() - t0
    return HoldoutChoice(chosen, image, losses, split.to_report(), seconds)
