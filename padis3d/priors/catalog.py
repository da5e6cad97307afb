"""What ``padis3d priors`` lists: every prior reachable by name (:mod:`padis3d.priors.registry`),
with its kind, training data, orientation, size and model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from padis3d.errors import PadisError
from padis3d.priors.checkpoint import data_orientation, read_checkpoint
from padis3d.priors.registry import search_folders


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
