"""Content hashes of the files a run reads: SHA-256 of a file's bytes (streamed in 1 MiB blocks),
and of a folder as the SHA-256 of its files' relative names and hashes in sorted order, so that
the same bytes at another path hash alike and any changed byte, added, removed or renamed file
hashes differently."""

from __future__ import annotations

import hashlib
from pathlib import Path

from padis3d.errors import PadisError

BLOCK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of the bytes of the file ``path``, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def folder_sha256(folder: str | Path) -> str:
    """SHA-256 (hex) of every file below ``folder`` (recursively): their paths relative to it,
    sorted, each with its :func:`file_sha256`."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(root).as_posix()}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def content_sha256(path: str | Path) -> str:
    """:func:`file_sha256` of a file or :func:`folder_sha256` of a folder; PadisError when ``path``
    does not exist."""
    p = Path(path)
    if p.is_dir():
        return folder_sha256(p)
    if not p.exists():
        raise PadisError(f"{path} does not exist")
    return file_sha256(p)
