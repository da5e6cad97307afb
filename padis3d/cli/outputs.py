"""Output folders of a command, claimed before any work: never an input, writable, one run at a time.

Every command that writes declares an :class:`OutputPlan` (its folder, the names it will write
there, files it writes elsewhere, the paths it reads); :func:`claim_outputs` checks the plan and
holds the folder's lock for the whole run. The checks, all before the first byte of work:

* no output is an input, and the folder is neither an input folder nor inside one (a run would
  otherwise overwrite its data, or mix its outputs into a data folder that the next run reads);
* the folder is (or can be made) a folder that this process can create files in, and no
  planned output name is taken by a folder;
* no other padis3d run holds the folder: an exclusive ``flock`` on ``OUT/.padis3d.lock``, released
  (and the file removed) when the run ends; a second run on the folder fails at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from padis3d.errors import PadisError

LOCK_NAME = ".padis3d.lock"


@dataclass
class OutputPlan:
    """What a run will write and read. ``files``: names inside ``folder`` (a trailing ``/`` marks a
    sub-folder); ``extra``: files written outside it (e.g. ``train --export``); ``inputs``: paths read;
    ``work``: a second folder the run owns (a volume run's ``--work-dir``), checked and locked like ``folder``;
    ``own``: files read that the run's ``files`` replace by design (the training state ``OUT/state.pt``
    that ``train --resume`` continues): no ``extra`` output may replace them."""

    folder: Path
    files: Sequence[str] = ()
    extra: Sequence[Path] = ()
    inputs: Sequence[str | Path] = field(default_factory=list)
    work: Path | None = None
    own: Sequence[Path] = ()

    @property
    def folders(self) -> list[Path]:
        return [self.folder] + ([self.work] if self.work is not None else [])


def file_inputs(*paths: str | Path | None) -> list[Path]:
    """The paths among ``paths`` that can name input files: ``None`` and folders are left out (a
    folder given where a file is read is the command's own clear error)."""
    return [Path(p) for p in paths if p is not None and not Path(p).is_dir()]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def check_not_input(plan: OutputPlan) -> None:
    """PadisError when an output would replace an input or the folder would mix into an input folder."""
    folder = plan.folder.resolve()
    outputs = [folder / name.rstrip("/") for name in plan.files] + [Path(p).resolve() for p in plan.extra]
    for raw in plan.inputs:
        src = Path(raw).resolve()
        for given in plan.folders:
            if src.is_dir() and _inside(given.resolve(), src):
                raise PadisError(f"{given} is the input folder {raw} or inside it: outputs would mix with the "
                                 f"data; choose an output folder outside {raw}")
            if src.is_file() and _same_file(given.resolve(), src):
                raise PadisError(f"{given} is the input file {raw}; outputs go into a folder")
        if not src.is_file():
            continue
        for out in outputs:
            if _same_file(out, src):
                raise PadisError(f"the output {out} would overwrite the input {raw}; choose another --out")
    for raw in plan.own:
        for out in plan.extra:
            if _same_file(Path(out).resolve(), Path(raw).resolve()):
                raise PadisError(f"the output {out} would overwrite the input {raw} (the state this run "
                                 f"continues); choose another file")


def check_writable(plan: OutputPlan) -> None:
    """Create the folder if needed and prove that files can be made in it and beside every extra output."""
    for given in plan.folders:
        if given.exists() and not given.is_dir():
            raise PadisError(f"{given} exists and is not a folder; give a folder (new or existing)")
    for name in plan.files:
        target = plan.folder / name.rstrip("/")
        if name.endswith("/") and target.exists() and not target.is_dir():
            raise PadisError(f"{target} exists and is not a folder; the run needs it as a folder: remove it")
        if not name.endswith("/") and target.is_dir():
            raise PadisError(f"the output {target} exists as a folder; remove it or choose another --out")
    for path in plan.extra:
        if Path(path).is_dir():
            raise PadisError(f"the output {path} exists as a folder; give a file name")
    for folder in [*plan.folders, *{Path(p).parent for p in plan.extra}]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".padis3d-probe-"):
                pass
        except OSError as exc:
            raise PadisError(f"cannot write into {folder} ({exc.strerror or exc}); choose a writable --out") from None


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s run lock; PadisError at once when another process holds it."""
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise PadisError(f"{folder} is in use by another padis3d run (pid {other}); wait for it to finish "
                             f"or choose another --out") from None
        # the file may have been removed by the run that held it just before we locked: lock the new one
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def claim_outputs(plan: OutputPlan, lock: bool = True) -> Iterator[None]:
    """All checks of the module docstring, then the folder's lock for the ``with`` block."""
    check_not_input(plan)
    check_writable(plan)
    with contextlib.ExitStack() as stack:
        for folder in plan.folders if lock else []:
            stack.enter_context(folder_lock(folder))
        yield
