"""2D reconstruction with a diffusion prior: sampler settings, one call that runs any
posterior sampler from noise or from a baseline, and a tqdm progress callback (σ, data
residual, ETA). Used by ``padis3d reconstruct``, the recipes and the demo."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.solvers import POSTERIOR_SAMPLERS, Callback, StatePrior, geometric_sigmas, init_state, karras_sigmas


@dataclass
class SamplerSettings:
    """Noise levels ``steps`` from ``sigma_max`` to ``sigma_min`` (``schedule`` geometric or
    karras); ``inner`` evaluations per level (PaDIS, Langevin, VE-DDNM; PC: ``inner - 1``
    corrector steps, at least one, and the predictor); PaDIS data step ``step_rule`` (``misfit``: weight
    ``step_size/||A||²`` on ``∇½||A D - y||²``; ``norm`` / ``paper``: ζ-rules capped there, see
    :mod:`padis3d.solvers.padis`); ``zeta``: ζ of those rules and of the Langevin/PC data step
    ``ζ min(40, 200σ) Aᵀr/||r||``; ``epsilon``: Langevin step ``α = ε σ²``; ``init``: start from
    noise or from the baseline (FBP / pseudo-inverse / upsampled) plus ``sigma_max`` noise;
    ``eta``: DDS re-noising; ``rho``, ``cg_iters``: the DDS data-consistency problem and its CG
    steps (``cg_iters`` also sets the least-squares steps that stand in for ``A†`` in VE-DDNM
    when ``A.pinv`` is not exact); ``order``: DDS's step, 1 (DDIM) or 2 (Heun-style, two
    evaluations per level but the last); ``tv``: λ of an isotropic TV term in DDS's data step
    (``min ½||Ax - y||² + ρ/2||x - D||² + λ TV(x)``, 3 ADMM rounds of ``cg_iters`` CG steps,
    :mod:`padis3d.solvers.tv_data_step`; 0: the plain CG step). ``budget`` is a label (``cpu``, ``paper`` or ``custom``);
    :meth:`for_task` fills every field from the one table of defaults,
    :data:`padis3d.solvers.defaults.DEFAULTS`."""

    sampler: str = "padis"
    steps: int = 40
    inner: int = 5
    sigma_max: float = 3.0
    sigma_min: float = 0.005
    schedule: str = "geometric"
    step_rule: str = "misfit"
    step_size: float = 1.5
    zeta: float = 0.1
    epsilon: float = 0.5
    eta: float = 0.85
    rho: float = 1.0
    cg_iters: int = 5
    init: str = "noise"
    seed: int = 0
    budget: str = "custom"
    order: int = 1
    tv: float = 0.0

    @classmethod
    def for_task(cls, task: str, sampler: str = "dds", budget: str = "cpu", **overrides: Any) -> SamplerSettings:
        """The table's settings for ``task`` (ct20, ct8, deblur, sr4), ``sampler`` and ``budget``
        (``cpu`` or ``paper``), with ``overrides`` on top."""
        from padis3d.solvers.defaults import default_fields

        return cls(**(default_fields(task, sampler, budget) | overrides))

    def __post_init__(self) -> None:
        if self.sampler not in POSTERIOR_SAMPLERS:
            raise PadisError(f"unknown sampler {self.sampler!r}; choose one of {sorted(POSTERIOR_SAMPLERS)}")
        if self.steps < 1 or self.inner < 1:
            raise PadisError(f"steps and inner must be >= 1, got steps={self.steps}, inner={self.inner}")
        if not 0 < self.sigma_min < self.sigma_max < math.inf:
            raise PadisError(f"need 0 < sigma_min < sigma_max < inf, got {self.sigma_min}, {self.sigma_max}")
        if self.schedule not in ("geometric", "karras"):
            raise PadisError(f"schedule must be 'geometric' or 'karras', got {self.schedule!r}")
        if self.init not in ("noise", "baseline"):
            raise PadisError(f"init must be 'noise' or 'baseline', got {self.init!r}")
        if self.step_rule not in ("misfit", "norm", "paper") or not 0 < self.step_size < 2:
            raise PadisError(f"need step_rule in misfit/norm/paper and 0 < step_size < 2 (stable), got "
                             f"{self.step_rule!r}, {self.step_size}")
        if self.budget not in ("cpu", "paper", "custom"):
            raise PadisError(f"budget must be 'cpu', 'paper' or 'custom', got {self.budget!r}")
        if not (0 <= self.zeta < math.inf and 0 < self.epsilon < math.inf):
            raise PadisError(f"zeta must be >= 0 and epsilon > 0 (both finite), got {self.zeta}, {self.epsilon}")
        if not (0 < self.rho < math.inf and self.cg_iters >= 0 and 0 <= self.eta <= 1):
            raise PadisError(f"need rho > 0, cg_iters >= 0 and 0 <= eta <= 1, got {self.rho}, {self.cg_iters}, "
                             f"{self.eta}")
        if self.order not in (1, 2) or (self.order == 2 and self.sampler != "dds"):
            raise PadisError(f"order must be 1, or 2 with the dds sampler; got order={self.order!r} with "
                             f"{self.sampler!r}")
        if not 0 <= self.tv < math.inf or (self.tv > 0 and self.sampler != "dds"):
            raise PadisError(f"tv (TV in DDS's data step) must be >= 0 and finite, and > 0 only with the dds sampler; "
                             f"got tv={self.tv!r} with {self.sampler!r}")

    def sigmas(self) -> torch.Tensor:
        make = geometric_sigmas if self.schedule == "geometric" else karras_sigmas
        return make(self.sigma_max, self.sigma_min, self.steps)

    @property
    def evaluations(self) -> int:
        """Network evaluations (``inner`` per level; DDS: one, or two but at the last level with ``order=2``)."""
        if self.sampler == "dds":
            return self.order * self.steps - (self.order - 1)
        return self.steps * (max(self.inner, 2) if self.sampler == "pc" else self.inner)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sampler_options(settings: SamplerSettings) -> dict[str, Any]:
    s = settings
    return {
        "padis": {"step_rule": s.step_rule, "step_size": s.step_size, "zeta": s.zeta, "inner": s.inner,
                  "epsilon": s.epsilon},
        "langevin": {"zeta": s.zeta, "inner": s.inner, "epsilon": s.epsilon},
        "pc": {"zeta": s.zeta, "corrector_steps": max(s.inner - 1, 1)},
        "ddnm": {"inner": s.inner, "epsilon": s.epsilon, "cg_iters": s.cg_iters},
        "dds": {"eta": s.eta, "rho": s.rho, "cg_iters": s.cg_iters, "order": s.order, "tv": s.tv},
    }[s.sampler]


ADAPTING_SAMPLERS = ("dds", "padis")
"""Samplers with a test-time adaptation hook (``adapt=``)."""


def reconstruct(prior: StatePrior, operator: Any, y: torch.Tensor, settings: SamplerSettings, *,
                baseline: torch.Tensor | None = None, callback: Callback | None = None,
                adapt: Any | None = None) -> torch.Tensor:
    """Posterior sample for ``y = A x + n``: ``(B, C, *image)`` from measurements ``(B, C, *out)``.

    adapt: a :class:`padis3d.adapt.TestTimeAdapter` made for ``prior`` (and this ``operator``,
    ``y``); the sampler then runs on its adapted prior (``dds`` and ``padis`` only), and when its
    held-out validation decides against adapting after adapted levels were used, the un-adapted run
    is sampled again from the same seed (:meth:`padis3d.adapt.TestTimeAdapter.result_stands`)."""
    if settings.init == "baseline" and baseline is None:
        raise PadisError("init='baseline' needs a baseline image")
    extra: dict[str, Any] = {}
    if adapt is not None:
        if settings.sampler not in ADAPTING_SAMPLERS:
            raise PadisError(f"test-time adaptation works with the samplers {ADAPTING_SAMPLERS}, not "
                             f"{settings.sampler!r}")
        if adapt.base is not prior:
            raise PadisError("the adapter was made for another prior than the one given")
        prior, extra = adapt.prior, {"adapt": adapt}
    generator = torch.Generator().manual_seed(settings.seed)
    x = init_state(prior, y.shape[:2], settings.sigma_max, generator=generator, dtype=y.dtype,
                   baseline=baseline if settings.init == "baseline" else None)
    sampler = POSTERIOR_SAMPLERS[settings.sampler]
    out = sampler(prior, x, settings.sigmas(), operator=operator, y=y, generator=generator, callback=callback,
                  **sampler_options(settings), **extra)
    if adapt is not None and not adapt.result_stands():  # validated adaptation lost to the un-adapted prior
        return reconstruct(adapt.unadapted_prior, operator, y, settings, baseline=baseline, callback=callback)
    return out


class ProgressBar:
    """A sampler callback showing level, σ, data residual and ETA (tqdm); use as a context."""

    def __init__(self, levels: int, desc: str = "sampling", disable: bool = False):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=levels, desc=desc, unit="level", disable=disable, dynamic_ncols=True)
        self.post: dict[str, str] = {}
        self.adapt: dict[str, str] = {}
        self.adapt_steps = 0

    def __call__(self, info: dict[str, Any]) -> None:
        self.post = {"sigma": f"{info['sigma']:.3g}"}
        if info.get("residual") is not None:
            self.post["residual"] = f"{float(info['residual'].mean()):.3g}"
        self.bar.set_postfix(self.post | self.adapt, refresh=False)
        self.bar.update(1)

    def adapt_step(self, step: Any) -> None:
        """Test-time adaptation's ``on_step``: shows the adaptation loss and the steps so far."""
        self.adapt_steps += 1
        self.adapt = {"adapt loss": f"{step.loss:.3g}", "adapt steps": str(self.adapt_steps)}
        self.bar.set_postfix(self.post | self.adapt)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
