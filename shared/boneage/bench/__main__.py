"""``python -m boneage.bench``: the benchmark's command line (``scripts/bench.py``); also how the driver
spawns its fresh-process workers."""

import sys

from .driver import main

sys.exit(main())
