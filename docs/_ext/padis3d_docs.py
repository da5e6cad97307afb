"""Sphinx directives that keep the site in step with the repository instead of copying it.

``.. readme-example:: HEADING``
    The first fenced ``python`` block under the README heading that starts with ``HEADING``, shown verbatim as
    a code block, and run by ``sphinx-build -b doctest`` as a ``testcode`` block (group
    ``readme``). Options:

    ``:run-with:`` lines ``OLD => NEW``: text replaced in the *run* copy only (for a fast
    variant of a slow example); the page says which replacements were made.

    ``:setup:`` Python run before the example (hidden; e.g. a temporary folder).

    ``:output:`` what the example prints (doctest ``+ELLIPSIS``: ``...`` matches any text).

    ``:check:`` Python run after the example in the same namespace (assertions).

``.. readme-block:: HEADING``
    The first fenced block of any language under ``HEADING`` (the shell commands), verbatim.

``.. recipe-list::``
    One section per file in ``recipes/``: the module docstring of a ``.py`` recipe, or the
    leading comment of a ``.sh`` recipe, as written in the file but for its reST inline markup
    (shown as plain text: a literal block would show it raw).

``.. results-tables:: PATH``
    The pipe tables of the Markdown results file ``PATH`` (relative to the repository root),
    rendered as tables, so a result page shows what the recipe wrote; for a JSON results file,
    the table the README makes of it (``results_tables.README_TABLES``). ``:only:`` lines: keep the
    tables whose heading starts with one of them; ``:headings:`` show each table's heading above it.

``.. md-table::``
    A Markdown pipe table given as the directive's content (for tables of benchmark text files
    and before / after comparisons that no results file holds as Markdown).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def readme_block(heading: str, language: str | None = None, readme: Path = README) -> tuple[str, str]:
    """``(language, code)`` of the first fenced block under the Markdown heading that starts
    with ``heading`` (any level; it must be the only such heading), optionally only a block of
    ``language``; ``LookupError`` if there is none."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    title = re.compile(r"^#+\s+" + re.escape(heading) + r"(\W|$)")
    found = [i for i, line in enumerate(lines) if title.match(line)]
    if len(found) != 1:
        raise LookupError(f"README.md has {len(found)} headings starting with {heading!r}, expected one")
    start = found[0]
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    i = start + 1
    while i < len(lines):
        line = lines[i]
        head = re.match(r"^(#+)\s", line)
        if head and len(head.group(1)) <= level:
            break
        fence = FENCE.match(line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if language is None or fence.group(1) == language:
                return fence.group(1), "\n".join(lines[i + 1:end])
            i = end
        i += 1
    raise LookupError(f"README.md has no {language or ''} code block under {heading!r}")


def apply_replacements(code: str, spec: str) -> tuple[str, list[tuple[str, str]]]:
    """Apply ``OLD => NEW`` lines of ``spec`` to ``code``; each ``OLD`` must occur exactly once,
    so a README edit that removes it fails the build instead of silently running the slow code."""
    pairs = []
    for line in filter(None, (s.strip() for s in spec.splitlines())):
        old, sep, new = line.partition("=>")
        if not sep:
            raise ValueError(f"run-with line {line!r} is not 'OLD => NEW'")
        old, new = old.strip(), new.strip()
        if code.count(old) != 1:
            raise ValueError(f"run-with: {old!r} occurs {code.count(old)} times in the README example, expected once")
        code = code.replace(old, new)
        pairs.append((old, new))
    return code, pairs


def _indent(text: str) -> list[str]:
    return ["   " + line if line else "" for line in text.splitlines()]


class ReadmeExample(Directive):
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"run-with": directives.unchanged, "check": directives.unchanged, "output": directives.unchanged,
                   "setup": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        heading = self.arguments[0]
        try:
            _, code = readme_block(heading, "python")
            run_code, pairs = apply_replacements(code, self.options.get("run-with", ""))
        except (LookupError, ValueError) as exc:
            raise self.error(str(exc)) from None
        rst = [".. code-block:: python", ""] + _indent(code) + [""]
        if pairs:
            changes = "; ".join(f"``{old}`` → ``{new}``" for old, new in pairs)
            rst += [f"The documentation's doctest runs this example with {changes}, to stay fast.", ""]
        if self.options.get("setup"):
            rst += [".. testcode:: readme", "   :hide:", ""] + _indent(self.options["setup"]) + [""]
        rst += [".. testcode:: readme", "   :hide:", ""] + _indent(run_code) + [""]
        if self.options.get("output"):
            rst += [".. testoutput:: readme", "   :hide:", "   :options: +ELLIPSIS", ""] + _indent(self.options["output"]) + [""]
        if self.options.get("check"):
            rst += [".. testcode:: readme", "   :hide:", ""] + _indent(self.options["check"]) + [""]
        return self._parse(rst)

    def _parse(self, rst: list[str]) -> list[nodes.Node]:
        self.state.document.settings.env.note_dependency(str(README))
        node = nodes.container()
        nested_parse_with_titles(self.state, StringList(rst, source=str(README)), node)
        return node.children


class ReadmeBlock(ReadmeExample):
    option_spec = {}

    def run(self) -> list[nodes.Node]:
        try:
            language, code = readme_block(self.arguments[0])
        except LookupError as exc:
            raise self.error(str(exc)) from None
        return self._parse([f".. code-block:: {language or 'text'}", ""] + _indent(code) + [""])


ROLE = re.compile(r":[\w:.-]+:`~?([^`]+)`")


def plain_text(text: str) -> str:
    """``text`` with its reST inline markup taken off (``code`` and roles such as a :mod: reference
    become their bare text), for places shown as written, where markup would appear raw."""
    return ROLE.sub(r"\1", text).replace("``", "")


def recipe_summary(path: Path) -> str:
    """The module docstring of a Python recipe, or the leading ``#`` comment of a shell one."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return ast.get_docstring(ast.parse(text)) or ""
    comment = []
    for line in text.splitlines()[1 if text.startswith("#!") else 0:]:
        if not line.startswith("#"):
            break
        comment.append(line[1:].strip())
    return "\n".join(comment)


class RecipeList(Directive):
    def run(self) -> list[nodes.Node]:
        rst: list[str] = []
        for path in sorted((ROOT / "recipes").glob("*")):
            if path.suffix not in (".py", ".sh"):
                continue
            name = f"recipes/{path.name}"
            rst += [name, "-" * len(name), ""]
            self.state.document.settings.env.note_dependency(str(path))
            # shown as written (a literal block): a recipe's text can never break the build
            rst += ["::", ""] + _indent(plain_text(recipe_summary(path)) or "(no description)") + [""]
        node = nodes.container()
        nested_parse_with_titles(self.state, StringList(rst, source="recipes/"), node)
        return node.children


INLINE = re.compile(r"(`[^`]+`|\*\*[^*]+\*\*)")


def _cell(text: str) -> nodes.entry:
    """A table cell: Markdown `code` as a literal, **bold** as strong, the rest as plain text
    (never parsed as reST, so no table text can break the build)."""
    para = nodes.paragraph()
    for part in INLINE.split(text.strip()):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            para += nodes.literal(part[1:-1], part[1:-1])
        elif part.startswith("**") and part.endswith("**") and len(part) > 4:
            para += nodes.strong(part[2:-2], part[2:-2])
        elif part:
            para += nodes.Text(part)
    return nodes.entry("", para)


def table_cells(line: str) -> list[str]:
    """The cells of one Markdown table row, stripped; a ``|`` inside `code` does not split."""
    cells, current, code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code and not current.endswith("\\"):
            cells.append(current)
            current = ""
        else:
            current += ch
    return [c.replace("\\|", "|").strip() for c in cells + [current]]


def table_node(lines: list[str] | tuple[str, ...]) -> nodes.table:
    """A docutils table from the lines of a Markdown pipe table (header, ``|---|`` rule, rows)."""
    rows = [table_cells(line) for line in lines if not re.match(r"^\|[\s:|-]+\|?$", line)]
    width = max(len(r) for r in rows)
    table = nodes.table(classes=["results"])
    group = nodes.tgroup(cols=width)
    table += group
    group += [nodes.colspec(colwidth=1) for _ in range(width)]
    head, body = nodes.thead(), nodes.tbody()
    for i, cells in enumerate(rows):
        row = nodes.row()
        row += [_cell(c) for c in cells + [""] * (width - len(cells))]
        (head if i == 0 else body).append(row)
    group += [head, body]
    return table


class ResultsTables(Directive):
    required_arguments = 1
    option_spec = {"only": directives.unchanged, "headings": directives.flag}

    def run(self) -> list[nodes.Node]:
        from results_tables import markdown_tables

        from results_tables import README_TABLES

        path = ROOT / self.arguments[0]
        if not path.is_file():
            raise self.error(f"results-tables: no file {self.arguments[0]}")
        self.state.document.settings.env.note_dependency(str(path))
        if path.suffix == ".json":  # a JSON results file: the table the README makes of it
            if self.arguments[0] not in README_TABLES:
                raise self.error(f"results-tables: no table is made of {self.arguments[0]}")
            return [table_node(README_TABLES[self.arguments[0]]())]
        only = [s.strip() for s in self.options.get("only", "").splitlines() if s.strip()]
        tables = [t for t in markdown_tables(path.read_text(encoding="utf-8"))
                  if not only or any(t.heading.startswith(o) for o in only)]
        if not tables:
            raise self.error(f"results-tables: {self.arguments[0]} has no table" + (f" under {only}" if only else ""))
        out: list[nodes.Node] = []
        for t in tables:
            if "headings" in self.options and t.heading:
                out.append(nodes.rubric(t.heading, t.heading))
            out.append(table_node(t.lines))
        return out


class MarkdownTable(Directive):
    has_content = True

    def run(self) -> list[nodes.Node]:
        lines = [line.strip() for line in self.content if line.strip()]
        if not lines or not all(line.startswith("|") for line in lines):
            raise self.error("md-table: the content must be a Markdown pipe table")
        return [table_node(lines)]


def setup(app):
    app.add_directive("readme-example", ReadmeExample)
    app.add_directive("readme-block", ReadmeBlock)
    app.add_directive("recipe-list", RecipeList)
    app.add_directive("results-tables", ResultsTables)
    app.add_directive("md-table", MarkdownTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
