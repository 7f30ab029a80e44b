"""fastrnn.functional: argument validation, conversions and the backend switch."""

import tempfile
import importlib.util

import numpy as np
import pytest

# subprocesses start outside the source checkout: `python -c` puts the working directory
# first on sys.path, and the checkout's uncompiled fastrnn/ would shadow the installed one
_OUTSIDE_SOURCE = tempfile.gettempdir()

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


# ------------------------------------------------------------------------------------------
# issue 9, defect 3: sizes beyond the engine's 32-bit ints are refused before any kernel runs

def test_engine_size_limit_decision_on_sizes_alone():
    lim = F.MAX_ENGINE_DIM
    assert lim == 2 ** 31 - 1
    F.check_engine_sizes(T=1, B=lim, I=1, H=1, gates=4)            # exactly at the limit
    F.check_engine_sizes(T=2 ** 15, B=2 ** 16 - 1, I=7, H=3, gates=3)
    for kw, word in ((dict(T=2 ** 16, B=2 ** 15, I=1, H=1, gates=1), "T*B"),
                     (dict(T=3, B=(2 ** 31) // 3 + 1, I=1, H=1, gates=1), "T*B"),
                     (dict(T=1, B=1, I=1, H=2 ** 29, gates=4), "G*H"),
                     (dict(T=1, B=1, I=2 ** 31, H=1, gates=1), "input features")):
        with pytest.raises(ValueError, match=r"too large.*2\*\*31 - 1") as info:
            F.check_engine_sizes(**kw)
        assert word in str(info.value)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_huge_zero_stride_input_is_refused_without_allocating(cell):
    """T*B = 2**31 through the public entry points: a zero-stride view costs nothing, and the
    error must come before anything tries to make it contiguous (8 GiB) or run a kernel."""
    import tracemalloc
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    H, I = 2, 1
    x = np.broadcast_to(np.zeros((), np.float32), (2 ** 16, 2 ** 15, I))
    w = dict(weight_ih=np.ones((G * H, I), np.float32), weight_hh=np.ones((G * H, H), np.float32))
    fn = getattr(F, f"{cell}_forward")
    args = (x, None, None) if cell == "lstm" else (x, None)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="T\\*B"):
            fn(*args, **w, check_finite=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_huge_zero_stride_input_through_a_layer_is_refused():
    import fastrnn as fr
    layer = fr.LSTM(2, input_size=1, seed=0)
    x = np.broadcast_to(np.zeros((), np.float32), (2 ** 15, 2 ** 16, 1))   # batch-first
    with pytest.raises(ValueError, match="T\\*B"):
        layer.forward(x)


# ------------------------------------------------------------------------------------------
# issue 9, defect 6: a tampered ForwardCache raises, never crashes (run in a subprocess)

TAMPER_SCRIPT = r"""
import numpy as np
from fastrnn import functional as F
rng = np.random.default_rng(7)
T, B, I, H = 4, 3, 5, 6
results = []
for cell, G in (("rnn", 1), ("lstm", 4), ("gru", 3)):
    def fresh(rm=False):
        a = [rng.standard_normal((T, B, I)), None]
        if cell == "lstm":
            a.append(None)
        out = getattr(F, cell + "_forward")(*a, rng.standard_normal((G * H, I)),
                                            rng.standard_normal((G * H, H)), training=True,
                                            backend="cython",
                                            recurrent_mask=np.ones((B, H)) if rm else None)
        return out[-1]
    back = getattr(F, cell + "_backward")
    tampers = []
    def set_shape(c):
        c.shape = (T, 50 * B, H)
    tampers.append(("set shape", set_shape, lambda c: (np.ones((T, 50 * B, H)),)))
    def set_inner(c):
        c.inner = {}
    tampers.append(("set inner", set_inner, lambda c: ()))
    def small_x(c):
        c.inner["x"] = np.zeros((1, 1, I))
    tampers.append(("small x", small_x, lambda c: (np.ones((T, B, H)),)))
    def big_hs(c):
        c.inner["hs"].shape = (T + 1, B * H, 1)
    tampers.append(("reshaped hs", big_hs, lambda c: ()))
    def big_x(c):
        c.inner["x"] = np.zeros((T, 40 * B, I))
    tampers.append(("big x", big_x, lambda c: (np.ones((T, 40 * B, H)),)))
    def wide_w(c):
        c.inner["w_hh"] = np.zeros((G * 40 * H, 40 * H))
    tampers.append(("wide w_hh", wide_w, lambda c: (np.ones((T, B, 40 * H)),)))
    def f32(c):
        c.inner["x"] = c.inner["x"].astype(np.float32)
    tampers.append(("float32 x", f32, lambda c: ()))
    def mask(c):
        c.inner["mask"] = np.ones((T * 40, B), np.uint8)
    tampers.append(("mask", mask, lambda c: ()))
    # recurrent dropout: the (B, H) mask
    def small_rmask(c):
        c.inner["rmask"] = np.ones((1, 1))
    tampers.append(("small rmask", small_rmask, lambda c: (), True))
    def big_rmask(c):
        c.inner["rmask"] = np.ones((40 * B, 40 * H))
    tampers.append(("big rmask", big_rmask, lambda c: ()))
    def f32_rmask(c):
        c.inner["rmask"] = np.ones((B, H), np.float32)
    tampers.append(("float32 rmask", f32_rmask, lambda c: (), True))
    def strided_rmask(c):
        c.inner["rmask"] = np.ones((B, 2 * H))[:, ::2]
    tampers.append(("strided rmask", strided_rmask, lambda c: (), True))
    for name, tamper, dargs, *rm in tampers:
        c = fresh(bool(rm))
        try:
            tamper(c)
        except AttributeError:
            results.append((cell, name, "AttributeError"))
            continue
        try:
            back(c, *dargs(c))
        except ValueError as e:
            results.append((cell, name, "ValueError"))
        else:
            results.append((cell, name, "no error"))
print(results)
"""


@pytest.mark.skipif(not HAVE_ENGINE, reason="compiled kernels not built")
def test_tampered_forward_cache_never_reaches_the_kernel():
    import ast
    import os
    import subprocess
    import sys
    import fastrnn
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    proc = subprocess.run([sys.executable, "-c", TAMPER_SCRIPT], capture_output=True,
                          cwd=_OUTSIDE_SOURCE, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, f"crashed (status {proc.returncode}): {proc.stderr[-2000:]}"
    results = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 36
    for cell, name, outcome in results:
        assert outcome in ("ValueError", "AttributeError"), (cell, name, outcome)
    assert sum(o == "AttributeError" for _, _, o in results) == 6     # the two setattr cases


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_cache_is_read_only(backend):
    a = lstm_args()
    *_, cache = F.lstm_forward(**a, training=True, backend=backend)
    assert cache.shape == (3, 2, 5)
    for attr in ("shape", "inner", "cell", "backend", "dtype", "has_bias"):
        with pytest.raises(AttributeError):
            setattr(cache, attr, None)


# ------------------------------------------------------------------------------------------
# issue 9, defect 10: the training cache never aliases the caller's arrays (any B, any T)

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("T,B", [(1, 3), (4, 1), (1, 1), (4, 3)])
def test_mutating_inputs_between_forward_and_backward_changes_nothing(backend, cell, T, B):
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    I, H = 3, 4
    rng = np.random.default_rng(100 + 10 * T + B)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w = (rng.uniform(-.5, .5, (G * H, I)), rng.uniform(-.5, .5, (G * H, H)),
         rng.uniform(-.5, .5, G * H), rng.uniform(-.5, .5, G * H))
    dy = rng.standard_normal((T, B, H))
    fwd, bwd = getattr(F, f"{cell}_forward"), getattr(F, f"{cell}_backward")
    states = (h0, c0) if cell == "lstm" else (h0,)

    def grads(mutate):
        xs, ss = x.copy(), [s.copy() for s in states]
        cache = fwd(xs, *ss, *w, training=True, backend=backend)[-1]
        if mutate:
            xs += 10.0
            for s in ss:
                s -= 3.0
        return bwd(cache, dy)

    clean, mutated = grads(False), grads(True)
    for k in clean:
        np.testing.assert_array_equal(mutated[k], clean[k], err_msg=k)
