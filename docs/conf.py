"""Sphinx configuration of fastrnn's documentation site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (CI treats warnings as
errors). The API pages come from the numpydoc docstrings (napoleon), the user guide from the
README's sections, the examples page from examples/.
"""

import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# document the checkout next to this file (the docstrings need no compiled engine)
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="you are importing fastrnn from the source checkout")
warnings.filterwarnings("ignore", message=".*falling back to the slow NumPy reference")

import fastrnn  # noqa: E402

project = "fastrnn"
author = "the fastrnn developers"
copyright = "2026, the fastrnn developers"
release = version = fastrnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 3

# numpydoc-style docstrings through napoleon (no extra dependency)
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# "Attributes" sections as fields, so a documented property is not described twice
napoleon_use_ivar = True
napoleon_preprocess_types = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True,
                           "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = True
# the compiled engine is private and may be absent where the docs are built
autodoc_mock_imports = ["fastrnn._engine._cyutility", "fastrnn._engine.blas", "fastrnn._engine.runtime",
                        "fastrnn._engine.elman", "fastrnn._engine.lstm", "fastrnn._engine.gru"]

html_theme = "alabaster"
html_title = f"fastrnn {release}"
html_static_path = []
# "more than one target found" for plain words in parameter types ("name, Initializer or
# callable" links `name` to every Loss.name): ambiguity only, the text reads right
suppress_warnings = ["myst.header", "ref.python"]
