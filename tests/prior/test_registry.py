"""Priors by name (issue 29): a name finds the shipped checkpoint from any folder, a user folder
named by ``$PADIS3D_PRIORS`` is searched first, an unknown name lists the known ones, and
``padis3d priors`` describes each."""

from __future__ import annotations

import shutil

import pytest

from padis3d.errors import PadisError
from padis3d.priors.catalog import list_priors
from padis3d.priors.registry import SHIPPED, is_name, resolve_prior
from tests.reliability.helpers import run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture


def test_names_resolve_from_any_folder(tmp_path, monkeypatch):
    from padis3d import load_prior

    monkeypatch.chdir(tmp_path)  # not the repository root
    monkeypatch.delenv("PADIS3D_PRIORS", raising=False)
    assert resolve_prior("chest128_patch") == SHIPPED / "chest128_patch.pt"
    assert load_prior("chest128_slab3").path == SHIPPED / "chest128_slab3.pt"
    assert resolve_prior("some/where.pt").as_posix() == "some/where.pt"  # a path stays a path
    assert is_name("chest128_patch") and not is_name("x.pt") and not is_name("a/b")
    with pytest.raises(PadisError, match="no prior named 'chest128_pach'.*known priors: .*chest128_patch"):
        resolve_prior("chest128_pach")


def test_user_folder_is_searched_first_and_listed(files, tmp_path, monkeypatch):  # noqa: F811
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(files / "tiny.pt", mine / "chest128_patch.pt")  # shadows the shipped one
    shutil.copy(files / "tiny.pt", mine / "tiny_prior.pt")
    monkeypatch.setenv("PADIS3D_PRIORS", str(mine))
    assert resolve_prior("chest128_patch") == mine / "chest128_patch.pt"
    entries = {e.name: e for e in list_priors()}
    assert entries["chest128_patch"].path == mine / "chest128_patch.pt"
    assert entries["chest128_cube"].kind == "cube (3D)" and entries["chest128_cube"].orientation == "axial SPL"
    assert entries["ellipse128_patch"].orientation == "any SPL" and entries["chest32_lowres"].size_mb < 15
    rc, _ = run_cli(["priors"])
    assert rc == 0


def test_cli_takes_a_prior_name_from_another_folder(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PADIS3D_PRIORS", raising=False)
    rc, err = run_cli(["reconstruct", "--task", "deblur", "--checkpoint", "chest128_patch", "--sampler", "dds",
                       "--steps", "1", "--threads", "1", "--no-progress", "--out", "o"])
    assert rc == 0, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["checkpoint"] == "chest128_patch"
    rc, err = run_cli(["reconstruct", "--task", "deblur", "--checkpoint", "chest128_pach", "--no-progress",
                       "--out", "p"])
    assert rc == 2 and "no prior named 'chest128_pach'" in err and not (tmp_path / "p").exists()
