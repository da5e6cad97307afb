"""Sphinx configuration of the padis3d documentation (build: see README "Documentation")."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                       # padis3d, tiling (also when not installed)
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import padis3d  # noqa: E402

project = "padis3d"
author = "padis3d authors"
copyright = "2026, padis3d authors"
release = version = padis3d.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinxarg.ext",
    "padis3d_docs",
]
exclude_patterns = ["_build"]
# no dash conversion: option names such as --budget in the command-line reference (argparse help
# rendered by sphinx-argparse) must stay as typed, not become en dashes
smartquotes_action = "qe"
html_theme = "alabaster"
html_static_path = []

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# Doctests (``sphinx-build -b doctest``) run from the repository root, like the README's
# examples, on one thread (the site build must stay fast on a 2-core machine).
doctest_global_setup = f"""
import os
os.chdir({str(ROOT)!r})
import torch
torch.set_num_threads(1)
"""
