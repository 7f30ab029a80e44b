"""What a release ships: the wheel's file list, the licence, no sources, no debug info.

The file-list test asks setuptools itself (``setup.py build_py``: exactly the Python files and
package data a wheel gets, no compilation, about a second). The built-wheel test needs a wheel:
set FASTRNN_WHEEL=path/to/fastrnn-*.whl (``.ci/wheel`` does, after ``auditwheel repair``).
"""

import os
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_SUFFIXES = (".c", ".cpp", ".h", ".pyx", ".pxd")
ENGINE_MODULES = ("_cyutility", "blas", "runtime", "elman", "lstm", "gru")
HELPER_LIBRARY = "libfastrnn_helpers"      # Linux: the C helpers, shared by the modules

needs_checkout = pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "setup.py")),
                                    reason="needs the source checkout (setup.py)")


def _check_package_files(names):
    """Assertions shared by the setuptools file list and a built wheel's."""
    pkg = [n for n in names if not n.split("/")[0].endswith((".dist-info", ".libs"))]
    assert pkg, "no package files"
    assert all(n.startswith("fastrnn/") for n in pkg), [n for n in pkg
                                                        if not n.startswith("fastrnn/")]
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    assert not [n for n in names if n.endswith(SOURCE_SUFFIXES)], \
        [n for n in names if n.endswith(SOURCE_SUFFIXES)]
    for must in ("fastrnn/__init__.py", "fastrnn/py.typed", "fastrnn/_engine/kernels.py",
                 "fastrnn/models/model.py", "fastrnn/layers/recurrent.py"):
        assert must in names, must


@needs_checkout
def test_wheel_file_list_from_setuptools(tmp_path):
    pytest.importorskip("Cython")       # setup.py imports it (a build requirement)
    out = tmp_path / "lib"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    names = sorted(os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/")
                   for d, _, files in os.walk(out) for f in files)
    _check_package_files(names)


@needs_checkout
def test_license_file_and_metadata():
    with open(os.path.join(ROOT, "LICENSE")) as fh:
        text = fh.read()
    assert text.startswith("BSD 3-Clause License")
    assert "the fastrnn developers" in text
    with open(os.path.join(ROOT, "pyproject.toml")) as fh:
        toml = fh.read()
    assert re.search(r'^license = "BSD-3-Clause"$', toml, re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', toml, re.M)
    test_extra = re.search(r"^test = \[(.*)\]$", toml, re.M).group(1)
    assert "torch" not in test_extra        # plain torch resolves to the multi-GB CUDA build


def _wheel_path():
    path = os.environ.get("FASTRNN_WHEEL", "")
    if not path:
        pytest.skip("set FASTRNN_WHEEL to a built wheel to check it (.ci/wheel does)")
    assert os.path.isfile(path), f"FASTRNN_WHEEL={path!r} is not a file"
    return path


def test_built_wheel_contents():
    path = _wheel_path()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        _check_package_files(names)
        licenses = [n for n in names if re.match(r"fastrnn-[^/]+\.dist-info/licenses/LICENSE$", n)]
        assert licenses, "LICENSE missing from the wheel's .dist-info/licenses/"
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "License-Expression: BSD-3-Clause" in meta
        exts = [n for n in names if re.match(r"fastrnn/_engine/\w+\..*(\.so|\.pyd)$", n)]
        stems = sorted(n.split("/")[-1].split(".")[0] for n in exts)
        if HELPER_LIBRARY in stems:     # Linux wheels share one helper library
            stems.remove(HELPER_LIBRARY)
        assert stems == sorted(ENGINE_MODULES)
        for n in exts:                  # release builds carry no debug info
            assert b".debug_info" not in zf.read(n), n


def test_repaired_wheel_is_small_and_self_contained():
    path = _wheel_path()
    if "manylinux" not in os.path.basename(path):
        pytest.skip("not an auditwheel-repaired manylinux wheel")
    assert os.path.getsize(path) < 2_000_000
    with zipfile.ZipFile(path) as zf:
        vendored = [n for n in zf.namelist() if n.startswith("fastrnn.libs/")]
    assert any("libgomp" in n for n in vendored), vendored
