"""`python -m gateway` runs the same command line as the `gateway` console script."""

import sys

from gateway.cli import main

sys.exit(main())
