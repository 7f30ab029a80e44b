"""The Keras-style layers (TimeDistributed, Activation, RepeatVector, Flatten,
GlobalAveragePooling1D, GlobalMaxPooling1D, SpatialDropout1D, LayerNormalization, Conv1D,
MaxPooling1D): backward vs central finite differences in float64, forward vs a hand NumPy
computation, and vs keras.layers when Keras is installed."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.layers.activation import ACTIVATION_FUNCTIONS


def _import_keras():
    """keras, on the torch backend when no backend was chosen (Keras's default, TensorFlow,
    is rarely installed next to fastrnn); skips the test when Keras is missing."""
    import importlib.util
    import os
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("torch") is not None:
        os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras")


def _fd_check(layer, x, mask=None, eps=1e-6, rtol=1e-6, atol=1e-8, seed=0):
    """Compare backward (input and parameter gradients) with central differences of
    L = sum(R * forward(x))."""
    kw = {} if mask is None else {"mask": mask}
    y = layer.forward(x, training=True, **kw)
    R = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(R)
    grads = {k: np.array(v) for k, v in layer.grads.items()}

    def loss():
        return float((layer.forward(x, training=False, **kw) * R).sum())

    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = loss()
        x[idx] = old - eps
        down = loss()
        x[idx] = old
        num[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=rtol, atol=atol, err_msg="input gradient")
    for name, p in layer.params.items():
        gnum = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            down = loss()
            p[idx] = old
            gnum[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], gnum, rtol=rtol, atol=atol, err_msg=name)
    return y


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- Activation -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACTIVATION_FUNCTIONS))
def test_activation_gradients(name):
    x = _x(3, 4, 5)
    if name in ("relu", "relu6", "leaky_relu", "hard_sigmoid", "elu", "selu"):
        x = np.where(np.abs(x) < 0.05, 0.3, x)      # keep clear of the kinks
        x = np.where(np.abs(np.abs(x) - 3) < 0.05, 2.5, x)
        x = x * (4 if name in ("relu6", "hard_sigmoid") else 1)
        x = np.where(np.abs(np.abs(x) - 3) < 0.05, 2.5, x)
        x = np.where(np.abs(x - 6) < 0.05, 5.5, x)
    _fd_check(fr.Activation(name, dtype="float64"), x)


def test_activation_forward_by_hand():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 4.0]])
    f = lambda n: fr.Activation(n, dtype="float64")(x)  # noqa: E731
    np.testing.assert_allclose(f("relu"), [[0, 0, 0, 0.5, 4]])
    np.testing.assert_allclose(f("hard_sigmoid"), [[1 / 6, 5 / 12, 0.5, 7 / 12, 1]])
    np.testing.assert_allclose(f("softplus"), np.log1p(np.exp(x)))
    np.testing.assert_allclose(f("elu"), np.where(x > 0, x, np.exp(x) - 1))
    np.testing.assert_allclose(f("swish"), x / (1 + np.exp(-x)))
    np.testing.assert_allclose(f("softmax").sum(), 1.0)
    np.testing.assert_allclose(f("log_softmax"), np.log(f("softmax")))
    np.testing.assert_allclose(f(None), x)
    with pytest.raises(ValueError, match="activation must be None or one of"):
        fr.Activation("relu7")


# ---- RepeatVector / Flatten -----------------------------------------------------------------

def test_repeat_vector_and_flatten():
    x = _x(3, 4)
    rv = fr.RepeatVector(5, dtype="float64")
    y = _fd_check(rv, x)
    assert y.shape == (3, 5, 4) and all(np.array_equal(y[:, t], x) for t in range(5))
    assert rv.compute_output_shape((None, 4)) == (None, 5, 4)
    fl = fr.Flatten(dtype="float64")
    x3 = _x(2, 3, 4)
    y = _fd_check(fl, x3)
    np.testing.assert_array_equal(y, x3.reshape(2, 12))
    assert fl.compute_output_shape((None, 3, 4)) == (None, 12)
    with pytest.raises(ValueError, match="RepeatVector: x must have 2 dimensions"):
        rv(x3)


# ---- pooling --------------------------------------------------------------------------------

def test_global_average_pooling_with_and_without_mask():
    x = _x(3, 6, 4)
    gap = fr.GlobalAveragePooling1D(dtype="float64")
    np.testing.assert_allclose(_fd_check(gap, x), x.mean(axis=1))
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 0, 0]], bool)
    y = _fd_check(gap, x, mask=mask)
    for b in range(3):
        np.testing.assert_allclose(y[b], x[b, mask[b]].mean(axis=0))
    assert fr.GlobalAveragePooling1D(keepdims=True)(x.astype(np.float32)).shape == (3, 1, 4)


def test_global_max_pooling():
    x = _x(3, 6, 4)
    gmp = fr.GlobalMaxPooling1D(dtype="float64")
    np.testing.assert_array_equal(_fd_check(gmp, x), x.max(axis=1))


@pytest.mark.parametrize("pool,strides,padding,T", [(2, None, "valid", 7), (3, 1, "valid", 7),
                                                    (2, None, "same", 7), (3, 2, "same", 8),
                                                    (4, 3, "same", 5)])
def test_max_pooling_1d(pool, strides, padding, T):
    x = _x(2, T, 3)
    mp = fr.MaxPooling1D(pool, strides, padding, dtype="float64")
    y = _fd_check(mp, x)
    s = strides or pool
    if padding == "valid":
        n = (T - pool) // s + 1
        ref = np.stack([x[:, i * s:i * s + pool].max(axis=1) for i in range(n)], axis=1)
    else:
        n = -(-T // s)
        total = max((n - 1) * s + pool - T, 0)
        xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)),
                    constant_values=-np.inf)
        ref = np.stack([xp[:, i * s:i * s + pool].max(axis=1) for i in range(n)], axis=1)
    np.testing.assert_array_equal(y, ref)
    assert mp.compute_output_shape((None, T, 3)) == (None, n, 3)


# ---- SpatialDropout1D -----------------------------------------------------------------------

def test_spatial_dropout_drops_whole_channels():
    x = _x(4, 9, 16).astype(np.float32) + 5
    d = fr.SpatialDropout1D(0.5, seed=3)
    y = d.forward(x, training=True)
    ratio = y / x
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(9, axis=1))   # same at every step
    assert set(np.unique(np.round(ratio, 5))) == {0.0, 2.0}
    g = d.backward(np.ones_like(x))
    np.testing.assert_allclose(g, ratio, rtol=1e-6)
    np.testing.assert_array_equal(d.forward(x), x)                      # inference: identity


# ---- LayerNormalization ---------------------------------------------------------------------

def test_layer_normalization():
    x = _x(3, 4, 6) * 3 + 1
    ln = fr.LayerNormalization(dtype="float64", gamma_initializer="random_normal",
                               beta_initializer="random_normal", seed=0)
    y = _fd_check(ln, x, rtol=1e-5)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-3) * ln.params["weight"] + ln.params["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    plain = fr.LayerNormalization(center=False, scale=False, dtype="float64")
    _fd_check(plain, x, rtol=1e-5)
    assert plain.count_params() == 0


def test_layer_normalization_matches_torch():
    torch = pytest.importorskip("torch")
    x = _x(5, 7, 6)
    ln = fr.LayerNormalization(epsilon=1e-5, dtype="float64", gamma_initializer="random_normal",
                               beta_initializer="random_normal", seed=2)
    ln.build(x.shape)
    t = torch.nn.LayerNorm(6, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(ln.params["weight"]))
        t.bias.copy_(torch.from_numpy(ln.params["bias"]))
    np.testing.assert_allclose(ln(x), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


# ---- Conv1D ---------------------------------------------------------------------------------

def _conv_by_hand(x, w, b, stride, padding, dilation):
    B, T, C = x.shape
    F, _, k = w.shape
    span = dilation * (k - 1) + 1
    if padding == "valid":
        left = right = 0
        n = (T - span) // stride + 1
    else:
        n = -(-T // stride)
        total = max((n - 1) * stride + span - T, 0)
        left, right = (span - 1, max(total - span + 1, 0)) if padding == "causal" else (
            total // 2, total - total // 2)
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    out = np.zeros((B, n, F))
    for i in range(n):
        for j in range(k):
            out[:, i] += xp[:, i * stride + j * dilation] @ w[:, :, j].T
    return out + b


@pytest.mark.parametrize("k,stride,padding,dilation", [(3, 1, "valid", 1), (3, 2, "same", 1),
                                                       (2, 1, "causal", 2), (4, 3, "same", 1),
                                                       (1, 1, "valid", 1), (3, 1, "same", 2)])
def test_conv1d(k, stride, padding, dilation):
    x = _x(2, 9, 3)
    conv = fr.Conv1D(4, k, strides=stride, padding=padding, dilation_rate=dilation,
                     activation="tanh", dtype="float64", seed=1, bias_initializer="uniform")
    y = _fd_check(conv, x, rtol=1e-5)
    ref = np.tanh(_conv_by_hand(x, conv.params["weight"], conv.params["bias"], stride, padding,
                                dilation))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-14)
    assert conv.compute_output_shape((None, 9, 3)) == (None,) + y.shape[1:]
    if padding == "causal":          # output t depends on inputs <= t only
        x2 = x.copy()
        x2[:, 5:] += 1
        np.testing.assert_array_equal(conv(x2)[:, :5], y[:, :5])


def test_conv1d_init_and_errors():
    conv = fr.Conv1D(16, 5, input_size=8, seed=0, dtype="float64")
    w = conv.params["weight"]
    assert w.shape == (16, 8, 5)
    lim = np.sqrt(6 / (5 * 8 + 5 * 16))        # Keras's fans include the kernel size
    assert np.abs(w).max() <= lim and np.abs(w).max() > 0.95 * lim
    assert (conv.params["bias"] == 0).all()
    with pytest.raises(ValueError, match="padding must be one of"):
        fr.Conv1D(4, 3, padding="full")
    with pytest.raises(ValueError, match="too few for kernel_size=5"):
        fr.Conv1D(4, 5)(np.zeros((1, 3, 2), np.float32))


def test_conv1d_matches_torch():
    torch = pytest.importorskip("torch")
    x = _x(3, 11, 4)
    conv = fr.Conv1D(5, 3, strides=2, dilation_rate=2, dtype="float64", seed=3,
                     bias_initializer="uniform")
    y = conv(x)
    t = torch.nn.Conv1d(4, 5, 3, stride=2, dilation=2, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(conv.params["weight"]))
        t.bias.copy_(torch.from_numpy(conv.params["bias"]))
    ref = t(torch.from_numpy(x).transpose(1, 2)).transpose(1, 2).detach().numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-14)


# ---- TimeDistributed ------------------------------------------------------------------------

def test_time_distributed_dense():
    x = _x(3, 5, 4)
    td = fr.TimeDistributed(fr.Dense(6, activation="tanh", dtype="float64", seed=0,
                                     bias_initializer="uniform"))
    y = _fd_check(td, x)
    d = td.layer
    np.testing.assert_allclose(y, np.tanh(x @ d.params["weight"].T + d.params["bias"]))
    assert td.compute_output_shape((None, 5, 4)) == (None, 5, 6)
    assert td.count_params() == 30 and list(td.params) == ["weight", "bias"]
    mask = np.ones((3, 5), bool)
    assert td.compute_mask(x, mask) is mask


def test_time_distributed_in_a_model_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (32, 7))
    y = rng.integers(0, 3, (32, 7))
    m = fr.Sequential([fr.Embedding(20, 8, mask_zero=True), fr.LSTM(8, return_sequences=True),
                       fr.TimeDistributed(fr.Dense(3, activation="softmax"))], seed=0)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    m.save(tmp_path / "td.safetensors")
    m2 = fr.load_model(tmp_path / "td.safetensors")
    np.testing.assert_allclose(m2.predict(x), m.predict(x), rtol=1e-6)


def test_all_new_layers_save_and_load(tmp_path):
    x = np.random.default_rng(0).integers(1, 30, (8, 12))
    m = fr.Sequential([fr.Embedding(30, 6), fr.SpatialDropout1D(0.1),
                       fr.Conv1D(5, 3, padding="same", activation="relu"), fr.MaxPooling1D(2),
                       fr.LayerNormalization(), fr.Activation("swish"),
                       fr.GRU(4, return_sequences=True), fr.GlobalMaxPooling1D(),
                       fr.RepeatVector(3), fr.Flatten(), fr.Dense(2)], seed=1)
    m.compile("adam", "mse")
    m.fit(x, np.zeros((8, 2)), epochs=1, verbose=0)
    m.save(tmp_path / "m.safetensors")
    m2 = fr.load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(m2.predict(x), m.predict(x), rtol=1e-6)


def test_conv_strides_larger_than_its_weights_load(tmp_path):
    m = fr.Sequential([fr.Conv1D(2, 2, strides=7, dilation_rate=5, input_size=1),
                       fr.MaxPooling1D(1, strides=9, padding="same"), fr.Flatten()])
    x = _x(2, 40, 1).astype(np.float32)
    m.save(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(fr.load_model(tmp_path / "c.safetensors").predict(x),
                                  m.predict(x))


# ---- against Keras (optional) ---------------------------------------------------------------

def _keras():
    keras = _import_keras()
    return keras


def _np(t):
    """A Keras tensor of any backend as a NumPy array."""
    return np.asarray(t.detach().cpu() if hasattr(t, "detach") else t)


def test_against_keras_layers():
    keras = _keras()
    x = _x(2, 9, 4).astype(np.float32)
    L = keras.layers
    np.testing.assert_allclose(fr.GlobalAveragePooling1D()(x),
                               _np(L.GlobalAveragePooling1D()(x)), rtol=1e-6)
    np.testing.assert_allclose(fr.GlobalMaxPooling1D()(x),
                               _np(L.GlobalMaxPooling1D()(x)), rtol=1e-6)
    for pool, s, pad in [(2, None, "valid"), (3, 2, "same"), (4, 3, "same")]:
        np.testing.assert_allclose(fr.MaxPooling1D(pool, s, pad)(x),
                                   _np(L.MaxPooling1D(pool, s, pad)(x)), rtol=1e-6)
    np.testing.assert_allclose(fr.RepeatVector(3)(x[:, 0]),
                               _np(L.RepeatVector(3)(x[:, 0])), rtol=1e-6)
    np.testing.assert_allclose(fr.LayerNormalization()(x),
                               _np(L.LayerNormalization()(x)), rtol=1e-5, atol=1e-6)
    for name in ("relu", "gelu", "selu", "elu", "softplus", "softsign", "swish", "hard_sigmoid",
                 "leaky_relu", "softmax", "log_softmax"):
        np.testing.assert_allclose(fr.Activation(name)(x), _np(L.Activation(name)(x)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    for k, s, pad, d in [(3, 1, "valid", 1), (3, 2, "same", 1), (2, 1, "causal", 2),
                         (4, 3, "same", 1)]:
        kc = L.Conv1D(5, k, strides=s, padding=pad, dilation_rate=d,
                      bias_initializer="random_uniform")
        ref = _np(kc(x))
        kern, bias = (_np(w) for w in kc.get_weights())
        conv = fr.Conv1D(5, k, strides=s, padding=pad, dilation_rate=d, input_size=4)
        conv.params["weight"] = kern.transpose(2, 1, 0)
        conv.params["bias"] = bias
        np.testing.assert_allclose(conv(x), ref, rtol=1e-5, atol=1e-6, err_msg=f"{k}{s}{pad}{d}")
