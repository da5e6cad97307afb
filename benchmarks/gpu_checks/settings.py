"""What the first GPU run checks, in which order, in how much time, with which packages."""

from __future__ import annotations

from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
"""The entry point (also what each check's worker process runs)."""
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
