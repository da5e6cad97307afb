"""The CUDA tests check: pytest on the tests about CUDA, in a subprocess."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from .record import Record
from .settings import CUDA_TEST_FILES, CUDA_TEST_FILTER, ROOT


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
