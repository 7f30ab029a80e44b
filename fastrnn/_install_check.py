"""What to tell a user whose compiled engine does not import.

The usual cause on a first try: Python was started in the repository root after
``pip install .``, so ``import fastrnn`` finds the source folder (no compiled modules) before the
installed copy. Reinstalling cannot help then; running elsewhere or building in place does.
"""

from __future__ import annotations

import glob
import os

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def compiled_modules_present(pkg_dir: str = _PKG_DIR) -> bool:
    """True when the engine folder holds compiled extension modules (.so / .pyd)."""
    engine = os.path.join(pkg_dir, "_engine")
    return any(glob.glob(os.path.join(engine, pattern)) for pattern in ("*.so", "*.pyd"))


def source_checkout(pkg_dir: str = _PKG_DIR) -> str | None:
    """The checkout's root when this package is imported from a source tree, else None."""
    root = os.path.dirname(pkg_dir)
    return root if os.path.isfile(os.path.join(root, "setup.py")) else None


def shadowed_checkout(pkg_dir: str = _PKG_DIR) -> str | None:
    """The checkout's root when the compiled engine is missing because fastrnn is imported
    from an unbuilt source tree, else None."""
    root = source_checkout(pkg_dir)
    return root if root is not None and not compiled_modules_present(pkg_dir) else None


def build_hint(pkg_dir: str = _PKG_DIR) -> str:
    """One sentence: how to get the compiled engine in this situation."""
    root = shadowed_checkout(pkg_dir)
    if root is not None:
        return (f"you are importing fastrnn from the source checkout at {root}; run from "
                "another directory or build in place with "
                "`python setup.py build_ext --inplace`")
    return "fastrnn's compiled kernels are not built (reinstall with `pip install .`)"
