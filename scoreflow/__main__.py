"""``python -m scoreflow``: the command line."""

import sys

from scoreflow.cli import main

sys.exit(main())
