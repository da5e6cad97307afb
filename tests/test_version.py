"""``padis3d --version`` and ``python -m padis3d --version`` print the package version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import padis3d
from padis3d.cli.main import main

EXPECTED = f"padis3d {padis3d.__version__}"


def test_version_matches_package_metadata():
    from importlib.metadata import version

    assert padis3d.__version__ == version("padis3d")


def test_main_version_exits_zero(capsys):
    assert main(["--version"]) == 0  # main returns exit codes; it never raises SystemExit
    assert capsys.readouterr().out == EXPECTED + "\n"


def test_python_m_padis3d_version():
    done = subprocess.run([sys.executable, "-m", "padis3d", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXPECTED + "\n"


def test_console_script_version():
    script = Path(sys.executable).parent / "padis3d"
    if not script.exists():
        script = shutil.which("padis3d")
    if script is None:
        pytest.skip("the padis3d console script is not installed next to this Python")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXPECTED + "\n"
