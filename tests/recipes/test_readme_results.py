"""The README's result tables are the recipes' own output, and the demo's numbers in the
README are what a fresh run of ``padis3d demo`` gives (one slice rerun here, same settings)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from padis3d.cli.demo import DemoConfig, format_table, run_demo

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEMO_JSON = ROOT / "results" / "demo" / "demo.json"


def _without_checkpoint(config: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k != "checkpoint"}


def test_readme_demo_table_is_the_committed_demo_report_of_the_current_defaults():
    report = json.loads(DEMO_JSON.read_text())
    assert format_table(report) in README
    assert _without_checkpoint(report["config"]) == _without_checkpoint(asdict(DemoConfig()))
    assert Path(report["config"]["checkpoint"]).name == "chest128_patch.pt"


@pytest.mark.parametrize("table", ["results/paper2d.md", "results/limited_angle_3d/table.md",
                                   "results/limited_angle_3d_cg15/table.md", "results/test_time_adaptation.md",
                                   "results/limited_angle_3d_train92/table.md"])
def test_readme_result_tables_are_the_recipes_output(table):
    text = (ROOT / table).read_text()
    body = [line for line in text.splitlines() if line.startswith("|")]
    assert body, f"{table} has no table"
    for line in body:
        assert line in README, f"README lacks this line of {table}:\n{line}"


@pytest.mark.slow
def test_fresh_demo_run_matches_the_committed_numbers(tmp_path):
    """Slice 125 with the demo's defaults (about a minute): every method within noise of the
    committed report (the only difference allowed is floating-point order across CPUs)."""
    committed = json.loads(DEMO_JSON.read_text())["per_slice"]["125"]
    fresh = run_demo(tmp_path, DemoConfig(slices=(125,)), progress=False)["per_slice"]["125"]
    assert fresh.keys() == committed.keys()
    for name, m in committed.items():
        assert fresh[name]["psnr"] == pytest.approx(m["psnr"], abs=0.15), name
        assert fresh[name]["ssim"] == pytest.approx(m["ssim"], abs=0.005), name
