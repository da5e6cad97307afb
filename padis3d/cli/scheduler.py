"""The dask.distributed scheduler of a volume run (``--scheduler``), connected before any work so
that an address nobody answers at is one line at the start, not a failure after the input was prepared."""

from __future__ import annotations

from typing import Any

from padis3d.errors import PadisError

CONNECT_TIMEOUT_S = 10.0
"""Seconds to wait for the scheduler to answer."""


def connect_scheduler(address: str, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` connected to ``address``; PadisError when the package is missing or the
    scheduler cannot be reached within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT_S`)."""
    try:
        from distributed import Client
    except ImportError:
        raise PadisError("--scheduler needs the dask.distributed package: pip install distributed") from None
    wait = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        return Client(address, timeout=wait, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise PadisError(f"--scheduler {address}: cannot reach a dask scheduler there within {wait:g} s "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); start it "
                         f"(dask scheduler) or leave --scheduler out to use threads") from None
