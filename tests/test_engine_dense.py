"""fastrnn._engine.dense: the three dense products against NumPy (float64 oracle), every
thread count, with and without OpenBLAS's thread-local control, and under a smaller OpenMP
team than asked for (a fresh process, as tests/test_engine_threads.py does)."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

dense = pytest.importorskip("fastrnn._engine.dense")
from fastrnn._engine import kernels  # noqa: E402,F401  (selects the ISA path)
from fastrnn._engine import runtime as _runtime  # noqa: E402
from fastrnn._engine.config import _blas_local_address  # noqa: E402

import fastrnn  # noqa: E402

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))

# (R, K, N): large enough that every product asks for 2 threads; odd edges
SHAPES = [(300, 129, 131), (97, 211, 301), (1000, 33, 65), (13, 40, 17), (1, 5, 3)]


def _check(R, K, N, dt, nthreads, blas_local, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((R, K)).astype(dt)
    w = rng.standard_normal((N, K)).astype(dt)
    dy = rng.standard_normal((R, N)).astype(dt)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    y = np.full((R, N), np.nan, dt)
    dx = np.full((R, K), np.nan, dt)
    dw = np.full((N, K), np.nan, dt)
    dense.matmul_nt(x, w, y, nthreads)
    dense.matmul_nn(dy, w, dx, nthreads)
    dense.matmul_tn(dy, x, dw, nthreads, blas_local)
    tol = 1e-11 if dt == np.float64 else 2e-5
    bad = []
    for name, got, want in (("y", y, x64 @ w64.T), ("dx", dx, dy64 @ w64),
                            ("dw", dw, dy64.T @ x64)):
        scale = np.sqrt(want.shape[1] if name != "dw" else R) * max(1.0, np.abs(want).max())
        if not np.allclose(got, want, rtol=tol, atol=tol * scale):
            bad.append(f"{name} {dt.__name__} {(R, K, N)} threads={nthreads}: max err "
                       f"{np.nanmax(np.abs(got - want))}")
    return bad


@pytest.mark.parametrize("with_local", [True, False], ids=["blas_local", "no_blas_local"])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("R,K,N", SHAPES)
def test_products_match_numpy(R, K, N, dt, nthreads, with_local):
    local = _blas_local_address() if with_local else 0
    assert _check(R, K, N, dt, nthreads, local, seed=R + K + N) == []


def test_zero_sized_axes():
    out = np.full((3, 4), np.nan)
    dense.matmul_nt(np.ones((3, 0)), np.ones((4, 0)), out, 2)
    np.testing.assert_array_equal(out, 0)
    out = np.full((3, 4), np.nan)
    dense.matmul_nn(np.ones((3, 0)), np.ones((0, 4)), out, 2)
    np.testing.assert_array_equal(out, 0)
    out = np.full((3, 4), np.nan)
    dense.matmul_tn(np.ones((0, 3)), np.ones((0, 4)), out, 2, _blas_local_address())
    np.testing.assert_array_equal(out, 0)


def test_read_only_operands():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((50, 20)).astype(np.float32)
    w = rng.standard_normal((30, 20)).astype(np.float32)
    x.setflags(write=False)
    w.setflags(write=False)
    y = np.empty((50, 30), np.float32)
    dense.matmul_nt(x, w, y, 2)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-4)


def _check_bmm(nb, M, K, N, dt, nthreads, blas_local, seed):
    rng = np.random.default_rng(seed)
    bad = []
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((nb, K, M) if ta else (nb, M, K)).astype(dt)
            b = rng.standard_normal((nb, N, K) if tb else (nb, K, N)).astype(dt)
            out = np.full((nb, M, N), np.nan, dt)
            dense.bmm(a, b, out, ta, tb, nthreads, blas_local)
            a64 = a.astype(np.float64).transpose(0, 2, 1) if ta else a.astype(np.float64)
            b64 = b.astype(np.float64).transpose(0, 2, 1) if tb else b.astype(np.float64)
            want = np.matmul(a64, b64)
            tol = 1e-11 if dt == np.float64 else 2e-5
            if not np.allclose(out, want, rtol=tol, atol=tol * np.sqrt(K) * np.abs(want).max()):
                bad.append(f"bmm {dt.__name__} {(nb, M, K, N)} ta={ta} tb={tb} "
                           f"threads={nthreads}: max err {np.nanmax(np.abs(out - want))}")
    return bad


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("nb,M,K,N", [(1, 3, 4, 5), (5, 31, 17, 40), (16, 40, 64, 50)])
def test_bmm_matches_numpy(nb, M, K, N, dt, nthreads):
    assert _check_bmm(nb, M, K, N, dt, nthreads, _blas_local_address(), seed=nb + M) == []
    assert _check_bmm(nb, M, K, N, dt, nthreads, 0, seed=nb + M) == []


SCRIPT = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from test_engine_dense import _check, _check_bmm, SHAPES
from fastrnn._engine.config import _blas_local_address
bad = []
for R, K, N in SHAPES[:3]:
    for dt in (np.float32, np.float64):
        bad += _check(R, K, N, dt, 2, _blas_local_address(), seed=R)
        bad += _check_bmm(16, 40, 64, 50, dt, 2, _blas_local_address(), seed=R)
print("\n".join(bad) if bad else "OK")
sys.exit(1 if bad else 0)
"""


@pytest.mark.skipif(not _runtime.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("env", [{"OMP_THREAD_LIMIT": "1"}, {"OMP_DYNAMIC": "true"}],
                         ids=["thread_limit_1", "dynamic"])
def test_smaller_team_than_requested(env):
    full = dict(os.environ)
    for k in ("OMP_THREAD_LIMIT", "OMP_DYNAMIC", "OMP_NUM_THREADS"):
        full.pop(k, None)
    full.update(env)
    full["PYTHONPATH"] = PKG_PARENT + os.pathsep + full.get("PYTHONPATH", "")
    script = SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    # outside the source checkout, so an uncompiled fastrnn/ there cannot shadow the build
    proc = subprocess.run([sys.executable, "-c", script], env=full, capture_output=True,
                          cwd=tempfile.gettempdir(), text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK"
