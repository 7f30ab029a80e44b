"""fastrnn.initializers: each initializer's statistics, Keras's defaults on the layers, and
PyTorch's scheme one argument away."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import initializers as I

RNG = lambda: np.random.default_rng(1234)   # noqa: E731


def _import_keras():
    """keras, on the torch backend when no backend was chosen (Keras's default, TensorFlow,
    is rarely installed next to fastrnn); skips the test when Keras is missing."""
    import importlib.util
    import os
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("torch") is not None:
        os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras")


def _draw(init, shape):
    return init(shape, dtype="float64", rng=RNG())


@pytest.mark.parametrize("name,limit_fn", [
    ("glorot_uniform", lambda fi, fo: np.sqrt(6 / (fi + fo))),
    ("he_uniform", lambda fi, fo: np.sqrt(6 / fi)),
    ("lecun_uniform", lambda fi, fo: np.sqrt(3 / fi)),
])
def test_uniform_variance_scaling(name, limit_fn):
    fi, fo = 300, 500
    w = _draw(I.get(name), (fi, fo))
    lim = limit_fn(fi, fo)
    assert np.abs(w).max() <= lim
    assert np.abs(w).max() > 0.99 * lim              # it really spans the range
    assert abs(w.mean()) < 0.01 * lim
    np.testing.assert_allclose(w.std(), lim / np.sqrt(3), rtol=0.01)


@pytest.mark.parametrize("name,var_fn", [
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo)),
    ("he_normal", lambda fi, fo: 2 / fi),
    ("lecun_normal", lambda fi, fo: 1 / fi),
])
def test_truncated_normal_variance_scaling(name, var_fn):
    fi, fo = 300, 500
    w = _draw(I.get(name), (fi, fo))
    std = np.sqrt(var_fn(fi, fo))
    # Keras truncates at two standard deviations of the untruncated normal it draws from
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12
    np.testing.assert_allclose(w.std(), std, rtol=0.01)
    assert abs(w.mean()) < 0.01 * std


def test_variance_scaling_modes_and_conv_fans():
    # conv kernel (k, in, out): fans multiply by the receptive field
    assert I.compute_fans((3, 4, 5)) == (12, 15)
    assert I.compute_fans((7,)) == (7, 7)
    w = _draw(I.VarianceScaling(2.0, "fan_out", "untruncated_normal"), (50, 400))
    np.testing.assert_allclose(w.std(), np.sqrt(2 / 400), rtol=0.02)
    w = _draw(I.VarianceScaling(1.0, "fan_avg", "uniform"), (3, 40, 60))
    lim = np.sqrt(3 / ((120 + 180) / 2))
    assert np.abs(w).max() <= lim and np.abs(w).max() > 0.99 * lim
    with pytest.raises(ValueError, match="mode"):
        I.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="scale"):
        I.VarianceScaling(scale=0)


def test_random_uniform_normal_truncated():
    w = _draw(I.get("uniform"), (400, 300))
    assert w.min() >= -0.05 and w.max() <= 0.05
    np.testing.assert_allclose(w.std(), 0.05 / np.sqrt(3), rtol=0.01)
    w = _draw(I.get("random_normal"), (400, 300))
    np.testing.assert_allclose(w.std(), 0.05, rtol=0.01)
    w = _draw(I.TruncatedNormal(mean=1.0, stddev=0.1), (400, 300))
    assert np.abs(w - 1).max() <= 0.2
    np.testing.assert_allclose(w.std(), 0.1 * 0.87962566, rtol=0.01)
    np.testing.assert_allclose(w.mean(), 1.0, atol=1e-3)
    w = _draw(I.RandomUniform(2, 3), (1000,))
    assert w.min() >= 2 and w.max() <= 3


def test_constant_family_and_identity():
    assert (_draw(I.get("zeros"), (3, 4)) == 0).all()
    assert (_draw(I.get("ones"), (5,)) == 1).all()
    assert (_draw(I.Constant(0.25), (2, 2)) == 0.25).all()
    np.testing.assert_array_equal(_draw(I.Identity(gain=2.0), (3, 4)), 2 * np.eye(3, 4))


@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (24, 24), (2, 3, 8)])
def test_orthogonal(shape):
    w = _draw(I.Orthogonal(gain=1.5), shape)
    assert w.shape == shape
    m = w.reshape(-1, shape[-1])
    if m.shape[0] <= m.shape[1]:
        np.testing.assert_allclose(m @ m.T, 1.5 ** 2 * np.eye(m.shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(m.T @ m, 1.5 ** 2 * np.eye(m.shape[1]), atol=1e-12)
    # uniformly distributed, not a fixed matrix: two draws differ
    assert not np.allclose(w, I.Orthogonal(1.5)(shape, "float64", np.random.default_rng(9)))


def test_torch_uniform():
    w = _draw(I.TorchUniform(25), (100, 100))
    assert np.abs(w).max() <= 0.2 and np.abs(w).max() > 0.19
    w = _draw(I.TorchUniform(), (64, 10))            # fan-in of Keras's (in, out) shape
    assert np.abs(w).max() <= 1 / 8


def test_get_names_configs_callables_and_errors():
    assert isinstance(I.get("GlorotUniform"), I.GlorotUniform)
    assert isinstance(I.get("glorot_uniform"), I.GlorotUniform)
    assert isinstance(I.get("Orthogonal"), I.Orthogonal)
    g = I.get({"class_name": "RandomNormal", "config": {"stddev": 0.3}})
    assert g.stddev == 0.3
    assert I.get(I.serialize(g)).get_config() == g.get_config()
    f = lambda shape, dtype=None: np.full(shape, 3.0)  # noqa: E731
    assert I.get(f) is f
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        I.get("glorot")
    with pytest.raises(TypeError, match="initializer must be"):
        I.get(3)
    with pytest.raises(ValueError, match="only meaningful on a layer"):
        I.get("torch")


# ---- the layers' defaults ----------------------------------------------------------------

def test_lstm_keras_defaults():
    H, D = 40, 30
    lstm = fr.LSTM(H, input_size=D, seed=3, dtype="float64")
    p = lstm.params
    lim = np.sqrt(6 / (D + 4 * H))
    assert np.abs(p["weight_ih"]).max() <= lim and np.abs(p["weight_ih"]).max() > 0.98 * lim
    # Keras's recurrent kernel (H, 4H) has orthonormal rows over the full width; ours is its
    # transpose, so its columns are orthonormal
    np.testing.assert_allclose(p["weight_hh"].T @ p["weight_hh"], np.eye(H), atol=1e-10)
    expected = np.zeros(4 * H)
    expected[H:2 * H] = 1                              # unit_forget_bias
    np.testing.assert_array_equal(p["bias_ih"] + p["bias_hh"], expected)
    np.testing.assert_array_equal(p["bias_hh"], 0)
    nofb = fr.LSTM(H, input_size=D, seed=3, unit_forget_bias=False)
    np.testing.assert_array_equal(nofb.params["bias_ih"], 0)


@pytest.mark.parametrize("cls,G", [(fr.SimpleRNN, 1), (fr.GRU, 3)])
def test_rnn_gru_keras_defaults(cls, G):
    H, D = 20, 13
    layer = cls(H, input_size=D, seed=1, dtype="float64")
    p = layer.params
    assert np.abs(p["weight_ih"]).max() <= np.sqrt(6 / (D + G * H))
    np.testing.assert_allclose(p["weight_hh"].T @ p["weight_hh"], np.eye(H), atol=1e-10)
    assert (p["bias_ih"] == 0).all() and (p["bias_hh"] == 0).all()


def test_torch_scheme_one_argument_away():
    H = 30
    lstm = fr.LSTM(H, input_size=7, seed=0, init="torch")
    for k, v in lstm.params.items():
        assert np.abs(v).max() <= 1 / np.sqrt(H), k
        assert np.abs(v).max() > 0.9 / np.sqrt(H), k    # biases are random, no forget bias
    d = fr.Dense(10, input_size=64, seed=0, init="torch")
    assert np.abs(d.params["bias"]).max() > 0.05 and np.abs(d.params["bias"]).max() <= 1 / 8
    e = fr.Embedding(500, 40, seed=0, init="torch")
    e.build()
    np.testing.assert_allclose(e.params["weight"].std(), 1.0, rtol=0.02)
    # an explicit initializer wins over init="torch"; "torch" is also a per-argument name
    g = fr.GRU(H, input_size=7, seed=0, init="torch", recurrent_initializer="orthogonal")
    np.testing.assert_allclose(g.params["weight_hh"].T @ g.params["weight_hh"], np.eye(H),
                               atol=1e-5)
    r = fr.SimpleRNN(H, input_size=7, seed=0, kernel_initializer="torch")
    assert np.abs(r.params["weight_ih"]).max() <= 1 / np.sqrt(H)


def test_dense_and_embedding_keras_defaults():
    d = fr.Dense(50, input_size=200, seed=0, dtype="float64")
    lim = np.sqrt(6 / 250)
    assert np.abs(d.params["weight"]).max() <= lim
    np.testing.assert_allclose(d.params["weight"].std(), lim / np.sqrt(3), rtol=0.03)
    assert (d.params["bias"] == 0).all()
    e = fr.Embedding(1000, 32, seed=0)
    e.build()
    w = e.params["weight"]
    assert np.abs(w).max() <= 0.05
    np.testing.assert_allclose(w.std(), 0.05 / np.sqrt(3), rtol=0.02)


def test_initializers_see_keras_shapes_and_callables_work():
    seen = []

    def my_kernel(shape, dtype=None):
        seen.append(tuple(shape))
        return np.arange(np.prod(shape), dtype="float64").reshape(shape)

    lstm = fr.LSTM(3, input_size=2, kernel_initializer=my_kernel, recurrent_initializer=my_kernel,
                   bias_initializer=I.Constant(0.5), unit_forget_bias=False)
    assert seen == [(2, 12), (3, 12)]                  # Keras's (in, out) layouts
    np.testing.assert_array_equal(lstm.params["weight_ih"], np.arange(24).reshape(2, 12).T)
    np.testing.assert_array_equal(lstm.params["bias_ih"] + lstm.params["bias_hh"], 0.5)
    d = fr.Dense(4, input_size=3, kernel_initializer=my_kernel)
    np.testing.assert_array_equal(d.params["weight"], np.arange(12).reshape(3, 4).T)
    with pytest.raises(ValueError, match="kernel_initializer.*shape"):
        fr.LSTM(3, input_size=2, kernel_initializer=lambda shape, dtype=None: np.zeros(3))
    with pytest.raises(ValueError, match="recurrent_initializer: unknown initializer"):
        fr.GRU(3, recurrent_initializer="orthogonl")


def test_seeded_init_reproducible_and_config_round_trip():
    a = fr.LSTM(8, input_size=5, seed=11, kernel_initializer="he_normal")
    b = fr.LSTM.from_config(a.get_config())
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert a.get_config()["kernel_initializer"] == "he_normal"


def test_matches_keras_statistics_when_installed():
    keras = _import_keras()
    k = keras.initializers.GlorotUniform(seed=0)((64, 128))
    k = np.asarray(k)
    ours = I.GlorotUniform()((64, 128), "float64", RNG())
    assert abs(np.abs(k).max() - np.abs(ours).max()) < 0.01
    np.testing.assert_allclose(k.std(), ours.std(), rtol=0.05)
    o = np.asarray(keras.initializers.Orthogonal(seed=0)((16, 64)))
    np.testing.assert_allclose(o @ o.T, np.eye(16), atol=1e-5)
