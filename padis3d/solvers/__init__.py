"""Samplers with one signature ``(prior, x, sigmas, *, operator=None, y=None, generator=None,
callback=None, **options)``, noise-level schedules and the state initialisation. ``ddnm`` is
VE-DDNM (range-null-space Langevin); per-task defaults live in :mod:`padis3d.solvers.defaults`."""

from padis3d.solvers.common import Callback, StatePrior, init_state
from padis3d.solvers.ddnm import ve_ddnm
from padis3d.solvers.dds import dds
from padis3d.solvers.generation import ddim, edm_heun
from padis3d.solvers.langevin import langevin, predictor_corrector
from padis3d.solvers.padis import padis_dps
from padis3d.solvers.schedules import geometric_sigmas, karras_sigmas

POSTERIOR_SAMPLERS = {"padis": padis_dps, "langevin": langevin, "pc": predictor_corrector, "ddnm": ve_ddnm,
                      "dds": dds}
GENERATION_SAMPLERS = {"heun": edm_heun, "ddim": ddim, "langevin": langevin, "pc": predictor_corrector}

__all__ = ["Callback", "StatePrior", "init_state", "padis_dps", "langevin", "predictor_corrector", "ve_ddnm", "dds",
           "edm_heun", "ddim", "geometric_sigmas", "karras_sigmas", "POSTERIOR_SAMPLERS", "GENERATION_SAMPLERS"]
