"""Checks of what ``padis3d reconstruct`` is asked to reconstruct, as early as each can be made:
the bundled CT's slice range and the blur kernel against ``--size`` when the plan is made (before any
file is read), the input's own size and contrast right after it is read (before it is resized, before
the prior is loaded). Each refusal names the minimum."""

from __future__ import annotations

import argparse

import numpy as np

from padis3d.limits import MIN_SIDE, check_input_shape, check_not_constant  # noqa: F401 - the 2D input checks
from padis3d.errors import PadisError


def chest_ct_slices() -> int:
    """The number of axial slices of the bundled chest CT (read from its NIfTI header only)."""
    import nibabel as nib

    from padis3d.io.sample_data import chest_ct_path

    return int(nib.load(chest_ct_path()).shape[2])


def check_plan(args: argparse.Namespace) -> None:
    """Before any work: ``--slice`` within the bundled CT, ``--kernel`` no larger than the image."""
    if args.input == "chest-ct" and getattr(args, "slice", None) is not None:
        n = chest_ct_slices()
        if not 0 <= args.slice < n:
            raise PadisError(f"--slice {args.slice} is outside the bundled chest CT's axial slices 0..{n - 1}")
    if args.task == "deblur" and args.kernel > args.size:
        raise PadisError(f"--kernel {args.kernel} is larger than the --size {args.size} image: the blur needs an "
                         f"image side of at least the kernel size; lower --kernel or raise --size")


def check_volume_input(shape_zyx: tuple[int, int, int], slices: tuple[int, int] | None, name: str) -> None:
    """Before any voxel is read (the volume's header gives ``shape_zyx``): ``--slices`` within the volume,
    the slices' own in-plane sides and the number of slices at least MIN_SIDE."""
    nz, h, w = (int(n) for n in shape_zyx)
    z0, z1 = slices if slices else (0, nz)
    if not 0 <= z0 < z1 <= nz:
        raise PadisError(f"--slices {z0} {z1} is outside 0..{nz} of {name}")
    if min(h, w) < MIN_SIDE or z1 - z0 < MIN_SIDE:
        raise PadisError(f"{name}: {z1 - z0} slices of {h}x{w} voxels are too small to reconstruct: every axis needs "
                         f">= {MIN_SIDE} voxels (the SSIM window of the report) before resizing"
                         + ("; widen --slices" if z1 - z0 < MIN_SIDE and z1 - z0 < nz else ""))
