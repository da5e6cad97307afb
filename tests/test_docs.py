"""The documentation site (docs/) builds with warnings as errors, and its doctests pass: the
README's Python examples (``Python in ten lines`` with 8 instead of 100 sampler steps, ``The
tiling engine`` as written, ``Test-time adaptation`` shortened) and the ``>>>`` examples of the
documented docstrings. The rendered pages hold no raw reST markup (a literal ````...```` span is
markup shown as text: sphinx-argparse output of help strings, recipe docstrings shown as written),
and the result pages render the results files' tables."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MISSING = [name for name in ("sphinx", "sphinxarg") if importlib.util.find_spec(name) is None]
needs_sphinx = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed: "
                                  "pip install -c constraints/cpu-py311.txt -e '.[docs]'")


def _ext():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import padis3d_docs
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return padis3d_docs


RAW_MARKUP = re.compile(r"``|:(?:mod|func|class|data|meth|attr|ref|doc):`")


def html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#8217;")


def _tables(source: str) -> list[tuple[str, ...]]:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import results_tables
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return [t.lines for t in results_tables.markdown_tables((ROOT / source).read_text(encoding="utf-8"))]


def _build(builder: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
                           "-d", str(tmp / "doctrees"), str(DOCS), str(tmp / builder)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@needs_sphinx
@pytest.mark.slow
def test_docs_build_without_warnings_and_doctests_pass(tmp_path):
    from padis3d.cli.main import build_parser

    html = _build("html", tmp_path)
    assert html.returncode == 0, html.stdout + html.stderr
    assert html.stderr.strip() == "", html.stderr          # -q: anything on stderr is a warning
    out = tmp_path / "html"
    cli = (out / "cli.html").read_text(encoding="utf-8")
    assert "\u2013" not in cli, "an option's -- rendered as an en dash in the CLI reference (smartquotes)"
    assert "--budget custom" in cli
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for command, parser in sub.choices.items():            # every subcommand and each of its options
        assert command in cli
        for action in parser._actions:
            for option in ([] if action.dest == "help" else action.option_strings):
                assert option in cli, f"{command} {option} missing from the CLI reference"
    api = {p.stem: p.read_text(encoding="utf-8") for p in (out / "api").glob("*.html")}
    assert 'id="tiling.TileGrid"' in api["tiling"] and 'id="tiling.map_tiles_store"' in api["tiling"]
    assert 'id="padis3d.solvers.reconstruct.SamplerSettings"' in api["solvers"]
    assert 'id="padis3d.priors.PatchPrior"' in api["priors"]
    recipes = (out / "recipes.html").read_text(encoding="utf-8")
    for recipe in sorted((ROOT / "recipes").glob("*.[ps][yh]")):
        assert f"recipes/{recipe.name}" in recipes
    raw = {str(p.relative_to(out)): len(RAW_MARKUP.findall(p.read_text(encoding="utf-8")))
           for p in out.rglob("*.html") if "_modules" not in p.parts}
    assert not {page: n for page, n in raw.items() if n}, f"raw markup (``, :role:`) in the rendered pages: {raw}"
    results = {p.stem: p.read_text(encoding="utf-8") for p in (out / "results").glob("*.html")}
    assert {"index", "demo", "paper2d", "volumes", "data", "unlike", "adaptation", "precision"} <= results.keys()
    for page, source in [("paper2d", "results/paper2d.md"), ("volumes", "results/limited_angle_3d/table.md"),
                         ("adaptation", "results/test_time_adaptation.md"), ("unlike", "results/holdout_choice.md"),
                         ("data", "results/orientation_check/table.md")]:
        ext = _ext()
        cells = ext.table_cells(_tables(source)[0][-1])     # the last row of the file's first table
        assert all(html_text(c) in results[page] for c in cells), f"{page}.html lacks a row of {source}"
    for page in ("install", "guide", "development"):
        assert (out / f"{page}.html").is_file()

    doctest = _build("doctest", tmp_path)
    report = (tmp_path / "doctest" / "output.txt").read_text(encoding="utf-8")
    assert doctest.returncode == 0, report + doctest.stderr
    assert "0 failures in tests" in report and "0 failures in setup code" in report
    ran = int(re.search(r"^\s*(\d+) tests?$", report, re.M).group(1))
    assert ran >= 4, report                                 # both README examples and their checks ran
    assert "readme" in report


@needs_sphinx
def test_readme_examples_are_found_and_replacements_are_exact():
    ext = _ext()
    lang, code = ext.readme_block("Python in ten lines", "python")
    assert lang == "python" and "steps=100" in code and "reconstruct(" in code
    fast, pairs = ext.apply_replacements(code, "steps=100 => steps=8")
    assert pairs == [("steps=100", "steps=8")] and "steps=8," in fast and "steps=100" not in fast
    with pytest.raises(ValueError, match="occurs 0 times"):
        ext.apply_replacements(code, "steps=12345 => steps=1")   # a README edit cannot go unnoticed
    with pytest.raises(ValueError, match="OLD => NEW"):
        ext.apply_replacements(code, "steps=100")
    with pytest.raises(LookupError):
        ext.readme_block("No such heading anywhere")
    lang, commands = ext.readme_block("Two commands")
    assert lang == "bash" and "-c constraints/cpu-py311.txt" in commands


@needs_sphinx
def test_recipe_text_is_shown_without_markup_and_tables_without_parsing():
    ext = _ext()
    text = "Weight ``w(σ)`` of :mod:`padis3d.priors.two_scale` and :func:`~tiling.map_tiles`, ``a`` b."
    assert ext.plain_text(text) == "Weight w(σ) of padis3d.priors.two_scale and tiling.map_tiles, a b."
    for recipe in sorted((ROOT / "recipes").glob("*.[ps][yh]")):
        assert not RAW_MARKUP.search(ext.plain_text(ext.recipe_summary(recipe))), recipe.name
    table = ext.table_node(["| a | `x|y` | **b** |", "|---|---|---|", "| 1 *2 | `c` | `||A||` |"])
    rows = list(table.findall(lambda n: n.tagname == "row"))
    assert len(rows) == 2 and [e.astext() for e in rows[0].children] == ["a", "x|y", "b"]
    assert [e.astext() for e in rows[1].children] == ["1 *2", "c", "||A||"]
    assert ext.table_cells("| a | `x|y` | b |") == ["a", "`x|y`", "b"]
