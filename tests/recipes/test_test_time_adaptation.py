"""recipes/test_time_adaptation.py --smoke: complete rows, resumption, the baseline's PSNR, the report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch

from padis3d.baselines.tasks import make_task
from padis3d.io.sample_data import chest_ct_slices
from padis3d.metrics import psnr

ROOT = Path(__file__).resolve().parents[2]


def load_recipe():
    spec = importlib.util.spec_from_file_location("test_time_adaptation", ROOT / "recipes" / "test_time_adaptation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_smoke_rows_resume_baseline_and_report(tmp_path, capsys):
    recipe = load_recipe()
    out = tmp_path / "tta"
    argv = ["--smoke", "--rows", "baseline", "patches+SS", "--out", str(out)]
    assert recipe.main(argv) == 0
    lines = out.with_suffix(".jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert sorted((r["row"], r["task"], r["image"]) for r in rows) == [
        ("baseline", "ct20", "115"), ("baseline", "ct20", "shepp-logan"),
        ("patches+SS", "ct20", "115")]  # the ellipse rows run on the chest slices only
    for r in rows:
        assert {"psnr", "ssim", "seconds", "prior", "noise_seed"} <= set(r) and r["smoke"] and r["size"] == 128
    adapted = [r for r in rows if r["row"].endswith("+SS")]
    assert all(r["adapt_steps"] >= 1 and r["adapt"]["max_sigma"] == recipe.ADAPT.max_sigma for r in adapted)
    assert all(r["prior"]["file"].endswith("ellipse128_patch.pt") and r["prior"]["steps"] > 0 for r in adapted)

    # the baseline row's PSNR is the FBP's, recomputed from the same measurements (noise seeded by the slice)
    task = make_task("ct20", 128)
    x = torch.from_numpy(chest_ct_slices([115], 128))[:, None]
    fbp = next(r for r in rows if r["row"] == "baseline" and r["image"] == "115")
    assert abs(fbp["psnr"] - psnr(task.baseline(task.measure(x, seed=115)), x)) < 1e-9

    # a rerun computes nothing (the file is unchanged); a new row is appended, not the old ones again
    assert recipe.main(argv) == 0
    assert out.with_suffix(".jsonl").read_text().splitlines() == lines
    assert recipe.main(["--smoke", "--rows", "baseline", "ADMM-TV", "--images", "--out", str(out)]) == 0
    added = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()[len(lines):]]
    assert [(r["row"], r["image"]) for r in added] == [("ADMM-TV", "115")]

    # DDS starts where its settings say: the task's baseline re-noised, as padis3d reconstruct does
    dds_row = next(r for r in rows if r["row"] == "patches+SS")
    assert dds_row["sampler"]["init"] == "baseline" and dds_row["started_from"] == "baseline"
    assert dds_row["version"] == recipe.RECORD_VERSION
    # a DDS record made before the start was honoured is stale: recomputed, never reused or reported
    stale = {**dds_row, "psnr": -1.0, "version": None, "started_from": None}
    with out.with_suffix(".jsonl").open("a") as f:
        f.write(json.dumps(stale) + "\n")
    assert recipe.current_results([dds_row, stale]) == [dds_row]
    assert recipe.current_results([stale]) == []
    other_adaptation = {**dds_row, "adapt": {**dds_row["adapt"], "lr": 1.0}}  # made with other settings
    assert recipe.current_results([other_adaptation]) == []

    capsys.readouterr()
    assert recipe.main(["--smoke", "--report", "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert f"| baseline | {fbp['psnr']:.2f} / {fbp['ssim']:.3f}" in md
    assert "| patches+SS ≥ ADMM-TV + 2 dB (ct20) |" in md and "not measured (incomplete)" in md
    assert out.with_suffix(".png").stat().st_size > 1000
