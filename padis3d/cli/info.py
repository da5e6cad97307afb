"""What ``padis3d info`` reports: library versions, CUDA and astra-CUDA, the precision ``auto`` picks
and why, default data."""

from __future__ import annotations

import importlib.metadata
import platform


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> dict[str, str]:
    """A flat ``name -> value`` description of this installation."""
    import torch

    from padis3d import __version__
    from padis3d.io.sample_data import chest_ct_path

    report = {"padis3d": __version__, "python": platform.python_version()}
    for dist in ("torch", "monai", "astra-toolbox", "zarr", "dask", "nibabel", "numpy"):
        report[dist] = _version(dist)
    report["torch threads"] = str(torch.get_num_threads())
    report["cuda (torch)"] = (
        f"yes, {torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available() else "no"
    )
    try:
        import astra

        report["cuda (astra)"] = "yes" if astra.use_cuda() else "no (2D CPU projectors only)"
    except ImportError as exc:
        report["cuda (astra)"] = f"astra not importable: {exc}"
    from padis3d.precision import auto_precision

    for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
        chosen, why = auto_precision(device)
        report[f"precision auto ({device})"] = f"{chosen}: {why}"
    try:
        report["default data"] = str(chest_ct_path())
    except FileNotFoundError as exc:
        report["default data"] = f"missing ({exc})"
    return report
