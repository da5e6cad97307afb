"""The size a NIfTI header claims against the file that holds the voxels, checked from the header
and the file's length before any voxel is read or any array allocated: a truncated file, or a header
that claims far more voxels than the file holds, is one clear error instead of nibabel's "not enough
data in file" deep inside a read (or an allocation of what the header claims).

An uncompressed file must hold ``vox_offset + voxels * itemsize`` bytes. A gzip file's decompressed
length is not known without decompressing it, but deflate cannot expand data by more than
:data:`MAX_DEFLATE_RATIO`, so a header that claims more than that multiple of the compressed size is
refused too; a ``.nii.gz`` that passes this bound and is still short fails when it is read, which
the readers report in one line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from padis3d.errors import PadisError

MAX_DEFLATE_RATIO = 1032
"""The largest expansion deflate (gzip) allows: 258 bytes from at most 2 bits (RFC 1951), 1032:1."""


def claimed_bytes(header: Any) -> int:
    """Bytes of the file that the header's voxel data need: the data offset plus shape times item size."""
    shape = tuple(int(n) for n in header.get_data_shape())
    return int(header.get_data_offset()) + math.prod(shape) * int(header.get_data_dtype().itemsize)


def check_nifti_size(path: str | Path, img: Any) -> None:
    """PadisError when the voxel file of the nibabel image ``img`` (loaded from ``path``) is too short
    for what its header claims (see the module docstring)."""
    holder = getattr(img, "file_map", {}).get("image")
    data_file = Path(holder.filename) if holder is not None and holder.filename else Path(path)
    try:
        have = data_file.stat().st_size
    except OSError:
        return  # not a plain file (a stream): the read reports what is wrong
    need = claimed_bytes(img.header)
    shape = "x".join(str(int(n)) for n in img.header.get_data_shape())
    what = f"its header claims {shape} voxels of {img.header.get_data_dtype()} ({need} bytes with the header)"
    if data_file.name.lower().endswith(".gz"):
        if need > MAX_DEFLATE_RATIO * have:
            raise PadisError(f"NIfTI file {path}: {what}, but {have} compressed bytes hold at most "
                             f"{MAX_DEFLATE_RATIO * have}: the file is truncated or its header is wrong; re-copy or "
                             f"re-export it")
    elif need > have:
        raise PadisError(f"NIfTI file {path}: {what}, but the file holds {have} bytes: it is truncated or its "
                         f"header is wrong; re-copy or re-export it")
