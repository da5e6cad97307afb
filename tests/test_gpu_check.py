"""``benchmarks/gpu_check.py --dry-run`` (issue 29 item 8): the GPU run's plan on the CPU with tiny sizes, so
broken imports and signatures show here before a GPU session spends its minutes. Every check has a record;
the CPU-runnable ones are "ok" with their numbers, the CUDA-only parts "skipped" with a reason."""

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def checks_module(name: str):
    """A module of the script's package ``benchmarks.gpu_checks`` (benchmarks/ has no ``__init__.py``: with the
    repository root on the path it imports as a namespace package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"benchmarks.gpu_checks.{name}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_dry_run_records_every_check(report):
    checks = checks_module("settings").CHECKS
    assert report["dry_run"] is True and report["finished"] is True
    assert list(report["checks"]) == list(checks)
    for name, rec in report["checks"].items():
        assert rec["status"] in ("ok", "skipped"), (name, rec.get("reason"), rec.get("traceback", rec.get("log_tail")))
        assert positive(rec["seconds"]), name
    cpu_runnable = set(checks) - {"cone_beam"}
    assert {n for n, r in report["checks"].items() if r["status"] == "ok"} == cpu_runnable
    cone = report["checks"]["cone_beam"]
    assert cone["status"] == "skipped" and "no CUDA" in cone["reason"]
    assert report["astra"]["loaded"] is True


@pytest.mark.slow
def test_dry_run_numbers(report):
    checks = report["checks"]
    env = checks["environment"]
    assert env["cuda_available"] is False and env["missing_packages"] == [] and "torch" in env["padis3d_info"]

    auto = checks["autocast"]["precisions"]
    assert positive(auto["fp32"]["ms_per_evaluation"]) and positive(auto["bf16"]["ms_per_evaluation"])
    assert 0 < auto["bf16"]["max_abs_diff_sigma_1.0"] < 2e-2
    assert auto["fp16"]["status"] == "skipped" and "CUDA" in auto["fp16"]["reason"]

    runs = checks["training"]["runs"]
    for key in ("cpu-preset/fp32", "cpu-preset/bf16"):
        assert positive(runs[key]["steps_per_s"]) and runs[key]["steps"] == 2
        assert runs[key]["losses"] and all(math.isfinite(v) for v in runs[key]["losses"])
    assert runs["cpu-preset/fp16"]["status"] == "skipped"

    ooc = checks["out_of_core"]
    assert set(ooc["runs"]) == {"8", "32"} and ooc["gpu"]["status"] == "skipped"
    for run in ooc["runs"].values():
        assert positive(run["host_peak_rss_mb"]) and run["memory"]["band_rows"]["prepare"] >= 1
    assert ooc["expectations"]["host_peak_grows_under_24_mib_for_4x_slices"]

    la = checks["limited_angle_256"]
    assert la["shape"] == [32, 32, 32] and la["main"]["levels"] == 2
    assert len(la["main"]["seconds_per_level"]) == 2 and positive(la["main"]["mean_seconds_per_level"])
    assert positive(la["calibration"]["total_seconds"])
    for name in ("FBP-Hann", "dds"):
        assert math.isfinite(la["main"]["metrics"][name]["psnr_volume"])
        assert 0 < la["main"]["metrics"][name]["ssim_volume"] <= 1

    tests = checks["cuda_tests"]
    assert tests["counts"]["collected"] > 0 and "--collect-only" in tests["command"]


def test_pytest_summary_keys_and_strict_json(tmp_path):
    pytest_count_key, write_json = checks_module("cuda_tests").pytest_count_key, checks_module("record").write_json
    assert [pytest_count_key(w) for w in ("passed", "error", "errors", "tests collected", "test collected")] \
        == ["passed", "errors", "errors", "collected", "collected"]
    path = tmp_path / "r.json"
    write_json(path, {"a": float("inf"), "b": (1, Path("x"))})
    assert json.loads(path.read_text()) == {"a": "inf", "b": [1, "x"]}
