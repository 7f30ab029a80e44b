"""Dense and Input layers; the layer registry (serialize / deserialize)."""

import json

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.layers import LAYER_REGISTRY, Dense, deserialize, serialize
from fastrnn.layers.core import InputLayer

ACTS = ["linear", "relu", "tanh", "sigmoid", "softmax"]


def numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 5)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients_finite_differences(activation, shape, use_bias):
    rng = np.random.default_rng(0)
    layer = Dense(3, activation=activation, use_bias=use_bias, dtype="float64", seed=1)
    x = rng.standard_normal(shape)
    layer.forward(x, training=True)
    r = rng.standard_normal(shape[:-1] + (3,))

    def loss():
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x, training=True)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    for name, p in layer.params.items():
        np.testing.assert_allclose(layer.grads[name], numeric_grad(loss, p), rtol=1e-6, atol=1e-8,
                                   err_msg=name)
    assert set(layer.grads) == ({"weight", "bias"} if use_bias else {"weight"})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTS)
def test_dense_matches_torch_linear(dtype, activation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    layer = Dense(6, activation=activation, dtype=dtype, seed=3)
    x = rng.standard_normal((2, 5, 4)).astype(dtype)
    y = layer.forward(x, training=True)
    lin = torch.nn.Linear(4, 6).to(getattr(torch, dtype))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer.params["weight"]))
        lin.bias.copy_(torch.from_numpy(layer.params["bias"]))
    tx = torch.from_numpy(x).requires_grad_()
    z = lin(tx)
    act = {"linear": lambda t: t, "relu": torch.relu, "tanh": torch.tanh,
           "sigmoid": torch.sigmoid, "softmax": lambda t: torch.softmax(t, -1)}[activation]
    ty = act(z)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    assert y.dtype == np.dtype(dtype)
    r = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(r))
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.grads["weight"], lin.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.grads["bias"], lin.bias.grad.numpy(), **tol)


def test_dense_init_like_torch():
    # init="torch" keeps torch.nn.Linear's scheme; the default is Keras's (test_initializers)
    layer = Dense(200, input_size=50, seed=0, init="torch")
    w, b = layer.params["weight"], layer.params["bias"]
    assert w.shape == (200, 50) and b.shape == (200,) and w.dtype == np.float32
    k = 1 / np.sqrt(50)
    assert np.abs(w).max() <= k and np.abs(b).max() <= k
    # uniform on [-k, k]: std k/sqrt(3)
    assert abs(w.std() - k / np.sqrt(3)) < 0.05 * k
    # seeded init is reproducible, different seeds differ
    np.testing.assert_array_equal(w, Dense(200, input_size=50, seed=0, init="torch").params["weight"])
    assert not np.array_equal(w, Dense(200, input_size=50, seed=1, init="torch").params["weight"])


def test_dense_fused_logits_backward():
    rng = np.random.default_rng(0)
    layer = Dense(4, activation="softmax", dtype="float64", seed=0)
    x = rng.standard_normal((3, 5))
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.last_logits, x @ layer.params["weight"].T + layer.params["bias"])
    dz = rng.standard_normal((3, 4))
    dx = layer.backward(dz, from_logits=True)
    np.testing.assert_allclose(dx, dz @ layer.params["weight"])
    np.testing.assert_allclose(layer.grads["weight"], dz.T @ x)


def test_dense_softmax_saturates_cleanly():
    layer = Dense(3, activation="softmax", input_size=2, dtype="float32", seed=0)
    layer.params["weight"] = np.array([[1e4, 0], [0, 0], [-1e4, 0]], dtype=np.float32)
    y = layer.forward(np.array([[100.0, 0.0]], dtype=np.float32))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-6)


def test_dense_shapes_and_config():
    layer = Dense(7, activation="tanh", use_bias=False, seed=5)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 7)
    y = layer(np.ones((2, 3, 4), dtype=np.float32))
    assert y.shape == (2, 3, 7)
    cfg = layer.get_config()
    json.dumps(cfg)
    clone = deserialize(serialize(layer))
    assert type(clone) is Dense and clone.get_config() == cfg
    np.testing.assert_array_equal(clone.params["weight"], layer.params["weight"])  # same seed
    assert layer.count_params() == 28
    # masks pass through
    m = np.ones((2, 3), bool)
    assert layer.compute_mask(None, m) is m


def test_dense_int_input_is_cast():
    layer = Dense(2, input_size=3, seed=0)
    y = layer.forward(np.array([[1, 2, 3]]))
    assert y.dtype == np.float32


@pytest.mark.parametrize("kw,exc,word", [
    (dict(units=0), ValueError, "units"),
    (dict(units=2.5), ValueError, "units"),
    (dict(units=True), ValueError, "units"),
    (dict(units=3, activation="gelu"), ValueError, "activation"),
    (dict(units=3, dtype="float16"), ValueError, "dtype"),
    (dict(units=3, seed=-1), ValueError, "seed"),
    (dict(units=3, input_size=0), ValueError, "input_size"),
])
def test_dense_bad_arguments(kw, exc, word):
    with pytest.raises(exc, match=word):
        Dense(**kw)


def test_dense_bad_inputs():
    layer = Dense(3, input_size=4)
    with pytest.raises(ValueError, match=r"x.shape\[-1\].*4.*5"):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        layer.forward(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.zeros((2, 4), dtype=bool))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.array([["a"] * 4]))
    with pytest.raises(RuntimeError, match="training=True"):
        Dense(3, input_size=4).backward(np.zeros((2, 3)))
    layer.forward(np.zeros((2, 4), np.float32), training=True)
    with pytest.raises(ValueError, match="d_out"):
        layer.backward(np.zeros((2, 4)))


def test_input_layer():
    inp = fr.layers.Input((5, 3))
    assert isinstance(inp, InputLayer) and inp.shape == (5, 3)
    assert fr.layers.Input((None, 3)).shape == (None, 3)
    # the top-level fr.Input is the functional API's symbolic tensor (Keras: batch axis first)
    t = fr.Input((5, 3))
    assert isinstance(t.node.layer, InputLayer) and t.shape == (None, 5, 3)
    assert fr.Input((None, 3)).shape == (None, None, 3)
    with pytest.raises(ValueError, match="shape"):
        fr.Input((0, 3))
    with pytest.raises(ValueError, match="shape"):
        fr.Input(())


def test_registry_is_explicit_and_deserialize_rejects_unknown():
    assert {"SimpleRNN", "LSTM", "GRU", "Dense", "Embedding", "Dropout",
            "Bidirectional"} <= set(LAYER_REGISTRY)
    with pytest.raises(ValueError, match="unknown layer class_name"):
        deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(ValueError, match="unknown layer class_name"):
        deserialize({"class_name": "Layer", "config": {}})
    with pytest.raises(ValueError, match="dict"):
        deserialize(["Dense"])
    with pytest.raises(ValueError, match="config"):
        deserialize({"class_name": "Dense", "config": [1]})
    with pytest.raises(TypeError):
        deserialize({"class_name": "Dense", "config": {"units": 3, "evil": 1}})
    with pytest.raises(TypeError, match="Layer"):
        serialize("Dense")


@pytest.mark.parametrize("layer", [
    fr.Dense(3, activation="relu", seed=1),
    fr.Embedding(10, 4, mask_zero=True, seed=2),
    fr.Dropout(0.3, seed=4),
    fr.Masking(mask_value=-1.0),
    fr.LSTM(5, return_sequences=True, seed=3),
    fr.Bidirectional(fr.GRU(4, seed=7), merge_mode="sum"),
])
def test_serialize_roundtrip_every_layer(layer):
    d = serialize(layer)
    d2 = json.loads(json.dumps(d))
    clone = deserialize(d2)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_masking_forward_backward_and_mask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3))
    x[0, 2:] = -1.0
    x[1, 1, 0] = -1.0                      # one feature equal to mask_value: not masked
    layer = fr.Masking(mask_value=-1.0, dtype="float64")
    y = layer.forward(x, training=True)
    keep = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(layer.compute_mask(x), keep)
    np.testing.assert_array_equal(y[keep], x[keep])
    assert (y[~keep] == 0).all()
    r = rng.standard_normal(x.shape)
    dx = layer.backward(r)
    # the mask is piecewise constant (any perturbation of a padded step unmasks it), so the
    # gradient treats it as fixed: identity on kept steps, zero on padded ones
    np.testing.assert_array_equal(dx, r * keep[..., None])
    incoming = np.array([[1, 0, 1, 1], [1, 1, 1, 0]], bool)
    np.testing.assert_array_equal(layer.compute_mask(x, incoming), keep & incoming)
    with pytest.raises(TypeError, match="mask_value"):
        fr.Masking(mask_value="pad")
