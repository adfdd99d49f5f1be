"""`python -m core`: the headless command line of Bulk SMS Studio."""

import sys

from core.cli import main

sys.exit(main())
