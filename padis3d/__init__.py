"""padis3d: patch-based diffusion priors for 2D and 3D imaging inverse problems."""

__version__ = "0.1.0"


_EXPORTS = {
    "load_prior": "padis3d.priors.checkpoint",
    "Prior": "padis3d.priors.checkpoint",
    "reconstruct_volume": "padis3d.volume.reconstruct",
    "VolumeResult": "padis3d.volume.result",
    "VolumeSettings": "padis3d.volume.runner",
    "reconstruct_image": "padis3d.image.reconstruct",
    "ImageResult": "padis3d.image.reconstruct",
    "SamplerSettings": "padis3d.solvers.reconstruct",
}
"""Public names and the module each lives in."""


def __getattr__(name: str):
    """Lazy exports, so ``import padis3d`` stays light: ``padis3d.load_prior``, ``padis3d.reconstruct_volume``,
    ``padis3d.reconstruct_image`` and the types they take and return."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'padis3d' has no attribute {name!r}")
