"""The ``padis3d`` command: one module per subcommand (``train``, ``reconstruct`` / ``sample``
for images and volumes, ``demo``, ``tiling-demo``, ``info``), the option checks they share
(:mod:`padis3d.cli.options`) and the output-folder guard (:mod:`padis3d.cli.outputs`). This is the
only layer that knows about files given on the command line, exit codes and reports."""

from padis3d.cli.main import build_parser, entry, main

__all__ = ["build_parser", "entry", "main"]
