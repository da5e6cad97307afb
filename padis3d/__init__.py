"""padis3d: patch-based diffusion priors for 2D and 3D imaging inverse problems."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports, so ``import padis3d`` stays light: ``padis3d.load_prior``."""
    if name == "load_prior":
        from padis3d.priors.checkpoint import load_prior

        return load_prior
    raise AttributeError(f"module 'padis3d' has no attribute {name!r}")
