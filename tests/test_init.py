"""The package import: public names, and the OpenMP wait policy stays private to fastrnn."""

import os
import subprocess
import sys

import fastrnn as fr


def test_public_names_exist():
    for name in fr.__all__:
        assert hasattr(fr, name), name


def test_import_leaves_the_environment_alone(tmp_path):
    # run outside the source tree, so the installed (compiled) package is the one imported
    code = ("import os, fastrnn; print(os.environ.get('OMP_WAIT_POLICY'), "
            "os.environ.get('GOMP_SPINCOUNT'), fastrnn.functional.default_backend())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.split()
    assert out == ["None", "None", "cython"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.split()
    assert out[:2] == ["ACTIVE", "None"]
