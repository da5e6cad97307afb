"""Classical baselines: FBP / pseudo-inverse / upsampling, ADMM-TV, PnP-ADMM, and the CG helper."""

from padis3d.baselines.cg import conjugate_gradient
from padis3d.baselines.classical import fbp, pseudo_inverse, upsample_baseline
from padis3d.baselines.pnp import pnp_admm
from padis3d.baselines.tv import admm_tv, gradient, gradient_adjoint, tv_norm
from padis3d.baselines.tv_weights import TV_WEIGHTS, tv_weight

__all__ = ["conjugate_gradient", "fbp", "pseudo_inverse", "upsample_baseline", "pnp_admm", "admm_tv",
           "gradient", "gradient_adjoint", "tv_norm", "TV_WEIGHTS", "tv_weight"]
