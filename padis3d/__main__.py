"""``python -m padis3d ...`` runs the ``padis3d`` command."""

from padis3d.cli.main import entry

entry()
