"""The compiled kernels give the reference's numbers whatever team size OpenMP grants.

OpenMP may start fewer threads than a parallel region asks for (OMP_THREAD_LIMIT,
OMP_DYNAMIC=true on a loaded machine). The kernels once split rows by the thread
count they asked for, so rows owned by threads that never ran were left uncomputed
(wrong outputs, NaN, wrong dW_ih) with no error. These tests run every cell's
forward and backward in a fresh process under such settings, on shapes large
enough that every threaded path (batch split, projection, weight gradients) is
asked for two threads, and compare with the float64 NumPy reference.
"""
import tempfile
import os
import subprocess
import sys

import pytest

# subprocesses start outside the source checkout: `python -c` puts the working directory
# first on sys.path, and the checkout's uncompiled fastrnn/ would shadow the installed one
_OUTSIDE_SOURCE = tempfile.gettempdir()

import fastrnn
from fastrnn._engine import runtime as _runtime

# the directory holding the fastrnn package under test (installed or built in place)
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))

SCRIPT = r"""
import sys
import numpy as np
import fastrnn
from fastrnn import reference as R
from fastrnn._engine import kernels as E

fastrnn.set_num_threads(2)
rng = np.random.default_rng(1234)
bad = []
# (T, B, I, H): a batch split over the threads, and one row whose hidden units are split
# (a barrier per step: every thread must reach it the same number of times)
CASES = [(shape, cell, dt) for shape in ((6, 16, 64, 48), (3, 1, 8, 1024))
         for cell in (("rnn", 1), ("lstm", 4), ("gru", 3)) for dt in (np.float64, np.float32)]
for (T, B, I, H), (cell, G), dt in CASES:
    s = 1.0 / np.sqrt(H)
    a = dict(x=rng.standard_normal((T, B, I)), h0=0.5 * rng.standard_normal((B, H)))
    if cell == "lstm":
        a["c0"] = rng.standard_normal((B, H))
    a.update(weight_ih=rng.uniform(-s, s, (G * H, I)), weight_hh=rng.uniform(-s, s, (G * H, H)),
             bias_ih=rng.uniform(-s, s, G * H), bias_hh=rng.uniform(-s, s, G * H))
    a = {k: v.astype(dt) for k, v in a.items()}
    keys = ["x", "h0"] + (["c0"] if cell == "lstm" else []) + \
        ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    # recurrent dropout on the float32 batch-split runs (each thread masks its own rows)
    kw = {}
    if dt == np.float32 and B > 1:
        kw["recurrent_mask"] = ((rng.random((B, H)) >= 0.25) / 0.75).astype(dt)
    ref = getattr(R, cell + "_forward")(*[a[k] for k in keys], training=True, **kw)
    got = getattr(E, cell + "_forward")(*[a[k] for k in keys], training=True, **kw)
    tol = 1e-9 if dt == np.float64 else 2e-3
    for i, (r, g) in enumerate(zip(ref[:-1], got[:-1])):
        if not np.allclose(g, r, rtol=tol, atol=tol):
            bad.append(f"{cell} {dt.__name__} forward output {i}: max err "
                       f"{np.nanmax(np.abs(g - r))}")
    grads = [rng.standard_normal(o.shape).astype(dt) for o in ref[:-1]]
    gr = getattr(R, cell + "_backward")(ref[-1], *grads)
    ge = getattr(E, cell + "_backward")(got[-1], *grads)
    for k in gr:
        scale = max(1.0, float(np.abs(gr[k]).max()))
        if not np.allclose(ge[k], gr[k], rtol=tol, atol=tol * scale):
            bad.append(f"{cell} {dt.__name__} d{k}: max err {np.nanmax(np.abs(ge[k] - gr[k]))}")
print("\n".join(bad) if bad else "OK")
sys.exit(1 if bad else 0)
"""


@pytest.mark.skipif(not _runtime.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("env", [{"OMP_THREAD_LIMIT": "1"}, {"OMP_DYNAMIC": "true"},
                                 {"OMP_THREAD_LIMIT": "1", "OMP_DYNAMIC": "true"}, {}],
                         ids=["thread_limit_1", "dynamic", "both", "default"])
def test_smaller_team_than_requested_matches_reference(env):
    full = dict(os.environ)
    for k in ("OMP_THREAD_LIMIT", "OMP_DYNAMIC", "OMP_NUM_THREADS"):
        full.pop(k, None)
    full.update(env)
    full["PYTHONPATH"] = PKG_PARENT + os.pathsep + full.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=full, capture_output=True,
                          cwd=_OUTSIDE_SOURCE,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK"
