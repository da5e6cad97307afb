"""Atomic file output: write to a temporary sibling, then ``os.replace`` it into place,
so an interrupted run never leaves a half-written file where a good one was."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from padis3d.errors import PadisError

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""``OSError.errno`` values that mean the disk (or the user's quota) is full."""


def is_disk_full(exc: BaseException) -> bool:
    """True for an ``OSError`` saying the disk or quota is full (ENOSPC, EDQUOT)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    A full disk (ENOSPC, EDQUOT) becomes a :class:`PadisError` naming ``path``; the previous
    ``path``, if any, is left as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if is_disk_full(exc):
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise PadisError(f"no space left on the device while writing {path} ({exc.strerror or exc}); {kept}: "
                             f"free disk space and rerun") from exc
        raise


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary siblings that :func:`atomic_path` leaves for ``path`` when its
    process is killed (SIGKILL) mid-write; returns what was removed. Call it only while no
    other process writes ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*") if p.is_file()]
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale


def json_safe(data: Any) -> Any:
    """``data`` with every non-finite float replaced by ``None`` (JSON has no NaN or Infinity: a
    PSNR of identical images, +inf, is written as ``null``)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, strict JSON (:func:`json_safe`), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_safe(data), indent=2, default=str, allow_nan=False) + "\n")


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
