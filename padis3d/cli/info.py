"""What ``padis3d info`` reports: library versions, the CPU and its bf16 features as detected here,
threads, CUDA and astra-CUDA, the precision ``auto`` picks, which feature that choice relies on and
the benchmark file behind it, and the default data."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

BF16_FLAGS = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
"""The ``/proc/cpuinfo`` flags of native bf16 arithmetic on x86 CPUs, and their names."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, set[str] | None]:
    """``(model name, flags)`` from a Linux ``cpuinfo`` file; ``(platform's processor, None)`` where
    there is no such file (flags unknown)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine() or "unknown", None
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model or platform.machine() or "unknown", flags


def bf16_features(flags: set[str] | None) -> str:
    """One line: which of :data:`BF16_FLAGS` the CPU shows, e.g. ``avx512_bf16 yes, amx_bf16 no``."""
    if flags is None:
        return "unknown (no /proc/cpuinfo)"
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in BF16_FLAGS)


def precision_line(device: str = "cpu") -> str:
    """What ``--precision auto`` picks on ``device``, the feature it relies on, and the measurement
    behind bf16 with its file (:data:`padis3d.precision.AUTO_EVIDENCE`)."""
    from padis3d.precision import AUTO_EVIDENCE, auto_precision, cpu_bf16_flags

    chosen, why = auto_precision(device)
    if device != "cpu" or chosen != "bf16":
        return f"{chosen}: {why}"
    have = cpu_bf16_flags()
    relies = " and ".join(BF16_FLAGS[f] for f in have)
    note = ("" if "amx_bf16" not in have else
            "; the benchmark had no AMX, so this CPU's speed-up is not measured")
    return f"bf16, relying on {relies}{note}. {AUTO_EVIDENCE}"


def environment_report() -> dict[str, str]:
    """A flat ``name -> value`` description of this installation and machine."""
    import torch

    from padis3d import __version__
    from padis3d.io.sample_data import chest_ct_path

    report = {"padis3d": __version__, "python": platform.python_version()}
    for dist in ("torch", "monai", "astra-toolbox", "zarr", "dask", "nibabel", "numpy"):
        report[dist] = _version(dist)
    model, flags = cpu_description()
    report["cpu"] = f"{model}, {os.cpu_count()} logical CPUs"
    report["cpu bf16 (/proc/cpuinfo)"] = bf16_features(flags)
    report["cpu capability (torch)"] = torch.backends.cpu.get_cpu_capability()
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
    for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
        report[f"precision auto ({device})"] = precision_line(device)
    try:
        report["default data"] = str(chest_ct_path())
    except FileNotFoundError as exc:
        report["default data"] = f"missing ({exc})"
    return report
