"""Priors by name: ``load_prior("chest128_patch")`` and ``--checkpoint chest128_patch`` find a
checkpoint wherever padis3d is installed.

A name (no folder part, no ``.pt``) is looked up as ``NAME.pt`` in the folders of the environment
variable ``PADIS3D_PRIORS`` (one or more folders, separated by ``os.pathsep``: the user's own
priors, searched first) and then in the shipped checkpoints, package data of ``padis3d``
(``padis3d/checkpoints``). Anything else is a path. :func:`padis3d.priors.catalog.list_priors`
describes every prior found, for ``padis3d priors``.
"""

from __future__ import annotations

import os
from pathlib import Path

from padis3d.errors import PadisError

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
"""The checkpoints shipped with the package (their model cards and loss curves beside them)."""
USER_PRIORS_ENV = "PADIS3D_PRIORS"
DEFAULT_PRIOR = "chest128_patch"
"""The prior of the CLI and the Python API when none is named: the 2D chest CT patch prior."""


def search_folders() -> list[Path]:
    """Where names are looked up, first match wins: ``$PADIS3D_PRIORS``'s folders, then the shipped ones."""
    user = [Path(p).expanduser() for p in os.environ.get(USER_PRIORS_ENV, "").split(os.pathsep) if p.strip()]
    return [*user, SHIPPED]


def is_name(text: str | Path) -> bool:
    """A prior name: no folder part and no ``.pt`` suffix (``chest128_patch``), as opposed to a path."""
    text = str(text)
    return bool(text) and os.sep not in text and "/" not in text and not text.endswith(".pt") and text not in (".", "..")


def resolve_prior(name_or_path: str | Path) -> Path:
    """The checkpoint file of a prior name (see the module docstring) or a path; PadisError naming
    the known priors when neither exists. Paths are returned as given (checked by the loader)."""
    if not is_name(name_or_path):
        return Path(name_or_path)
    if Path(name_or_path).is_file():  # a file in the working folder without a suffix
        return Path(name_or_path)
    for folder in search_folders():
        candidate = folder / f"{name_or_path}.pt"
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted({p.stem for f in search_folders() if f.is_dir() for p in f.glob("*.pt")})) or "none"
    raise PadisError(f"no prior named {name_or_path!r} (looked in {', '.join(map(str, search_folders()))}); "
                     f"known priors: {known}; or give the path of a .pt file")
