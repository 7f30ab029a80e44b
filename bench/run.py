#!/usr/bin/env python3
"""Run the fastrnn benchmark suite (see bench/README.md).

The suite itself lives in the package (``fastrnn.bench``) so that an installed ``fastrnn bench``
works outside the repository; this script is a thin wrapper. It uses the installed fastrnn when
there is one and falls back to the source tree next to this file otherwise.

    python bench/run.py --quick
    python bench/run.py --json /tmp/bench.json --plot /tmp/bench.png
"""

import os
import sys


def _import_main():
    try:
        from fastrnn.bench import main
    except ImportError:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, root)
        from fastrnn.bench import main
    return main


if __name__ == "__main__":
    sys.exit(_import_main()(sys.argv[1:]))
