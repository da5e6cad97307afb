"""The engine's single error type: bad geometry, shapes, shifts or budgets."""


class TilingError(ValueError):
    """A tiling request that cannot be honoured; the message names the fix."""
