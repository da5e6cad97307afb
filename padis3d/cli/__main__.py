"""``python -m padis3d.cli ...`` runs the ``padis3d`` command."""

import sys

from padis3d.cli.main import main

sys.exit(main())
