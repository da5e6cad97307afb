"""Priors: the position-aware patch network with EDM preconditioning (:mod:`.network`),
checkpoints (:mod:`.checkpoint`), the whole-image score from patches (:mod:`.patch`), slabs and
slice jumps (:mod:`.slice_jump`), the two-scale prior (:mod:`.two_scale`), priors built from a
checkpoint (:mod:`.factory`) and the
Gaussian prior with an exact denoiser for closed-form tests (:mod:`.gaussian`)."""

from padis3d.priors.checkpoint import Prior, load_prior
from padis3d.priors.factory import patch_prior_from, two_scale_prior_from, volume_prior_from
from padis3d.priors.network import EDMDenoiser, PriorConfig
from padis3d.priors.patch import PatchPrior
from padis3d.priors.slice_jump import SliceJumpPrior
from padis3d.priors.two_scale import TwoScalePrior

__all__ = ["Prior", "load_prior", "patch_prior_from", "volume_prior_from", "two_scale_prior_from", "EDMDenoiser",
           "PriorConfig", "PatchPrior", "SliceJumpPrior", "TwoScalePrior"]
