"""fastrnn.linalg.matmul: NumPy's products, on the engine's threads or NumPy's, same numbers."""
import numpy as np
import pytest

import fastrnn as fr
from fastrnn import linalg
from fastrnn.linalg import bmm, matmul
from _threads import cpu_while_sleeping  # tests/ helper module

try:
    from fastrnn._engine import dense as _dense  # noqa: F401
    HAVE_ENGINE = True
except ImportError:   # pragma: no cover - uncompiled checkout
    HAVE_ENGINE = False

BACKENDS = ["numpy", None] + (["cython"] if HAVE_ENGINE else [])
# (leading axes, K, N): odd sizes around the packed GEMM's tile edges, one row, one column
SHAPES = [((1,), 1, 1), ((5,), 3, 7), ((2, 9), 17, 33), ((37,), 53, 29), ((3, 41), 64, 1),
          ((130,), 7, 97), ((4, 5, 6), 19, 50)]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    prev = fr.get_num_threads()
    fr.set_num_threads(request.param)
    yield request.param
    fr.set_num_threads(prev)


def _tol(dt):
    return dict(rtol=2e-5, atol=2e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _data(rng, lead, K, N, dt):
    x = rng.standard_normal(lead + (K,)).astype(dt)
    w = rng.standard_normal((N, K)).astype(dt)
    dy = rng.standard_normal(lead + (N,)).astype(dt)
    return x, w, dy


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: str(b))
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("lead,K,N", SHAPES)
def test_three_products_match_numpy(lead, K, N, dt, backend, threads):
    rng = np.random.default_rng(100 + K * 7 + N)
    x, w, dy = _data(rng, lead, K, N, dt)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    y = matmul(x, w, transpose_b=True, backend=backend)
    dx = matmul(dy, w, backend=backend)
    dw = matmul(dy, x, transpose_a=True, backend=backend)
    for got, want, shape in ((y, x64 @ w64.T, lead + (N,)), (dx, dy64 @ w64, lead + (K,)),
                             (dw, dy64.reshape(-1, N).T @ x64.reshape(-1, K), (N, K))):
        assert got.dtype == dt and got.shape == shape and got.flags.c_contiguous
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=_tol(dt)["rtol"],
                                   atol=_tol(dt)["atol"] * scale * np.sqrt(max(K, N, 1)))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: str(b))
def test_non_contiguous_and_read_only_operands(backend, threads):
    rng = np.random.default_rng(7)
    big = rng.standard_normal((40, 2 * 31)).astype(np.float32)
    x = big[:, ::2]                              # strided (40, 31)
    wf = np.asfortranarray(rng.standard_normal((23, 31)).astype(np.float32))
    wf.setflags(write=False)
    dy = rng.standard_normal((23, 40)).astype(np.float32).T     # transposed view (40, 23)
    dy.setflags(write=False)
    before = (x.copy(), wf.copy(), dy.copy())
    np.testing.assert_allclose(matmul(x, wf, transpose_b=True, backend=backend), x @ wf.T,
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(matmul(dy, wf, backend=backend), dy @ wf, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(matmul(dy, x, transpose_a=True, backend=backend), dy.T @ x,
                               rtol=1e-5, atol=1e-4)
    for a, b in zip((x, wf, dy), before):      # operands untouched
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not HAVE_ENGINE, reason="kernels not compiled")
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_large_products_run_in_the_engine_and_match(dt, threads, monkeypatch):
    """Shapes above the size rule go to the engine by default (split over the threads)."""
    calls = []
    real = linalg._engine

    def spy():
        calls.append(1)
        return real()
    monkeypatch.setattr(linalg, "_engine", spy)
    rng = np.random.default_rng(3)
    x, w, dy = _data(rng, (4, 97), 131, 203, dt)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    tol = _tol(dt)
    np.testing.assert_allclose(matmul(x, w, transpose_b=True), x64 @ w64.T, rtol=tol["rtol"],
                               atol=tol["atol"] * 40)
    np.testing.assert_allclose(matmul(dy, w), dy64 @ w64, rtol=tol["rtol"], atol=tol["atol"] * 40)
    np.testing.assert_allclose(matmul(dy, x, transpose_a=True),
                               dy64.reshape(-1, 203).T @ x64.reshape(-1, 131),
                               rtol=tol["rtol"], atol=tol["atol"] * 60)
    assert (len(calls) > 0) == (threads > 1)     # one thread: NumPy on the calling thread


def test_size_rule_keeps_small_and_narrow_products_in_numpy(monkeypatch):
    monkeypatch.setattr(linalg, "_num_threads", lambda: 2)
    monkeypatch.setattr(linalg, "_engine", lambda: pytest.fail("engine used"))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 32)).astype(np.float32)
    matmul(x, rng.standard_normal((16, 32)).astype(np.float32), transpose_b=True)   # tiny
    xb = rng.standard_normal((5000, 1000)).astype(np.float32)
    matmul(xb, rng.standard_normal((1, 1000)).astype(np.float32), transpose_b=True)  # N = 1
    xs = rng.standard_normal((100, 1000)).astype(np.float32)
    matmul(xs, rng.standard_normal((100, 1)).astype(np.float32), transpose_a=True)  # 100k MACs
    matmul(rng.standard_normal((10**5, 20)).astype(np.float32),                    # dW 20 x 3
           rng.standard_normal((10**5, 3)).astype(np.float32), transpose_a=True)


def test_mixed_precision_gives_float64():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 2), np.float64)
    out = matmul(a, b)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.full((3, 2), 4.0))


def test_empty_axes():
    for backend in BACKENDS:
        assert matmul(np.ones((0, 3)), np.ones((5, 3)), transpose_b=True,
                      backend=backend).shape == (0, 5)
        np.testing.assert_array_equal(
            matmul(np.ones((4, 0)), np.ones((0, 3)), backend=backend), np.zeros((4, 3)))
        np.testing.assert_array_equal(
            matmul(np.ones((0, 2)), np.ones((0, 3)), transpose_a=True, backend=backend),
            np.zeros((2, 3)))


@pytest.mark.parametrize("args,kw,exc,words", [
    ((np.ones((2, 3), np.int64), np.ones((3, 2))), {}, TypeError, ["a:", "int64"]),
    ((np.ones((2, 3)), np.ones((3, 2), np.float16)), {}, TypeError, ["b:", "float16"]),
    ((np.ones((2, 3)), np.ones((3, 2), complex)), {}, TypeError, ["b:", "complex"]),
    ((np.ones((2, 3)), "x"), {}, TypeError, ["b:"]),
    ((np.ones((2, 3)), np.ones((4, 2))), {}, ValueError, ["b.shape[0]", "3", "(4, 2)"]),
    ((np.ones((2, 3)), np.ones((2, 4))), {"transpose_b": True}, ValueError, ["b.shape[1]"]),
    ((np.ones((2, 3)), np.ones((3, 2, 2))), {}, ValueError, ["b:", "2 dimensions"]),
    ((np.ones((2, 3)), np.ones((4, 2))), {"transpose_a": True}, ValueError, ["leading"]),
    ((np.ones((2, 3)), np.ones((3, 2))), {"transpose_a": True, "transpose_b": True},
     ValueError, ["at most one"]),
    ((np.ones((2, 3)), np.ones((3, 2))), {"backend": "torch"}, ValueError, ["backend"]),
    ((np.float64(1.0), np.ones((3, 2))), {}, ValueError, ["a:", "1 dimension"]),
])
def test_bad_input_names_the_argument(args, kw, exc, words):
    with pytest.raises(exc) as info:
        matmul(*args, **kw)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: str(b))
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("nb,M,K,N", [(1, 1, 1, 1), (3, 7, 5, 9), (9, 41, 33, 129)])
def test_bmm_matches_numpy(nb, M, K, N, ta, tb, dt, backend, threads):
    rng = np.random.default_rng(nb * 1000 + M + K + N)
    a = rng.standard_normal((nb, K, M) if ta else (nb, M, K)).astype(dt)
    b = rng.standard_normal((nb, N, K) if tb else (nb, K, N)).astype(dt)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = np.matmul(a64.transpose(0, 2, 1) if ta else a64, b64.transpose(0, 2, 1) if tb else b64)
    got = bmm(a[:, :, :] if ta else a, b, transpose_a=ta, transpose_b=tb, backend=backend)
    assert got.dtype == dt and got.shape == (nb, M, N)
    np.testing.assert_allclose(got, want, rtol=_tol(dt)["rtol"],
                               atol=_tol(dt)["atol"] * np.sqrt(K) * max(1, np.abs(want).max()))


def test_bmm_strided_read_only_and_bad_input():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((4, 6, 10))[:, :, ::2]            # strided (4, 6, 5)
    b = np.asfortranarray(rng.standard_normal((4, 5, 3)))
    b.setflags(write=False)
    for backend in BACKENDS:
        np.testing.assert_allclose(bmm(a, b, backend=backend), np.matmul(a, b), rtol=1e-12)
    with pytest.raises(ValueError, match="a: expected 3 dimensions"):
        bmm(np.ones((2, 3)), b)
    with pytest.raises(ValueError, match="batch size"):
        bmm(np.ones((3, 6, 5)), b)
    with pytest.raises(ValueError, match=r"b.shape\[1\] == 6"):
        bmm(np.ones((4, 5, 6)), b)
    with pytest.raises(TypeError, match="a: .*int64"):
        bmm(np.ones((4, 6, 5), np.int64), b)


@pytest.mark.skipif(not HAVE_ENGINE, reason="kernels not compiled")
def test_dense_training_step_leaves_no_spinning_blas_pool(threads):
    """The reason for this module: after a threaded call NumPy's OpenBLAS workers spin on the
    cores (~0.1 s) and take them from the engine's next kernel. A Dense layer's forward and
    backward, large (engine) and medium (NumPy held to one thread) products alike, must leave
    no pool burning CPU while the calling thread sleeps. Control first: NumPy's own ``@`` on
    the same product does spin here (else this machine cannot show the difference)."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((640, 256)).astype(np.float32)
    w = rng.standard_normal((512, 256)).astype(np.float32)
    for _ in range(3):
        x @ w.T
    cpu_while_sleeping(0.01)
    if cpu_while_sleeping(0.06) < 0.02:
        pytest.skip("NumPy's BLAS leaves no spinning pool here (one thread?)")
    cpu_while_sleeping(0.3)                         # let that pool go to sleep
    for units, rows in ((512, 640), (96, 128)):      # engine-sized, then NumPy-sized
        layer = fr.Dense(units, seed=1)
        xi = rng.standard_normal((rows // 32, 32, 256)).astype(np.float32)
        for _ in range(3):
            y = layer.forward(xi, training=True)
            layer.backward(np.ones_like(y))
    cpu_while_sleeping(0.01)                        # the engine's team idles within ~1 ms
    assert cpu_while_sleeping(0.06) < 0.02


def test_sizes_beyond_a_c_int_never_reach_the_engine(monkeypatch):
    monkeypatch.setattr(linalg, "_engine", lambda: pytest.fail("engine used"))
    monkeypatch.setattr(linalg, "_num_threads", lambda: 2)
    assert not linalg._pick(None, 2, True, (2**31, 8, 8))
    with pytest.raises(ValueError, match="exceed the engine's limit"):
        linalg._pick("cython", 2, True, (8, 2**31, 8))
