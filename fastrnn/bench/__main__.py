"""``python -m fastrnn.bench``: the benchmark suite's command line."""
import sys

from . import main

sys.exit(main())
