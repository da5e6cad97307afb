"""Every option of every command, driven with hostile values (issue 13, class 5): each run exits 0
or exits 2 with one line ``padis3d CMD: error: ...``; never a traceback, never a folder left behind
by a run that failed. The options are read from the parsers themselves, so an option added later
is covered without editing this test."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from padis3d.cli.main import build_parser
from tests.prior.prior_helpers import blob_images
from tests.reliability.helpers import ct_volume, nifti_volume, run_cli, without_option
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

NUMBERS = ["0", "-1", "nan", "inf", "-inf", "1e303", "99999999999999999999", "x", ""]
TEXTS = ["", "x", "a_file", "/proc/padis3d-nonexistent/x", "/sys/padis3d-x", "-1"]  # for paths, names, addresses, choices
TINY_NET = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2"]


def bases(root) -> dict[str, tuple[str, list[str]]]:
    """A quick valid run of each command (and of both kinds of reconstruct), all outputs in ``OUT``."""
    tiny = str(root / "tiny.pt")
    return {
        "train": ("train", ["--data", str(root / "imgs.npy"), "--out", "OUT", "--steps", "1", "--threads", "1",
                            "--no-progress", *TINY_NET]),
        "reconstruct": ("reconstruct", ["--task", "deblur", "--checkpoint", tiny, "--input", str(root / "image.npy"),
                                        "--size", "16", "--steps", "1", "--inner", "1", "--threads", "1",
                                        "--no-progress", "--out", "OUT"]),
        "reconstruct-volume": ("reconstruct", ["--task", "denoise", "--checkpoint", tiny, "--input",
                                               str(root / "vol.nii.gz"), "--size", "12", "--steps", "1", "--band", "4",
                                               "--threads", "1", "--no-progress", "--out", "OUT"]),
        "sample": ("sample", ["--checkpoint", tiny, "--size", "16", "--count", "1", "--steps", "1", "--threads", "1",
                              "--no-progress", "--out", "OUT"]),
        "demo": ("demo", ["--smoke", "--no-progress", "--slices", "118", "--out", "OUT"]),
        "tiling-demo": ("tiling-demo", ["--out", "OUT"]),
    }


def value_options(command: str) -> list[argparse.Action]:
    """The options of ``padis3d COMMAND`` that take a value (flags have nothing to corrupt)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [a for a in sub.choices[command]._actions if a.option_strings and a.nargs != 0 and a.dest != "help"]


def hostile_values(action: argparse.Action) -> list[str]:
    """Numbers of every wrong kind for a numeric option, odd paths and names for the others."""
    numeric = action.type in (int, float) or getattr(action.type, "numeric", False)
    return NUMBERS if numeric else TEXTS


def with_value(argv: list[str], action: argparse.Action, value: str) -> list[str]:
    """``argv`` with ``action``'s value(s) replaced by (or extended with) ``value``."""
    count = 2 if action.nargs == 2 else 1
    out = without_option(argv, action.option_strings)
    return out + [f"{action.option_strings[0]}={value}"] if count == 1 else \
        out + [action.option_strings[0], *([value] * count)] if not value.startswith("-") else \
        out + [f"{action.option_strings[0]}={value}"]


CASES = [(name, opt) for name in ("train", "reconstruct", "reconstruct-volume", "sample", "demo", "tiling-demo")
         for opt in [a.option_strings[0] for a in value_options(name.split("-volume")[0])]]


@pytest.fixture(scope="module")
def inputs(files):  # noqa: F811
    np.save(files / "imgs.npy", blob_images(4, 16)[:, 0].numpy())
    nifti_volume(files / "vol.nii.gz", ct_volume((12, 12, 8)))
    return files


@pytest.mark.slow
@pytest.mark.parametrize("name, option", CASES, ids=[f"{n} {o}" for n, o in CASES])
def test_hostile_values_exit_0_or_one_line_2(inputs, tmp_path, monkeypatch, name, option):
    monkeypatch.chdir(tmp_path)  # a value taken as a relative path lands here
    command, base = bases(inputs)[name]
    action = next(a for a in value_options(command) if a.option_strings[0] == option)
    (tmp_path / "a_file").write_text("not an image, a prior or a folder")
    for value in hostile_values(action):
        assert_exit_0_or_one_line_2(command, [command, *with_value(base, action, value)], tmp_path)


def assert_exit_0_or_one_line_2(command: str, argv: list[str], folder) -> None:
    """``padis3d ARGV`` exits 0, or 2 with one line ``padis3d COMMAND: error: ...`` and nothing new in
    ``folder``; never a traceback. What a run that succeeded wrote is removed for the next one."""
    import shutil

    before = set(folder.iterdir())
    rc, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        assert len(lines) == 1 and lines[0].startswith(f"padis3d {command}: error: "), (argv, err)
        assert set(folder.iterdir()) == before, (argv, sorted(p.name for p in folder.iterdir()))
    for path in set(folder.iterdir()) - before:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def values_from_elsewhere(name: str, action: argparse.Action, root) -> list[list[str]]:
    """Values valid for another task or command: what the other bases give the same option, and the
    option's choices; the base's own value left out. Each item is the option's value list."""
    own_command, own = bases(root)[name]
    found: list[list[str]] = []
    for other, (_, argv) in bases(root).items():
        for flag in action.option_strings:
            if other != name and flag in argv:
                i = argv.index(flag) + 1
                j = next((k for k in range(i, len(argv)) if argv[k].startswith("--")), len(argv))
                if argv[i:j]:
                    found.append(argv[i:j])
    count = 2 if action.nargs == 2 else 1
    found += [[str(c)] * count for c in action.choices or ()]
    mine = [own[own.index(f) + 1:own.index(f) + 1 + count] for f in action.option_strings if f in own]
    return [v for v in dict.fromkeys(map(tuple, found)) if list(v) not in mine and "OUT" not in v]


def with_values(argv: list[str], action: argparse.Action, values: tuple[str, ...]) -> list[str]:
    """``argv`` with ``action``'s value(s) replaced by ``values``."""
    out = with_value(argv, action, "x")[:-1 if action.nargs != 2 else -3]
    return out + [action.option_strings[0], *values]


def _action(name: str, option: str) -> argparse.Action:
    return next(a for a in value_options(name.split("-volume")[0]) if a.option_strings[0] == option)


OTHER_CASES = [(name, opt) for name, opt in CASES
               if values_from_elsewhere(name, _action(name, opt), Path("ROOT"))]  # options with such values


@pytest.mark.slow
@pytest.mark.parametrize("name, option", OTHER_CASES, ids=[f"{n} {o}" for n, o in OTHER_CASES])
def test_values_of_other_tasks_exit_0_or_one_line_2(inputs, tmp_path, monkeypatch, name, option):
    """Each option driven with the values another task or command gives it (issue 27): an option that does
    not apply is refused in one line, one that applies runs; never a traceback, nothing left behind."""
    monkeypatch.chdir(tmp_path)
    command, base = bases(inputs)[name]
    action = next(a for a in value_options(command) if a.option_strings[0] == option)
    for values in values_from_elsewhere(name, action, inputs):
        assert_exit_0_or_one_line_2(command, [command, *with_values(base, action, values)], tmp_path)


def test_values_from_elsewhere_include_other_tasks_and_choices(inputs):
    """The drive above really crosses tasks: the 2D base gets the volume base's --task and --band values."""
    sub = {a.option_strings[0]: a for a in value_options("reconstruct")}
    tasks = values_from_elsewhere("reconstruct", sub["--task"], inputs)
    assert ("denoise",) in tasks and ("ct3d-parallel",) in tasks and ("deblur",) not in tasks
    assert ("4",) in values_from_elsewhere("reconstruct", sub["--band"], inputs)
    assert ("16",) in values_from_elsewhere("reconstruct-volume", sub["--size"], inputs)
