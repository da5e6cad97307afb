"""Who owns a volume run's work folder: ``identity.json`` records the identity of the run whose state it
holds, and a run of another identity is refused (naming what differs) before it rewrites anything.

An identity is any object with a ``key`` (text), ``to_json()`` (what is recorded) and
``differences_from(recorded)`` (one phrase per difference from a recorded ``to_json()``; empty when
equal). The command line passes its :class:`padis3d.cli.identity.RunIdentity` (options and input
file hashes); a library call without one gets a :class:`KeyIdentity` of what it was given.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from padis3d.atomic import write_json
from padis3d.errors import PadisError

IDENTITY_FILE = "identity.json"
"""The work folder's record of the identity of the run whose state it holds."""


class WorkIdentity(Protocol):
    """What a work folder's owner must offer (see the module docstring)."""

    @property
    def key(self) -> str: ...

    def to_json(self) -> dict: ...

    def differences_from(self, recorded: Mapping[str, Any]) -> list[str]: ...


@dataclass(frozen=True)
class KeyIdentity:
    """An identity that is one key (e.g. a hash of the input, the prior and the task)."""

    key: str

    def to_json(self) -> dict:
        return {"key": self.key}

    def differences_from(self, recorded: Mapping[str, Any]) -> list[str]:
        old = str(recorded["key"])
        return [] if old == self.key else [f"run key {old} -> {self.key}"]


def committed_step(work: Path) -> int:
    """Levels committed in ``work`` (0: none, or no readable progress)."""
    try:
        return int(json.loads((work / "progress.json").read_text()).get("step", 0))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, ValueError, AttributeError):
        return 0


def check_work_identity(work: Path, identity: WorkIdentity) -> None:
    """PadisError when ``work`` holds committed progress of a run of another identity (named: what
    differs), or of a run that recorded none."""
    step = committed_step(work)
    if step == 0:
        return
    try:
        differ = identity.differences_from(json.loads((work / IDENTITY_FILE).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        differ = [f"no {IDENTITY_FILE}: made by an older padis3d"]
    if differ:
        raise PadisError(f"{work} holds a run at step {step} made with other input, geometry, prior or precision "
                         f"({'; '.join(differ)}): rerun its command to resume it, add --restart to discard it, "
                         f"or use another --out/--work-dir")


def record_work_identity(work: Path, identity: WorkIdentity) -> None:
    """Write ``work/identity.json``: the identity of the run that now owns the work folder."""
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / IDENTITY_FILE, identity.to_json())


def remove_new_entries(folder: Path, existed: set[Path]) -> None:
    """Remove what ``folder`` holds beyond ``existed`` (its entries before a failed step: files and folders
    that step added); the entries that existed are left as they are."""
    if not folder.is_dir():
        return
    for entry in set(folder.iterdir()) - existed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def undo_work(work: Path, fresh: bool, existed: set[Path]) -> None:
    """After a failed preparation: a ``fresh`` work folder (made for this run) goes whole; in one that
    existed only the entries beyond ``existed`` go, so no earlier run's arrays are lost."""
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    else:
        remove_new_entries(work, existed)
