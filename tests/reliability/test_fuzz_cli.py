"""Hypothesis over ``padis3d reconstruct``'s numeric options and input shapes (tiny sizes,
in-process ``main``): every run either succeeds (exit 0, finite output) or fails with our one-line
error (exit 2, nothing written); never an uncaught exception."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from padis3d.cli.applicability import APPLIES
from tests.reliability.helpers import run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

COUNTER = itertools.count()
FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

EDGE = st.sampled_from(["0", "-1", "-2.5", "nan", "inf", "-inf", "1e-12", "1e30", "1000", "x"])
VALID = {  # option -> values that give a quick, valid run on the 32x32 test image
    "--size": st.sampled_from(["8", "16", "24"]), "--steps": st.integers(1, 3).map(str),
    "--inner": st.integers(1, 2).map(str), "--views": st.integers(1, 12).map(str),
    "--kernel": st.sampled_from(["1", "3", "5"]), "--factor": st.sampled_from(["1", "2", "4"]),
    "--sigma-max": st.floats(0.5, 5.0).map(str), "--sigma-min": st.floats(0.001, 0.1).map(str),
    "--zeta": st.floats(0.0, 1.0).map(str), "--eta": st.floats(0.0, 1.0).map(str),
    "--noise": st.floats(0.0, 0.1).map(str), "--span-deg": st.floats(30.0, 360.0).map(str),
    "--tile": st.sampled_from(["auto", "whole", "8", "16"]), "--memory-budget-mb": st.floats(1.0, 4.0).map(str),
    "--max-batch": st.integers(1, 16).map(str),
}


def check(rc: int, err: str, out) -> None:
    """Success with a finite result and a report, or our one-line error with nothing written."""
    assert rc in (0, 2), err
    assert "Traceback" not in err
    event(f"exit {rc}")
    if rc == 2:
        assert err.strip().startswith("padis3d reconstruct: error: ") and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    else:
        assert (out / "report.json").is_file()
        result = np.load(out / "reconstruction.npy")
        assert np.isfinite(result).all()


@pytest.mark.slow
@FUZZ
@given(task=st.sampled_from(["ct", "deblur", "sr"]), sampler=st.sampled_from(["padis", "dds", "ddnm", "pc"]),
       data=st.data())
def test_numeric_options_never_crash(files, tmp_path, task, sampler, data):  # noqa: F811
    """Valid values for every option, then up to two of them replaced by an edge value."""
    values = {name: data.draw(strategy, label=name) for name, strategy in VALID.items()
              if task in APPLIES[name[2:].replace("-", "_")]}  # options the task uses (others are refused)
    for name in data.draw(st.lists(st.sampled_from(sorted(values)), max_size=2, unique=True), label="corrupt"):
        values[name] = data.draw(EDGE, label=f"edge {name}")
    out = tmp_path / f"run{next(COUNTER)}"
    argv = ["reconstruct", "--checkpoint", str(files / "tiny.pt"), "--input", str(files / "image.npy"),
            "--task", task, "--sampler", sampler, "--threads", "1", "--no-progress", "--out", str(out)]
    argv += [f"{name}={value}" for name, value in values.items()]  # "=": a value may start with "-"
    rc, err = run_cli(argv)
    if "invalid" in err and "usage:" in err:  # argparse refused a non-number: its own exit 2, no traceback
        assert rc == 2 and "Traceback" not in err
        return
    check(rc, err, out)


@pytest.mark.slow
@FUZZ
@given(shape=st.lists(st.integers(0, 16), min_size=1, max_size=4), fill=st.sampled_from(["ramp", "const", "nan"]),
       task=st.sampled_from(["deblur", "denoise"]), size=st.integers(5, 12))
@example(shape=[16, 16], fill="ramp", task="deblur", size=12)
@example(shape=[8, 12, 12], fill="ramp", task="denoise", size=8)
@example(shape=[3, 12, 12], fill="ramp", task="deblur", size=12)
def test_input_shapes_never_crash(files, tmp_path, shape, fill, task, size):  # noqa: F811
    data = np.arange(math.prod(shape), dtype=np.float32).reshape(shape) if fill == "ramp" else \
        np.full(shape, np.nan if fill == "nan" else 1.0, np.float32)
    path = tmp_path / f"in{next(COUNTER)}.npy"
    np.save(path, data)
    out = tmp_path / f"run{next(COUNTER)}"
    argv = ["reconstruct", "--checkpoint", str(files / "tiny.pt"), "--input", str(path), "--task", task,
            "--size", str(size), "--steps", "1", *(["--band", "4"] if task == "denoise" else ["--inner", "1"]),
            "--threads", "1", "--no-progress", "--out", str(out)]
    rc, err = run_cli(argv)
    check(rc, err, out)
    if fill == "nan":  # NaN input (or an empty array) is always refused, never reconstructed
        assert rc == 2, err
