"""The environment check: padis3d info, torch/CUDA, the GPU, missing packages and data, astra."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from .record import Record
from .settings import ASTRA_ENV, NEEDED
from .volumes import chest_available


def check_environment(rec: Record, args: argparse.Namespace) -> None:
    """padis3d info, torch/CUDA, the GPU, missing packages and data, how astra loaded."""
    import importlib.util

    rec["missing_packages"] = [dist for mod, dist in NEEDED.items() if importlib.util.find_spec(mod) is None]
    rec["astra"] = json.loads(os.environ.get(ASTRA_ENV, "{}") or "{}")
    rec["chest_ct"] = chest_available()
    rec["python"] = sys.version.split()[0]
    rec["executable"] = sys.executable
    rec["cpu_count"] = os.cpu_count()
    import torch

    rec["torch"] = torch.__version__
    rec["cuda_available"] = torch.cuda.is_available()
    rec["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        rec["gpu"] = {"name": torch.cuda.get_device_name(0), "memory_gib": p.total_memory / 2**30,
                      "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                      "bf16": torch.cuda.is_bf16_supported(), "cudnn": torch.backends.cudnn.version()}
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        rec["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    try:
        from padis3d.cli.info import environment_report

        rec["padis3d_info"] = environment_report()
    except Exception as exc:  # noqa: BLE001 - recorded: a missing library names itself here
        rec["padis3d_info"] = f"failed: {type(exc).__name__}: {exc}"
        rec.expect("padis3d_info_runs", False)
