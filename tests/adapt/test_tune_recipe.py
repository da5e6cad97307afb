"""recipes/tune_adaptation.py --smoke runs, resumes (skips what is done) and reports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_recipe():
    spec = importlib.util.spec_from_file_location("tune_adaptation", ROOT / "recipes" / "tune_adaptation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_resume_and_report(tmp_path, capsys):
    recipe = load_recipe()
    out = tmp_path / "r.jsonl"
    argv = ["--smoke", "--slices", "--ellipses", "2", "--configs", "none", "n:norm:0:1e-3", "--out", str(out)]
    assert recipe.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["slice"], r["config"]) for r in rows] == [("ellipse0", "none"), ("ellipse0", "n"), ("ellipse1", "none"),
                                                         ("ellipse1", "n")]
    assert rows[1]["adapt_steps"] >= 1 and rows[0]["psnr"] > 10
    assert recipe.main(argv) == 0 and len(out.read_text().splitlines()) == 4  # resumed: nothing rerun
    capsys.readouterr()
    recipe.main(["--report", "--out", str(out)])
    assert "| ellipse0 | n | ct20 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="training slices"):
        recipe.main(["--smoke", "--slices", "120", "--out", str(out)])
