"""Making ``import astra`` work in the checks: as installed, or with a cuFFT 11 shim preloaded."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


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
