"""The README's results tables, generated from the results files the recipes write.

Run ``python docs/_ext/results_tables.py`` from the repository root to print every table the
README shows, each under the name of the file it comes from; ``--check`` exits 1 and names the
first table whose lines the README lacks. ``tests/recipes/test_readme_results.py`` runs the same
comparison, so README and results files cannot drift apart. The documentation's result pages
render the results files' tables with the ``results-tables`` directive (``padis3d_docs.py``),
from the same parser (:func:`markdown_tables`).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Table:
    """One Markdown pipe table of a file: the heading above it (``""`` if none) and its lines."""

    heading: str
    lines: tuple[str, ...]


def markdown_tables(text: str) -> list[Table]:
    """Every pipe table of Markdown ``text`` (runs of lines starting with ``|``), in order, each
    with the text of the last ``#`` heading before it."""
    tables: list[Table] = []
    heading, rows = "", []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            rows.append(line.rstrip())
            continue
        if rows:
            tables.append(Table(heading, tuple(rows)))
            rows = []
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def table_under(path: Path, heading: str | None = None) -> Table:
    """The first table of ``path`` (under the heading that starts with ``heading``, if given)."""
    tables = markdown_tables(path.read_text(encoding="utf-8"))
    found = [t for t in tables if heading is None or t.heading.startswith(heading)]
    if not found:
        raise LookupError(f"{path} has no table" + (f" under a heading {heading!r}" if heading else ""))
    return found[0]


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def out_of_core_table(recipe: dict) -> list[str]:
    """The README's out-of-core table from ``recipes/nifti_out_of_core.py``'s ``recipe.json``."""
    command = recipe["command"]
    noise = command[command.index("--noise") + 1] if "--noise" in command else None
    memory, metrics = recipe["memory"], recipe["metrics"]
    base = "noisy" if recipe["task"] == "denoise" else next(k for k in metrics if k != recipe["method"])
    task = recipe["task"] + (f", noise σ {noise}" if noise else "") + f", {recipe['method']}"
    zyx = " x ".join(map(str, recipe["input_shape_zyx"]))
    work = " x ".join(map(str, recipe["work_shape_zyx"]))

    def cell(name: str) -> str:
        m = metrics[name]
        return f"{_fmt(m['psnr_3views'], 2)} / {_fmt(m['ssim_3views'], 3)}"

    return ["| input (z, y, x) | reconstructed | task | budget MiB | peak MiB | allowance MiB "
            f"| {base} PSNR / SSIM | result PSNR / SSIM | wall s |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {zyx} | {work} | {task} | {memory['budget_mb']:.0f} | {memory['peak_rss_mb']:.0f} "
            f"| {memory['limit_mb']:.0f} | {cell(base)} | {cell(recipe['method'])} | {recipe['seconds']['wall']:.0f} |"]


# name -> how to get its lines; the README shows each of these tables verbatim
README_TABLES = {
    "results/paper2d.md": lambda: table_under(ROOT / "results/paper2d.md", "main").lines,
    "results/limited_angle_3d/table.md": lambda: table_under(ROOT / "results/limited_angle_3d/table.md").lines,
    "results/holdout_choice.md": lambda: table_under(ROOT / "results/holdout_choice.md", "By set and task").lines,
    "results/nifti_out_of_core/recipe.json": lambda: tuple(out_of_core_table(
        json.loads((ROOT / "results/nifti_out_of_core/recipe.json").read_text(encoding="utf-8")))),
    "results/orientation_check/table.md": lambda: table_under(ROOT / "results/orientation_check/table.md").lines,
}


def readme_tables() -> dict[str, tuple[str, ...]]:
    """``{results file: the table's lines}`` for every results table of the README but the demo's
    (``padis3d.cli.demo.format_table`` of ``results/demo/demo.json``, a text block)."""
    return {name: tuple(make()) for name, make in README_TABLES.items()}


def missing_lines(readme: str, lines: tuple[str, ...]) -> list[str]:
    """The lines of a table that ``readme`` lacks, or that it holds out of order."""
    have = readme.splitlines()
    try:
        start = have.index(lines[0])
    except ValueError:
        return list(lines)
    return [line for i, line in enumerate(lines) if start + i >= len(have) or have[start + i] != line]


def main(argv: list[str]) -> int:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    status = 0
    for name, lines in readme_tables().items():
        print(f"<!-- {name} -->", *lines, "", sep="\n")
        if "--check" in argv and missing_lines(readme, lines):
            print(f"README.md does not show the table of {name} as generated", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
