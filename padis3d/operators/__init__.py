"""Physics operators: CT (astra), blur, super-resolution resampling and noise."""

from padis3d.operators.base import LinearOperator, check_tensor
from padis3d.operators.blur import Blur, gaussian_kernel, uniform_kernel
from padis3d.operators.ct import (CT_TASKS, FBP_FILTERS, ConeBeam3D, FanBeam2D, ParallelBeam2D,
                                  ParallelBeam3D, astra_cuda_available)
from padis3d.operators.noise import chest_ct_attenuation_scale, gaussian_noise, poisson_photon_noise
from padis3d.operators.resample import BlockAverage, NearestSample, upsample

__all__ = [
    "LinearOperator", "check_tensor", "Blur", "gaussian_kernel", "uniform_kernel", "CT_TASKS", "FBP_FILTERS",
    "ConeBeam3D", "FanBeam2D", "ParallelBeam2D", "ParallelBeam3D", "astra_cuda_available",
    "chest_ct_attenuation_scale", "gaussian_noise", "poisson_photon_noise", "BlockAverage", "NearestSample",
    "upsample",
]
