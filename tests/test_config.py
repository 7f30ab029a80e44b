"""fastrnn.show_config / set_num_threads / get_num_threads / release_memory."""
import io

import pytest

import fastrnn
from fastrnn._engine import config as _config


@pytest.fixture(autouse=True)
def _restore_threads():
    saved = _config._num_threads
    yield
    _config._num_threads = saved


def test_show_config_reports_build_and_runtime():
    buf = io.StringIO()
    fastrnn.show_config(file=buf)
    text = buf.getvalue()
    assert text.startswith("fastrnn " + fastrnn.__version__)
    assert "BLAS (scipy)" in text
    rt = _config._runtime()
    if rt is not None:
        assert "OpenMP" in text and "SIMD dispatched" in text
        assert ("on" if rt.openmp_enabled() else "off") in text.split("OpenMP")[1].splitlines()[0]
        assert f"threads           {fastrnn.get_num_threads()}" in text


def test_show_config_prints_to_stdout(capsys):
    fastrnn.show_config()
    assert "fastrnn" in capsys.readouterr().out


def test_set_get_num_threads_roundtrip():
    rt = _config._runtime()
    fastrnn.set_num_threads(1)
    assert fastrnn.get_num_threads() == 1
    fastrnn.set_num_threads(3)
    expected = 3 if (rt is not None and rt.openmp_enabled()) else 1
    assert fastrnn.get_num_threads() == expected
    fastrnn.set_num_threads(None)
    assert fastrnn.get_num_threads() >= 1


@pytest.mark.parametrize("bad", [0, -2])
def test_set_num_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        fastrnn.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", True])
def test_set_num_threads_rejects_non_int(bad):
    with pytest.raises(TypeError, match="positive int"):
        fastrnn.set_num_threads(bad)


def test_simd_level_is_named():
    rt = pytest.importorskip("fastrnn._engine.runtime")
    assert rt.simd_level() in ("avx512", "avx2", "avx2w16", "baseline")


def test_threads_do_not_change_results():
    np = pytest.importorskip("numpy")
    eng = pytest.importorskip("fastrnn._engine.kernels")
    rng = np.random.default_rng(0)
    T, B, I, H = 5, 24, 8, 64   # large enough for the batch-split threads
    args = [rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H)),
            rng.standard_normal((4 * H, I)) * 0.3, rng.standard_normal((4 * H, H)) * 0.3,
            rng.standard_normal(4 * H) * 0.1, rng.standard_normal(4 * H) * 0.1]
    fastrnn.set_num_threads(1)
    one = eng.lstm_forward(*args, training=True)
    g1 = eng.lstm_backward(one[-1], np.ones((T, B, H)), None, None)
    fastrnn.set_num_threads(2)
    two = eng.lstm_forward(*args, training=True)
    g2 = eng.lstm_backward(two[-1], np.ones((T, B, H)), None, None)
    for a, b in zip(one[:-1], two[:-1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-10, atol=1e-12)


def test_blas_threads_context_restores_thread_local_setting():
    setters = _config._blas_local_setters()
    if not setters:
        pytest.skip("BLAS without thread-local thread control")
    f = setters[0]
    prev = f(3)
    try:
        with _config.blas_threads(1):
            assert f(1) == 1          # inside: 1 thread for this thread's calls
        assert f(3) == 3              # restored on exit
    finally:
        f(prev)


def test_release_memory_frees_the_kept_buffers_and_keeps_held_arrays_valid():
    import numpy as np
    pytest.importorskip("fastrnn._engine.kernels")
    from fastrnn import functional as F
    from fastrnn._engine import kernels as E
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 16, 8)).astype(np.float32)
    w_ih = rng.uniform(-.3, .3, (256, 8)).astype(np.float32)
    w_hh = rng.uniform(-.3, .3, (256, 64)).astype(np.float32)
    y, h, c, cache = F.lstm_forward(x, None, None, w_ih, w_hh, training=True)
    snap = y.copy()
    held = fastrnn.release_memory()
    assert held > 0 and held == held // 4 * 4
    assert E.kept_bytes() == 0 and fastrnn.release_memory() == 0
    F.lstm_forward(x * 2, None, None, w_ih, w_hh, training=True)     # new buffers
    np.testing.assert_array_equal(y, snap)
    assert F.lstm_backward(cache, dy=np.ones_like(y))["x"].shape == x.shape
