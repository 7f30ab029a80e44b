"""The source-checkout shadowing case: a clear sentence instead of "reinstall"."""

import os
import shutil
import subprocess
import sys

import fastrnn
from fastrnn import _install_check

PKG = os.path.dirname(os.path.abspath(fastrnn.__file__))


def _fake_tree(root, with_setup=True, with_so=False):
    pkg = root / "fastrnn"
    (pkg / "_engine").mkdir(parents=True)
    if with_setup:
        (root / "setup.py").write_text("# the checkout's build script\n")
    if with_so:
        (pkg / "_engine" / "lstm.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    return str(pkg)


def test_unbuilt_checkout_is_detected(tmp_path):
    pkg = _fake_tree(tmp_path)
    assert _install_check.shadowed_checkout(pkg) == str(tmp_path)
    hint = _install_check.build_hint(pkg)
    assert hint.startswith(f"you are importing fastrnn from the source checkout at {tmp_path};")
    assert "python setup.py build_ext --inplace" in hint and "pip install" not in hint


def test_built_checkout_or_installed_copy_is_not_shadowing(tmp_path):
    built = _fake_tree(tmp_path / "a", with_so=True)
    assert _install_check.shadowed_checkout(built) is None
    installed = _fake_tree(tmp_path / "b", with_setup=False)      # site-packages: no setup.py
    assert _install_check.shadowed_checkout(installed) is None
    assert "pip install" in _install_check.build_hint(installed)


def test_import_from_an_unbuilt_checkout_says_what_to_do(tmp_path):
    # a copy of the package without its compiled modules, next to a setup.py, imported from
    # the checkout's root as a new user would after `git clone` + `python`
    shutil.copytree(PKG, tmp_path / "fastrnn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (tmp_path / "setup.py").write_text("# the checkout's build script\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import fastrnn"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"you are importing fastrnn from the source checkout at {tmp_path}" in proc.stderr
    assert "build_ext --inplace" in proc.stderr


def test_public_api_lists_the_config_helpers_and_datasets():
    for name in ("show_config", "set_num_threads", "get_num_threads", "datasets"):
        assert name in fastrnn.__all__
    assert fastrnn.datasets.load_sunspots is not None
