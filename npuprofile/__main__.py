"""``python -m npuprofile``: the command line."""

import sys

from npuprofile.cli.main import main

sys.exit(main())
