"""``python -m padis3d ...`` runs the ``padis3d`` command."""

import sys

from padis3d.cli.main import main

sys.exit(main())
