"""The one table of sampler defaults: ``(task, sampler, budget) -> SamplerSettings`` fields.

Used by :meth:`padis3d.solvers.reconstruct.SamplerSettings.for_task`, the CLI (``--budget``)
and the recipes. Every value was chosen on TRAINING slices of the chest CT (0-99, mostly
slice 90) with ``recipes/tune_samplers.py``; the log is ``results/tune_samplers.md``. Test
slices (110-132) were never used to choose them.

Budgets: ``cpu`` = 40 levels x 5 evaluations (200 network evaluations) for the
Algorithm-1 family (PaDIS, Langevin, PC, VE-DDNM), 50 levels for DDS (from the baseline at
σ = 0.5, η = 1; issue 16); ``paper`` = the paper's 100 levels x 10 (1000 evaluations), DDS 200
levels from noise at σ = 10, η = 0.85 (DiffusionBlend's reference).
Tasks: ``ct20``, ``ct8``, ``ct60`` (parallel-beam CT, 20 / 8 / 60 views), ``deblur`` (9x9 uniform, σ = 0.01),
``sr4`` (4x4 average pooling, σ = 0.01).
"""

from __future__ import annotations

from typing import Any

from padis3d.errors import PadisError

TASKS = ("ct20", "ct8", "ct60", "deblur", "sr4")
# ct60 (issue 15's table, recipes/test_time_adaptation.py) was NOT tuned: it takes ct20's values
# (DDS ρ = 1, σ_max = 0.05) and the Langevin ζ scaled by ||A_ct20|| / ||A_ct60|| = sqrt(20/60).
BUDGETS = {"cpu": {"steps": 40, "inner": 5}, "paper": {"steps": 100, "inner": 10}}
# DDS cpu (issue 16; recipes/evaluations_curve.py, results/evaluations_curve.md, TRAINING slice 90, CT 20 also
# slice 60): 50 levels from the baseline re-noised at σ = 0.5 with η = 1 (x ← D' + σ' z) against the former
# 100 levels from noise at σ = 10, η = 0.85, PSNR dB: CT 20 35.82 vs 35.52 (slice 60: 36.30 vs 35.90), CT 8
# 28.15 vs 27.80, CT 60 42.87 vs 42.75, deblur 30.43 vs 29.20, SR x4 29.26 vs 28.07; half the evaluations.
# η = 0.85 from the same start: 35.22; Heun-style steps (order 2) lost at equal evaluations.
DDS_BUDGETS = {"cpu": {"steps": 50, "init": "baseline", "sigma_max": 0.5, "eta": 1.0},
               "paper": {"steps": 200, "init": "noise", "sigma_max": 10.0, "eta": 0.85}}

# Algorithm-1 family: start from the baseline re-noised at σ_max, Karras ρ = 7 grid down to
# σ = 0.002 (the reference code's CT-20 run: σ ∈ [0.002, 0.02] from the FBP). σ_max per task,
# PaDIS on training slice 90 (results/tune_samplers.md): CT 20 {0.02: 33.99, 0.05: 34.07 dB},
# CT 8 {0.05: 25.42, 0.2: 25.82}, deblur {0.05: 29.84, 0.2: 29.79}, SR x4 {0.05, 0.2} (see log).
LOW_SIGMA = {"init": "baseline", "schedule": "karras", "sigma_min": 0.002}
SIGMA_MAX = {"ct20": 0.05, "ct8": 0.2, "ct60": 0.05, "deblur": 0.05, "sr4": 0.05}
PADIS = {"step_rule": "misfit", "step_size": 1.5, "epsilon": 0.5}
# Langevin / PC data step ζ min(40, 200σ) Aᵀr/||r|| (image units): CT 20 on slice 90, Langevin
# {0.001: 29.26, 0.003: 32.46, 0.01: 34.54 dB}, PC {0.003: 30.31}; other tasks not tuned (the
# ablation is CT 20 only): ζ scaled by ||A_ct20|| / ||A|| (≈ 50 at 128², 20 views; ≈ 32 at 8; 1).
LANGEVIN_ZETA = {"ct20": 0.01, "ct8": 0.016, "ct60": 0.006, "deblur": 0.5, "sr4": 0.5}
LANGEVIN = {"epsilon": 1.0}  # the reference's α = σ²
DDNM = {"epsilon": 0.5, "cg_iters": 20}
# DDS: geometric grid down to σ = 0.005, 5 CG steps; start, σ_max and η per budget; ρ and (cpu) TV weight per task
DDS = {"schedule": "geometric", "sigma_min": 0.005, "cg_iters": 5}
DDS_RHO = {"ct20": 1.0, "ct8": 1.0, "ct60": 1.0, "deblur": 0.1, "sr4": 0.01}
# DDS cpu: λ of the TV term in the data step (issue 28 §4, padis3d/solvers/tv_data_step.py; recipes/tv_in_dds.py,
# results/tv_in_dds.md). Grid on TRAINING slice 90, PSNR dB: CT 20 {0: 35.82, 0.003: 36.04, 0.01: 36.18, 0.03: 35.01},
# CT 8 {0: 28.15, 0.003: 28.52, 0.01: 28.40, 0.03: 26.62}, deblur {0: 30.47, 6e-5: 30.90, 1.8e-4: 31.31, 6e-4: 30.70},
# SR x4 {0: 29.23, 1e-5: 29.74, 3e-5: 29.88, 1e-4: 28.26}; confirmed on training slices 60 and 95 (gain on each of the
# 12 slice-task pairs: CT 20 +0.19..+0.36, CT 8 +0.29..+0.37, deblur +0.74..+0.84, SR x4 +0.52..+0.65). Reported, not
# tuned on: scikit-image camera/coins/moon/Shepp-Logan gained +0.09..+3.79 dB on all 16 image-task pairs. ct60 and
# the paper budget were not tuned: 0 (the plain CG step). Costs ~1.0-1.5x the plain DDS time (3 ADMM rounds x 5 CG).
DDS_TV = {"ct20": 0.01, "ct8": 0.003, "ct60": 0.0, "deblur": 0.00018, "sr4": 3e-05}


def default_fields(task: str, sampler: str, budget: str = "cpu") -> dict[str, Any]:
    """SamplerSettings fields for ``(task, sampler, budget)`` (``budget`` recorded too)."""
    if task not in TASKS or budget not in BUDGETS:
        raise PadisError(f"no defaults for task {task!r} / budget {budget!r}: tasks {TASKS}, budgets "
                         f"{tuple(BUDGETS)}")
    if sampler == "dds":
        return {"sampler": "dds", "budget": budget, **DDS, **DDS_BUDGETS[budget], "rho": DDS_RHO[task],
                "tv": DDS_TV[task] if budget == "cpu" else 0.0}
    family = {"padis": PADIS, "langevin": LANGEVIN | {"zeta": LANGEVIN_ZETA[task]},
              "pc": {"zeta": LANGEVIN_ZETA[task]}, "ddnm": DDNM}
    if sampler not in family:
        raise PadisError(f"no defaults for sampler {sampler!r}; choose one of {sorted(family) + ['dds']}")
    return {"sampler": sampler, "budget": budget, **BUDGETS[budget], **LOW_SIGMA, "sigma_max": SIGMA_MAX[task],
            **family[sampler]}
