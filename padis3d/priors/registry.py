"""Priors by name: ``load_prior("chest128_patch")`` and ``--checkpoint chest128_patch`` find a
checkpoint wherever padis3d is installed.

A name (no folder part, no ``.pt``) is looked up as ``NAME.pt`` in the folders of the environment
variable ``PADIS3D_PRIORS`` (one or more folders, separated by ``os.pathsep``: the user's own
priors, searched first) and then in the shipped checkpoints, package data of ``padis3d``
(``padis3d/checkpoints``). Anything else is a path. :func:`list_priors` describes every prior
found, for ``padis3d priors``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PriorEntry:
    """One prior found by name: what ``padis3d priors`` lists."""

    name: str
    path: Path
    kind: str
    data: str
    orientation: str
    size_mb: float
    model_card: Path | None

    def row(self) -> list[str]:
        return [self.name, self.kind, self.data, self.orientation, f"{self.size_mb:.1f}",
                str(self.model_card) if self.model_card else "-"]


def _kind(meta: dict, config: dict) -> str:
    mode = meta.get("mode") or ("whole" if meta.get("patch_sizes") == [None] else "patch")
    dims = config.get("spatial_dims", 2)
    down = max(meta.get("downsample", [1]) or [1])
    return f"{mode} ({dims}D{f', downsampled {down}x' if down > 1 else ''})"


def list_priors() -> list[PriorEntry]:
    """Every prior reachable by name, first match per name (user folders shadow shipped ones)."""
    from padis3d.priors.checkpoint import data_orientation, read_checkpoint

    seen: dict[str, PriorEntry] = {}
    for folder in search_folders():
        for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
            if path.stem in seen:
                continue
            try:
                ckpt = read_checkpoint(path)
            except PadisError:
                continue  # not a prior (a training state's sibling, a foreign file): not listed
            meta = ckpt["meta"]
            data = meta.get("data", {}) if isinstance(meta.get("data"), dict) else {}
            try:
                o = data_orientation(meta, path)
                orientation = f"{o.get('plane')} {o.get('canonical')}"
            except PadisError:
                orientation = "unknown (retrain)"
            card = path.with_suffix(".md")
            seen[path.stem] = PriorEntry(path.stem, path, _kind(meta, ckpt["config"]), str(data.get("source", "-")),
                                         orientation, path.stat().st_size / 2**20, card if card.is_file() else None)
    return list(seen.values())
