"""A check's record and strict JSON."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


class Record(dict):
    """One check's record; ``save()`` writes it where the parent reads it (also mid-check)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__(status="running")
        self.path = path

    def save(self) -> None:
        if self.path is not None:
            write_json(self.path, self)

    def expect(self, name: str, holds: bool) -> None:
        """Record an expectation; a false one fails the check at its end."""
        self.setdefault("expectations", {})[name] = bool(holds)


class Skip(Exception):
    """A check (or part) that cannot run here: recorded as skipped with this reason."""


def clean(value: Any) -> Any:
    """``value`` as strict JSON: non-finite floats as strings, numpy scalars as numbers, paths as text."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return clean(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
