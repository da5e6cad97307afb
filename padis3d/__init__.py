"""padis3d: patch-based diffusion priors for 2D and 3D imaging inverse problems."""

__version__ = "0.1.0"
