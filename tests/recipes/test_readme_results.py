"""The README's results tables are the recipes' own output, made from the results files by
``docs/_ext/results_tables.py``; the demo's numbers in the README are what a fresh run of
``padis3d demo`` gives (one slice rerun here, same settings); the README stays a page for users
(at most 300 lines)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from padis3d.cli.demo import DemoConfig, format_table, run_demo

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_JSON = ROOT / "results" / "demo" / "demo.json"
MAX_README_LINES = 300

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import results_tables  # noqa: E402

sys.path.remove(str(ROOT / "docs" / "_ext"))


def _without_checkpoint(config: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k != "checkpoint"}


def test_readme_is_at_most_300_lines():
    lines = len(README.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/ (limit {MAX_README_LINES})"


def test_readme_demo_table_is_the_committed_demo_report_of_the_current_defaults():
    report = json.loads(DEMO_JSON.read_text())
    assert format_table(report) in README
    assert _without_checkpoint(report["config"]) == _without_checkpoint(asdict(DemoConfig()))
    assert Path(report["config"]["checkpoint"]).stem == "chest128_patch"


@pytest.mark.parametrize("source", sorted(results_tables.README_TABLES))
def test_readme_result_table_is_made_from_its_results_file(source):
    lines = results_tables.readme_tables()[source]
    assert len(lines) >= 3, f"{source}: no table"
    missing = results_tables.missing_lines(README, lines)
    assert not missing, f"README.md does not show the table of {source} as made from it; lines missing or " \
                        f"out of order:\n" + "\n".join(missing) + "\n(python docs/_ext/results_tables.py prints it)"
    assert source in README, f"README.md does not name {source} next to its table"


def test_every_results_table_of_the_readme_comes_from_a_results_file():
    """No hand-written numbers: each pipe table under the README's Results heading is one of the made ones."""
    text = README[README.index("\n## Results"):]
    text = text[:text.index("\n## ", 1)]
    made = set(results_tables.readme_tables().values())
    tables = results_tables.markdown_tables(text)
    assert len(tables) == len(made)
    for table in tables:
        assert table.lines in made, "a README results table no results file makes:\n" + "\n".join(table.lines)


def test_out_of_core_table_follows_its_recipe_json():
    """The table is computed from recipe.json (a changed peak or PSNR changes the table)."""
    recipe = json.loads((ROOT / "results/nifti_out_of_core/recipe.json").read_text())
    header, rule, row = results_tables.out_of_core_table(recipe)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == len(header.strip("|").split("|")) == rule.count("---")
    assert cells[4] == f"{recipe['memory']['peak_rss_mb']:.0f}" and cells[5] == f"{recipe['memory']['limit_mb']:.0f}"
    assert cells[7] == f"{recipe['metrics'][recipe['method']]['psnr_3views']:.2f} / " \
                       f"{recipe['metrics'][recipe['method']]['ssim_3views']:.3f}"
    changed = json.loads(json.dumps(recipe))
    changed["memory"]["peak_rss_mb"] += 100
    assert results_tables.out_of_core_table(changed) != [header, rule, row]
    assert results_tables.missing_lines(README, tuple(results_tables.out_of_core_table(changed)))


def test_missing_lines_sees_a_changed_or_reordered_row():
    readme = "x\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\ny"
    assert results_tables.missing_lines(readme, ("| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |")) == []
    assert results_tables.missing_lines(readme, ("| a | b |", "|---|---|", "| 3 | 4 |", "| 1 | 2 |"))
    assert results_tables.missing_lines(readme, ("| a | b |", "|---|---|", "| 1 | 2.0 |"))


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
