"""fastrnn.functional: argument validation, conversions and the backend switch."""

import importlib.util

import numpy as np
import pytest

from fastrnn import functional as F
from fastrnn import reference as ref

HAVE_ENGINE = importlib.util.find_spec("fastrnn._engine.kernels") is not None
BACKENDS = ["numpy", pytest.param("cython", marks=pytest.mark.skipif(
    not HAVE_ENGINE, reason="compiled kernels not built"))]


def lstm_args(T=3, B=2, I=4, H=5, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.standard_normal((T, B, I)).astype(dtype),
        h0=rng.standard_normal((B, H)).astype(dtype),
        c0=rng.standard_normal((B, H)).astype(dtype),
        weight_ih=rng.uniform(-.5, .5, (4 * H, I)).astype(dtype),
        weight_hh=rng.uniform(-.5, .5, (4 * H, H)).astype(dtype),
        bias_ih=rng.uniform(-.5, .5, 4 * H).astype(dtype),
        bias_hh=rng.uniform(-.5, .5, 4 * H).astype(dtype),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_strided_fortran_and_readonly_inputs_give_the_same_result(backend):
    a = lstm_args()
    y, h, c, _ = F.lstm_forward(**a, backend=backend)
    x_f = np.asfortranarray(a["x"])
    x_s = np.repeat(a["x"], 2, axis=-1)[..., ::2]
    x_ro = a["x"].copy()
    x_ro.flags.writeable = False
    w_ro = a["weight_hh"].copy()
    w_ro.flags.writeable = False
    for x in (x_f, x_s, x_ro):
        y2, _, _, _ = F.lstm_forward(**{**a, "x": x, "weight_hh": w_ro}, backend=backend)
        np.testing.assert_array_equal(y2, y)
    assert not np.shares_memory(h, a["h0"]) and not np.shares_memory(c, a["c0"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_are_never_modified(backend):
    a = lstm_args()
    copies = {k: v.copy() for k, v in a.items()}
    _, _, _, cache = F.lstm_forward(**a, training=True, backend=backend)
    F.lstm_backward(cache, np.ones((3, 2, 5)), np.ones((2, 5)), np.ones((2, 5)))
    for k in a:
        np.testing.assert_array_equal(a[k], copies[k])


def test_float64_input_to_float32_weights_is_cast():
    a = lstm_args(dtype=np.float32)
    y, h, c, _ = F.lstm_forward(**{**a, "x": a["x"].astype(np.float64)}, backend="numpy")
    assert y.dtype == h.dtype == c.dtype == np.float32


def test_no_bias_returns_no_bias_gradients():
    a = lstm_args()
    a["bias_ih"] = a["bias_hh"] = None
    _, _, _, cache = F.lstm_forward(**a, training=True, backend="numpy")
    g = F.lstm_backward(cache, np.ones((3, 2, 5)))
    assert set(g) == {"x", "h0", "c0", "weight_ih", "weight_hh"}


@pytest.mark.parametrize("change,exc,pattern", [
    ({"x": np.zeros((3, 2))}, ValueError, r"x must have 3 dimensions \(T, B, I\)"),
    ({"x": np.zeros((3, 2, 7))}, ValueError, r"x.shape\[2\].*= 4, got 7"),
    ({"x": np.zeros((0, 2, 4))}, ValueError, r"at least one time step"),
    ({"x": np.zeros((3, 0, 4))}, ValueError, r"batch of at least one"),
    ({"x": np.zeros((3, 2, 4), dtype=np.int32)}, TypeError, r"x must be float32 or float64"),
    ({"x": np.zeros((3, 2, 4), dtype=bool)}, TypeError, r"dtype bool"),
    ({"x": [[["a"]]]}, TypeError, r"x must be float32 or float64"),
    ({"h0": np.zeros((7, 5))}, ValueError, r"h0 must have shape \(2, 5\), got \(7, 5\)"),
    ({"c0": np.zeros((2, 7))}, ValueError, r"c0 must have shape \(2, 5\), got \(2, 7\)"),
    ({"h0": np.zeros((1, 2, 5))}, ValueError, r"h0 must have 2 dimensions"),
    ({"c0": np.full((2, 5), np.inf)}, ValueError, r"c0 must be finite"),
    ({"weight_ih": np.zeros((19, 4))}, ValueError, r"weight_ih must have shape \(4\*H, I\)"),
    ({"weight_ih": np.zeros((20, 4), dtype=np.int64)}, TypeError, r"weight_ih.*int64"),
    ({"weight_hh": np.zeros((20, 7))}, ValueError, r"weight_hh must have shape \(20, 5\)"),
    ({"bias_ih": np.zeros(21)}, ValueError, r"bias_ih must have shape \(20,\), got \(21,\)"),
    ({"bias_ih": None}, ValueError, r"both be arrays or both be None"),
    ({"mask": np.ones((2, 3), dtype=bool)}, ValueError, r"mask must have shape \(3, 2\)"),
    ({"mask": np.full((3, 2), 0.5)}, TypeError, r"mask must be a bool array"),
    ({"backend": "torch"}, ValueError, r"backend must be"),
])
def test_bad_arguments_are_named(change, exc, pattern):
    with pytest.raises(exc, match=pattern):
        F.lstm_forward(**{**lstm_args(), **change})


def test_nan_propagates_when_asked():
    a = lstm_args()
    a["x"][1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite, got nan at index \(1, 0, 2\)"):
        F.lstm_forward(**a, backend="numpy")
    y, h, c, _ = F.lstm_forward(**a, backend="numpy", check_finite=False)
    assert np.isnan(y[1:, 0]).all() and np.isfinite(y[:, 1]).all()


def test_backward_checks_cache_and_gradient_shapes():
    a = lstm_args()
    with pytest.raises(TypeError, match="cache must be the cache returned by lstm_forward"):
        F.lstm_backward(None, np.zeros((3, 2, 5)))
    _, _, _, cache = F.lstm_forward(**a, training=True, backend="numpy")
    with pytest.raises(ValueError, match=r"dy must have shape \(3, 2, 5\)"):
        F.lstm_backward(cache, np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="not gru"):
        F.gru_backward(cache, None)


def test_rnn_activation_is_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="activation must be 'tanh' or 'relu', got 'gelu'"):
        F.rnn_forward(rng.standard_normal((2, 1, 3)), None, rng.standard_normal((4, 3)),
                      rng.standard_normal((4, 4)), activation="gelu")


def test_numpy_backend_is_the_reference():
    a = lstm_args()
    y, h, c, _ = F.lstm_forward(**a, backend="numpy")
    y2, h2, c2, _ = ref.lstm_forward(a["x"], a["h0"], a["c0"], a["weight_ih"], a["weight_hh"],
                                     a["bias_ih"], a["bias_hh"])
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(c, c2)
