"""Arithmetic precision of the patch network: ``fp32``, ``bf16`` or ``fp16`` (CUDA only), and
``auto``, which picks bf16 where the device computes it natively and fp32 elsewhere.

Only the network's own layers run in the lower precision, through ``torch.autocast``; its
output is cast back to fp32 at once (:class:`padis3d.priors.network.EDMDenoiser`), so the
sampler state, the data step, the tiling engine's assembly and every accumulation stay fp32.
Weights stay fp32 too (autocast casts them per operation), so training keeps fp32 master
weights, EMA and optimizer state.

Why ``auto`` is bf16 on such hardware is a measurement, not an assumption:
``benchmarks/precision.py`` (the figures are in :data:`AUTO_EVIDENCE`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from padis3d.errors import PadisError

PRECISIONS = ("fp32", "bf16", "fp16")
"""What a network can run in."""
CHOICES = ("auto", *PRECISIONS)
"""What ``--precision`` accepts."""
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

AUTO_EVIDENCE = ("bf16 measured 1.75x faster per network evaluation than fp32 and the demo 1.51x faster end to "
                 "end (PaDIS+DDS 33.74 against 33.75 dB), one thread, on an AVX512-BF16 CPU without AMX: "
                 "benchmarks/results/precision.txt, made by 'OMP_NUM_THREADS=1 python benchmarks/precision.py'")
"""The measurement behind ``auto`` choosing bf16, with its file (docs: Results, Precision and speed;
``tests/test_cli_help.py`` checks the figures against the file)."""


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The CPU's native bf16 features among ``amx_bf16`` and ``avx512_bf16`` (empty if none or unknown).

    Asks torch first (``torch.cpu._is_amx_tile_supported`` / ``_is_avx512_bf16_supported``), then
    the flags of ``cpuinfo`` (Linux), so a torch without those helpers still gets an answer."""
    found: list[str] = []
    probes = {"amx_bf16": getattr(torch.cpu, "_is_amx_tile_supported", None),
              "avx512_bf16": getattr(torch.cpu, "_is_avx512_bf16_supported", None)}
    for flag, probe in probes.items():
        try:
            if probe is not None and probe():
                found.append(flag)
        except RuntimeError:  # a torch built without the CPU feature query
            pass
    if found:
        return found
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags = set(text.split())
    return [f for f in ("amx_bf16", "avx512_bf16") if f in flags]


def auto_precision(device: torch.device | str = "cpu") -> tuple[str, str]:
    """``(precision, why)`` that ``auto`` picks on ``device``: bf16 where it is native (CPU with
    AMX or AVX512-BF16; CUDA with ``torch.cuda.is_bf16_supported()``), fp32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16", "the CUDA device supports bf16 natively"
        return "fp32", "the CUDA device has no native bf16"
    flags = cpu_bf16_flags()
    if flags:
        return "bf16", f"the CPU has {' and '.join(flags)}: {AUTO_EVIDENCE}"
    return "fp32", (f"the CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16 (no AMX or "
                    f"AVX512-BF16): bf16 would be emulated, not faster")


def resolve_precision(name: str, device: torch.device | str = "cpu") -> str:
    """``fp32``, ``bf16`` or ``fp16`` for ``name`` (one of :data:`CHOICES`) on ``device``;
    PadisError for fp16 on the CPU (no fast fp16 kernels there, and fp16's range is too narrow
    for the network's activations without loss scaling), bf16 on a CUDA device without it, or an
    unknown name. bf16 on a CPU without native bf16 is allowed (emulated: correct, not faster)."""
    if name not in CHOICES:
        raise PadisError(f"precision must be one of {', '.join(CHOICES)}, got {name!r}")
    device = torch.device(device)
    if name == "auto":
        return auto_precision(device)[0]
    if name == "fp16" and device.type != "cuda":
        raise PadisError("precision fp16 runs on CUDA only; on the CPU use bf16 (or auto, or fp32)")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PadisError("this CUDA device has no bf16: use --precision fp16 (or auto, or fp32)")
    return name


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the enclosed network layers in ``precision`` (a resolved one) on ``device``'s type;
    fp32: no autocast at all (exactly the unchanged computation)."""
    if precision == "fp32":
        yield
        return
    if precision not in DTYPES:
        raise PadisError(f"precision must be one of {', '.join(PRECISIONS)} here, got {precision!r}")
    with torch.autocast(torch.device(device).type, dtype=DTYPES[precision]):
        yield


__all__ = ["PRECISIONS", "CHOICES", "auto_precision", "resolve_precision", "autocast", "cpu_bf16_flags"]
