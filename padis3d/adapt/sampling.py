"""Test-time adaptation inside a sampler: a few Adam steps on the self-supervised loss at
chosen noise levels, then sampling continues with the adapted denoiser.

>>> tta = TestTimeAdapter(prior, operator, y, AdaptSettings(mode="lora", rank=4, lr=1e-3))  # doctest: +SKIP
>>> image = dds(tta.prior, x, sigmas, operator=operator, y=y, adapt=tta)   # doctest: +SKIP
>>> tta.save("adapter.pt")                                                  # doctest: +SKIP

``tta.prior`` is a copy of the prior whose denoiser is ``D_θ`` (base + adapter); the base
prior, its network and checkpoint are never modified. ``tta(i, n, sigma, x)`` is the hook a
sampler calls before denoising level ``i`` of ``n`` at state ``x``: it adapts when level ``i``
is scheduled (:meth:`AdaptSettings.scheduled`: SCD's rule, the first ``first`` levels and every
``every``-th, or an explicit list).

Gradients: streamed tile batch by tile batch (:func:`padis3d.adapt.loss.streamed_loss_grad`,
bounded memory) when the prior has a batch or memory limit, else one graph over all tiles (the
same gradient, one network pass fewer per step).

Over-fitting guard (DIP-like adaptation fits the noise): at each step the residual
``||A x̂ − y||`` (computed anyway) is compared with the discrepancy level
``τ sqrt(m) σ_noise`` (``m`` measurements, ``noise_sigma`` given): at or below it the step is
not taken and adaptation stops for good (the discrepancy principle). Independently, a
level's steps stop early when ``L`` has not fallen by a relative ``min_decrease`` for
``patience`` steps. Every step is recorded in ``history``.

Self-validation (``validate``, the default; :mod:`padis3d.adapt.validation`, issue 28): a seeded
fraction ``holdout`` of the measurements (CT: whole views) is held out; the adaptation loss sees
only the rest, while the sampler's own data steps keep using all of ``y``. Each scheduled level is
a round: after its steps the held-out loss of the estimate decides, at that level's state, between
the un-adapted prior, the adapter before the round and the adapter after it; the lower adapter is
kept if it beats the un-adapted prior by the relative margin ``val_margin``, else the un-adapted
start (a worse round is rolled back, Adam's state with it), and ``val_patience`` rounds in a row without
a better new adapter stop adaptation. When the adapter kept does not beat the un-adapted prior at
the end, the run's result is the un-adapted one (:meth:`TestTimeAdapter.result_stands`: sampled
again when an adapted level had been used). Works without a noise level.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from padis3d.adapt.adapters import (Adapter, AdaptedDenoiser, base_module, load_adapter, read_adapter_file,
                                    save_adapter)
from padis3d.adapt.loss import SelfSupervisedLoss, check_adaptable, full_graph_loss_grad, streamed_loss_grad
from padis3d.adapt.validation import HeldOutLoss, Validation, ValidationRound, split_measurements
from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior


@dataclass(frozen=True)
class AdaptSettings:
    """Settings of test-time adaptation. Defaults: the setting tuned on chest CT TRAINING slice 90
    with the ellipse-trained patch prior (``results/tune_adaptation.md``, "ellipse prior": +1.9 dB
    over plain DDS on CT 20): LoRA rank 4, lr 3e-3, <= 10 Adam steps at every 5th level with
    σ <= 0.5, the loss through 5 CG data steps. The public stand-ins the issue names (DDIP3D's
    rank 4, lr 1e-3; SCD's first 4 levels + every 20th) are one option each away; SCD's schedule
    adapts at σ ≈ 10, which lost 1.7 dB out of distribution in the same log.

    mode/rank/alpha/layers: see :class:`padis3d.adapt.adapters.Adapter`. lr: Adam learning rate.
    steps: Adam steps per scheduled level. first, every: schedule (levels ``i < first`` or
    ``i % every == 0``); levels: an explicit list of level indices instead; max_sigma: skip levels
    with a larger σ (None: none skipped). cg_iters, rho, tv: the loss
    (:class:`padis3d.adapt.loss.SelfSupervisedLoss`). noise_sigma: measurement noise
    std (None: no discrepancy stop); tau: discrepancy factor. patience, min_decrease: the
    plateau stop. seed: adapter initialisation, the adaptation's own grid shifts and the held-out
    split. validate: hold out ``holdout`` of the measurements (a fraction in (0, 1); CT: of the
    views) and validate every round on them, stopping after ``val_patience`` rounds without a better
    adapter; an adapter is kept only while its held-out loss is below ``1 - val_margin`` times the
    un-adapted prior's (module docstring).
    """

    mode: str = "lora"
    rank: int = 4
    alpha: float | None = None
    layers: tuple[str, ...] = ("conv", "linear")
    lr: float = 3e-3
    steps: int = 10
    first: int = 0
    every: int = 5
    levels: tuple[int, ...] | None = None
    max_sigma: float | None = 0.5
    cg_iters: int = 5
    rho: float = 1.0
    tv: float = 0.0
    noise_sigma: float | None = None
    tau: float = 1.0
    patience: int = 3
    min_decrease: float = 1e-3
    seed: int = 0
    validate: bool = True
    holdout: float = 0.15
    val_patience: int = 2
    val_margin: float = 0.01

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.steps < 1 or self.first < 0 or self.every < 1 or self.tau <= 0 \
                or self.patience < 1 or self.min_decrease < 0:
            raise PadisError(f"bad adaptation settings {self}: need lr > 0, steps >= 1, first >= 0, every >= 1, "
                             f"tau > 0, patience >= 1, min_decrease >= 0")
        if self.max_sigma is not None and self.max_sigma <= 0:
            raise PadisError(f"max_sigma must be > 0, got {self.max_sigma}")
        if self.noise_sigma is not None and self.noise_sigma < 0:
            raise PadisError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if not 0 < self.holdout < 1 or self.val_patience < 1 or not 0 <= self.val_margin < 1:
            raise PadisError(f"need 0 < holdout < 1, val_patience >= 1 and 0 <= val_margin < 1, got {self.holdout}, "
                             f"{self.val_patience}, {self.val_margin}")

    def scheduled(self, i: int, sigma: float | None = None) -> bool:
        """Whether level ``i`` (noise ``sigma``) adapts."""
        if self.max_sigma is not None and sigma is not None and sigma > self.max_sigma:
            return False
        if self.levels is not None:
            return i in self.levels
        return i < self.first or i % self.every == 0


@dataclass
class AdaptStep:
    """One Adam step: level ``i``, ``sigma``, loss ``L`` and residual norm before the step, and
    whether the step was taken (False: a stop rule fired)."""

    level: int
    sigma: float
    loss: float
    residual: float
    taken: bool


def adapted_prior(prior: PatchPrior, adapter: Adapter) -> PatchPrior:
    """A shallow copy of ``prior`` whose denoiser is ``D_θ`` (``prior`` itself is unchanged)."""
    check_adaptable(prior)
    out = copy.copy(prior)
    out.denoiser = AdaptedDenoiser(prior.denoiser, adapter)
    return out


@dataclass
class TestTimeAdapter:
    """The adaptation state for one reconstruction (see the module docstring).

    prior: the base :class:`PatchPrior`; operator, y: the problem; adapter: start from this
    adapter (e.g. :func:`padis3d.adapt.adapters.load_adapter`) instead of a fresh one;
    on_step: called with each :class:`AdaptStep` (progress bars).
    """

    __test__ = False  # not a pytest class

    base: PatchPrior
    operator: Any
    y: torch.Tensor
    settings: AdaptSettings = field(default_factory=AdaptSettings)
    adapter: Adapter | None = None
    on_step: Callable[[AdaptStep], None] | None = None

    def __post_init__(self) -> None:
        s = self.settings
        model = base_module(self.base.denoiser)
        fresh = self.adapter is None
        if fresh:
            self.adapter = Adapter(model, s.mode, s.rank, s.alpha, s.layers, seed=s.seed)
        self.prior = adapted_prior(self.base, self.adapter)
        # the prior before this run's adaptation: what "un-adapted" means (a loaded adapter's state)
        self.unadapted_prior = self.base if fresh else adapted_prior(self.base, copy.deepcopy(self.adapter))
        self.params = list(self.adapter.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=s.lr)
        self.generator = torch.Generator().manual_seed(s.seed)
        self.history: list[AdaptStep] = []
        self.stopped: str | None = None  # "discrepancy" (noise level reached) or "validation" (patience)
        self.seconds = 0.0  # time spent adapting (wall clock), validation included
        # without a batch or memory limit one graph over all tiles is cheaper (no separate pass for D)
        self._loss_grad = streamed_loss_grad if self.base.streamed_vjp else full_graph_loss_grad
        self.validation: Validation | None = None
        operator, y, m = self.operator, self.y, self.y.numel()
        if s.validate:
            split = split_measurements(self.operator, s.holdout, s.seed)
            self.validation = Validation(split, HeldOutLoss(self.operator, self.y, split, s.cg_iters, s.rho),
                                         s.val_patience)
            self._val_generator = torch.Generator().manual_seed(s.seed + 1)
            self._start = self._snapshot()
            operator, y = split.kept_operator(self.operator), self.y * split.keep.to(self.y.device, self.y.dtype)
            m = m * (split.units - split.held_units) // split.units
        self.loss = SelfSupervisedLoss(operator, y, s.cg_iters, s.rho, s.tv)
        self.discrepancy = None if s.noise_sigma is None else s.tau * math.sqrt(m) * s.noise_sigma

    def __call__(self, i: int, n: int, sigma: float, x: torch.Tensor) -> None:
        """Sampler hook: adapt at level ``i`` of ``n`` (state ``x`` at noise ``sigma``) when scheduled."""
        if self.stopped is None and self.settings.scheduled(i, sigma):
            if self.validation is None:
                self.adapt(x, sigma, level=i)
            else:
                self._validated_round(x, sigma, i)

    def _validated_round(self, x: torch.Tensor, sigma: float, level: int) -> None:
        """Adapt at ``level``, then keep the lowest held-out loss of (un-adapted, before, after)."""
        v = self.validation
        t0 = time.perf_counter()
        shift = self.prior.grid.random_shift(self._val_generator)
        unadapted = v.loss(self.unadapted_prior, x, sigma, shift)
        before = unadapted if v.current is None else v.loss(self.prior, x, sigma, shift)
        snapshot = self._snapshot()
        spent = time.perf_counter() - t0
        self.seconds += spent
        v.seconds += spent
        steps = self.adapt(x, sigma, level=level)
        t0 = time.perf_counter()
        after = v.loss(self.prior, x, sigma, shift)
        adapted = min(after, before) if v.current is not None else after
        if adapted >= (1 - self.settings.val_margin) * unadapted:
            kept = "unadapted"
            self._restore(self._start)
        elif after <= adapted:
            kept = "after"
        else:
            kept = "before"
            self._restore(snapshot)
        stop = v.record(ValidationRound(level, float(sigma), sum(s.taken for s in steps), unadapted, before, after,
                                        kept))
        if stop and self.stopped is None:
            self.stopped = stop
        spent = time.perf_counter() - t0
        self.seconds += spent
        v.seconds += spent

    def _snapshot(self) -> tuple[list[torch.Tensor], dict]:
        return [p.detach().clone() for p in self.params], copy.deepcopy(self.optimizer.state_dict())

    def _restore(self, snapshot: tuple[list[torch.Tensor], dict]) -> None:
        values, state = snapshot
        with torch.no_grad():
            for p, value in zip(self.params, values):
                p.copy_(value)
        self.optimizer.load_state_dict(copy.deepcopy(state))

    def result_stands(self) -> bool:
        """Called once sampling ended: whether its result is the run's. False when validation decided
        for the un-adapted prior after some level was denoised adapted: sample again with
        ``unadapted_prior`` and no adaptation (the adapter is then reset to its start, so the saved
        adapter is what the returned result used)."""
        v = self.validation
        if v is None or v.adapted:
            return True
        self._restore(self._start)
        v.resampled = v.resample
        return not v.resampled

    def adapt(self, x: torch.Tensor, sigma: float, level: int = -1, steps: int | None = None) -> list[AdaptStep]:
        """Up to ``steps`` (default ``settings.steps``) Adam steps on ``L`` at state ``x``; returns them."""
        s = self.settings
        done: list[AdaptStep] = []
        t0 = time.perf_counter()
        try:
            self._steps(x, sigma, level, s.steps if steps is None else steps, done)
        finally:
            self.seconds += time.perf_counter() - t0
        return done

    def _steps(self, x: torch.Tensor, sigma: float, level: int, count: int, done: list[AdaptStep]) -> None:
        s = self.settings
        best, stale = math.inf, 0
        for _ in range(count):
            shift = self.prior.grid.random_shift(self.generator)
            ev = self._loss_grad(self.prior, x, sigma, self.loss, self.params, shift)
            if not math.isfinite(ev.loss):
                raise AdaptationDiverged(level, sigma, f"its loss is {ev.loss}", s.lr)
            stop = self.discrepancy is not None and ev.residual_norm <= self.discrepancy
            if ev.loss < best * (1 - s.min_decrease):
                best, stale = ev.loss, 0
            else:
                stale += 1
            step = AdaptStep(level, float(sigma), ev.loss, ev.residual_norm, taken=not stop)
            if not stop:
                for p, g in zip(self.params, ev.grads):
                    p.grad = g
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                if not all(bool(torch.isfinite(p).all()) for p in self.params):
                    raise AdaptationDiverged(level, sigma, "its weights are no longer finite", s.lr)
            done.append(step)
            self.history.append(step)
            if self.on_step is not None:
                self.on_step(step)
            if stop:
                self.stopped = "discrepancy"
                break
            if stale >= s.patience:
                break

    def save(self, path: str | Path) -> Path:
        """Write the adapter (small file; the base checkpoint is untouched) with the settings and history."""
        return save_adapter(self.adapter, self.base.denoiser, path,
                            extra={"settings": asdict(self.settings), "stopped": self.stopped,
                                   "history": [asdict(h) for h in self.history],
                                   **({"validation": self.validation.to_report()} if self.validation else {})})

    @classmethod
    def from_file(cls, path: str | Path, base: PatchPrior, operator: Any, y: torch.Tensor,
                  settings: AdaptSettings | None = None, **kw) -> TestTimeAdapter:
        """Continue from a saved adapter (its recorded settings unless ``settings`` is given)."""
        payload = read_adapter_file(path)
        adapter = load_adapter(path, base.denoiser, payload)
        if settings is None:
            settings = AdaptSettings(**recorded_settings(payload))
        return cls(base, operator, y, settings, adapter=adapter, **kw)


class AdaptationDiverged(PadisError):
    """Test-time adaptation blew up (non-finite loss, weights or denoised images): the learning rate is too high."""

    def __init__(self, level: int, sigma: float, what: str, lr: float):
        where = f" at level {level} (sigma {sigma:g})" if level >= 0 else ""
        super().__init__(f"test-time adaptation diverged{where}: {what}; lower the learning rate (--adapt-lr, "
                         f"now {lr:g}) or take fewer Adam steps per level (--adapt-steps)")


def stored_settings(path: str | Path) -> dict[str, Any]:
    """The :class:`AdaptSettings` fields recorded in an adapter file (PadisError if it is not one)."""
    return recorded_settings(read_adapter_file(path))


def recorded_settings(payload: dict) -> dict[str, Any]:
    """The :class:`AdaptSettings` fields in an adapter file's contents (unknown names dropped)."""
    known = {f.name for f in fields(AdaptSettings)}
    stored = payload.get("extra", {}).get("settings", {})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}


def levels_adapted(settings: AdaptSettings, sigmas: Sequence[float]) -> list[int]:
    """The indices of the levels of the grid ``sigmas`` that adapt (for reports and checks)."""
    return [i for i, sigma in enumerate(sigmas) if settings.scheduled(i, float(sigma))]
