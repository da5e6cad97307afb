"""The main job (``padis3d demo``) and ``recipes/paper2d.py`` in their ``--smoke`` modes, so
they cannot rot: reported numbers are recomputable, reruns reuse finished rows, and bad input
exits with one clear line and writes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from padis3d import cli
from padis3d.baselines.tasks import make_task
from padis3d.metrics import psnr, ssim
from padis3d.io.sample_data import chest_ct_slices

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert cli.main(["demo", "--smoke", "--no-progress", "--slices", "118", "--out", str(out)]) == 0
    return out, json.loads((out / "demo.json").read_text())


def test_demo_reports_fbp_numbers_that_recompute_independently(demo):
    out, report = demo
    assert set(report["per_slice"]) == {"118"}
    assert list(report["mean"]) == ["FBP-Hann", "ADMM-TV", "PnP-ADMM", "PaDIS+DDS"]
    x = torch.from_numpy(chest_ct_slices([118], 128))[:, None]
    task = make_task("ct20", 128)
    fbp = task.baseline(task.measure(x, seed=0))[0, 0]
    got = report["per_slice"]["118"]["FBP-Hann"]
    assert got["psnr"] == pytest.approx(psnr(fbp, x[0, 0]), abs=1e-9)
    assert got["ssim"] == pytest.approx(ssim(fbp, x[0, 0]), abs=1e-9)
    assert report["config"]["steps"] == 2 and report["network_evaluations_per_slice"] == 2
    assert "torch" in report["versions"]
    assert (out / "demo.png").stat().st_size > 10_000
    assert not list(out.glob(".*.tmp*"))


def test_demo_is_deterministic(demo, tmp_path):
    _, first = demo
    assert cli.main(["demo", "--smoke", "--no-progress", "--slices", "118", "--out", str(tmp_path)]) == 0
    second = json.loads((tmp_path / "demo.json").read_text())
    for method in first["mean"]:
        assert second["per_slice"]["118"][method]["psnr"] == first["per_slice"]["118"][method]["psnr"]


@pytest.mark.parametrize("argv, message", [
    (["--slices", "50"], "not held-out test slices"),
    (["--checkpoint", "no/such.pt"], "no/such.pt"),
])
def test_demo_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli.main(["demo", "--smoke", "--no-progress", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_paper2d_refuses_a_missing_patch_checkpoint_before_any_work(tmp_path, capsys):
    from recipes.paper2d import main

    with pytest.raises(SystemExit) as exit_:
        main(["--studies", "main", "--patch", str(tmp_path / "none.pt"), "--out", str(tmp_path / "p")])
    assert exit_.value.code == 2 and "--patch: no checkpoint" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_paper2d_smoke_fills_every_cell_and_resumes(tmp_path):
    out, runs = tmp_path / "paper2d", tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "recipes" / "paper2d.py"), "--smoke", "--studies", "main", "positions",
           "--tasks", "ct20", "deblur", "--out", str(out), "--runs", str(runs), "--train-jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    store = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["study"], r["task"], r["row"]) for r in store["results"].values()}
    assert len(rows) == 2 * 7 + 2  # main: 2 tasks x 7 rows; positions: 1 task x 2 rows
    assert ("positions", "ct20", "without positions") in rows
    assert all((runs / f"smoke_{name}" / "prior.pt").exists() for name in ("nopos", "patch100"))
    assert all(np.isfinite(r["psnr"]) for r in store["results"].values())
    table = out.with_suffix(".md").read_text()
    assert "| ADMM-TV | " in table and "### positions" in table
    figures = [out.parent / f"paper2d_{name}.png" for name in ("ablations", "reconstructions")]
    assert all(f.stat().st_size > 10_000 for f in figures)
    cached = np.load(out.parent / "paper2d_reconstructions.npz")
    assert len(cached.files) == 2 * 6  # 2 tasks x the 6 figure rows, on the one smoke slice
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and " dB / " not in again.stdout.split("Chest CT test slices")[0]
    assert json.loads(out.with_suffix(".json").read_text())["results"] == store["results"]


@pytest.mark.slow
def test_limited_angle_3d_smoke_has_every_row_and_reuses_them(tmp_path):
    from padis3d.priors.coarse_weight import CoarseWeight, save_weight
    from tests.prior.test_two_scale_factory import save

    out = tmp_path / "la3d"
    cube = save(tmp_path / "cube.pt", 3, 8, [100, 32, 32], [1, 1, 1], 0)  # tiny untrained 3D priors: the plumbing
    lowres = save(tmp_path / "lowres.pt", 3, 4, [25, 8, 8], [4, 4, 4], 1)
    save_weight(CoarseWeight((0.1, 1.0), (0.25, 0.75)), ROOT / "checkpoints" / "chest128_slab3.pt", lowres)
    cmd = [sys.executable, str(ROOT / "recipes" / "limited_angle_3d.py"), "--smoke", "--no-progress", "--out", str(out),
           "--cube", str(cube), "--lowres", str(lowres)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    store = json.loads((out / "results.json").read_text())
    assert list(store["results"]) == ["FBP-Hann", "ADMM-TV 3D", "2D patch prior, slice by slice", "slab prior",
                                      "slab prior + slice-jump slabs", "cube prior", "two-scale prior"]
    two = store["results"]["two-scale prior"]
    assert two["settings"]["two_scale_fine"] == "slab" and two["settings"]["lowres_prior"] == str(lowres)
    assert set(two["checkpoint_steps"]) == {"chest128_slab3.pt", "lowres.pt"}
    assert two["settings"]["lowres_weight"] == "measured"  # the weight measured for the pair, found and recorded
    assert two["coarse_weight"] == {"sigmas": [0.1, 1.0], "weights": [0.25, 0.75]}
    assert store["results"]["cube prior"]["checkpoint_steps"] == {"cube.pt": None}
    for row, r in store["results"].items():  # each row's own process: its peak is above its set-up's
        assert 100 < r["setup_rss_mb"] <= r["peak_rss_mb"] < 4000, (row, r)
    table = (out / "table.md").read_text()
    assert "| seconds | peak MiB |" in table and "VmHWM" in table
    assert f"| {store['results']['cube prior']['peak_rss_mb']:.0f} |" in table.split("| cube prior |")[1].split("\n")[0]
    for name in ("cube_prior", "two-scale_prior"):
        rec = np.load(out / f"{name}.npy")
        assert rec.shape == (8, 32, 32) and np.isfinite(rec).all()
    from padis3d.metrics import volume_metrics
    from padis3d.operators import ParallelBeam3D
    truth = chest_ct_slices(range(110, 118), 32)
    op = ParallelBeam3D(truth.shape, views=90, span=np.pi / 2)
    fbp = op.fbp(op(torch.from_numpy(truth)[None, None]))[0, 0].clamp(0, 1).numpy()
    assert store["results"]["FBP-Hann"]["metrics"] == pytest.approx(volume_metrics(fbp, truth))
    assert np.load(out / "slab_prior.npy").shape == (8, 32, 32)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "dB in" not in again.stdout  # nothing recomputed
    assert json.loads((out / "results.json").read_text())["results"] == store["results"]
    # other CG steps: only the two DDS rows are recomputed; an extra row is added on request
    more = subprocess.run(cmd + ["--cg-iters", "2", "--rows", "FBP-Hann", "ADMM-TV 3D", "slab prior",
                                 "slab prior + TV along z", "slab prior + SS"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert more.returncode == 0, more.stderr[-2000:]
    recomputed = {line.split(":")[0] for line in more.stdout.splitlines() if "dB in" in line}
    assert recomputed == {"slab prior", "slab prior + TV along z", "slab prior + SS"}
    after = json.loads((out / "results.json").read_text())["results"]
    assert list(after) == ["FBP-Hann", "ADMM-TV 3D", "slab prior", "slab prior + TV along z", "slab prior + SS"]
    # the two-scale prior on the cube prior: refused before any work without a weight measured for
    # that pair, then recomputed (its fine prior is one of its settings)
    refused = subprocess.run(cmd + ["--two-scale-fine", "cube", "--rows", "two-scale prior"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "has no coarse weight for the fine prior cube.pt" in refused.stderr
    save_weight(CoarseWeight((1.0,), (0.5,)), cube, lowres)
    cube_fine = subprocess.run(cmd + ["--cg-iters", "2", "--two-scale-fine", "cube", "--rows", "cube prior",
                                      "two-scale prior"], env=env, capture_output=True, text=True, timeout=600)
    assert cube_fine.returncode == 0, cube_fine.stderr[-2000:]
    two = json.loads((out / "results.json").read_text())["results"]["two-scale prior"]
    assert two["settings"]["two_scale_fine"] == "cube" and "slab_prior" not in two["settings"]
    assert set(two["checkpoint_steps"]) == {"cube.pt", "lowres.pt"}
    assert two["coarse_weight"] == {"sigmas": [1.0], "weights": [0.5]}
    save_weight(CoarseWeight((1.0,), (0.25,)), cube, lowres)  # re-measured: the stored row is stale
    remeasured = subprocess.run(cmd + ["--cg-iters", "2", "--two-scale-fine", "cube", "--rows", "two-scale prior"],
                                env=env, capture_output=True, text=True, timeout=600)
    assert remeasured.returncode == 0 and "two-scale prior: PSNR" in remeasured.stdout, remeasured.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["results"]["two-scale prior"]["coarse_weight"] == {
        "sigmas": [1.0], "weights": [0.25]}
    adapted, plain = (np.load(out / f"{name}.npy") for name in ("slab_prior_+_SS", "slab_prior"))
    assert np.isfinite(adapted).all() and np.abs(adapted - plain).max() > 1e-6  # the adapted prior changed it
    assert after["ADMM-TV 3D"] == store["results"]["ADMM-TV 3D"]
    assert after["slab prior"]["settings"]["cg_iters"] == 2


def test_limited_angle_3d_drops_slab_rows_from_before_the_slab_ends_fix(tmp_path, monkeypatch):
    """Stored rows whose slab tiles at the block's ends held padding slices (no ``slab_ends`` in
    their settings) are stale: slab and slab-based two-scale rows go, the cube row stays."""
    import importlib.util
    from dataclasses import asdict, replace

    spec = importlib.util.spec_from_file_location("limited_angle_3d", ROOT / "recipes" / "limited_angle_3d.py")
    la3d = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "limited_angle_3d", la3d)  # dataclasses look their module up
    spec.loader.exec_module(la3d)
    s = la3d.Setup()
    before = {row: {k: v for k, v in la3d.row_settings(row, s).items() if k != "slab_ends"}
              for row in ("slab prior", "two-scale prior", "cube prior")}
    assert "slab_ends" not in la3d.row_settings("two-scale prior", replace(s, two_scale_fine="cube"))
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"setup": asdict(s), "results": {r: {"settings": v} for r, v in before.items()}}))
    assert list(la3d.load_store(path, s)["results"]) == ["cube prior"]
