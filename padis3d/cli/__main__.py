"""``python -m padis3d.cli ...`` runs the ``padis3d`` command."""

from padis3d.cli.main import entry

entry()
