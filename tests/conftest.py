"""Suite-wide test settings.

Hypothesis runs derandomized (the examples follow from each test's name, the same on every
run and machine), so a failure seen once is seen again; ``FASTRNN_HYPOTHESIS_RANDOM=1``
explores new examples instead, for a local bug hunt.
"""
import os

try:
    from hypothesis import settings
except ImportError:          # hypothesis is a test extra; its tests importorskip it
    settings = None

if settings is not None:
    settings.register_profile("fastrnn", derandomize=True, deadline=None,
                              print_blob=True)
    settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)
    settings.load_profile("explore" if os.environ.get("FASTRNN_HYPOTHESIS_RANDOM") else
                          "fastrnn")
