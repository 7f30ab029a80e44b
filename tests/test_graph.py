"""The layer graph (fastrnn.models.graph): symbolic calls, topological order, fan-out,
shared layers, states between layers, masks along edges; every parameter gradient of a DAG
model against finite differences of its loss (float64)."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import optimizers
from fastrnn.models.graph import Graph, SymbolicTensor

from _gradcheck import numeric_grad

F64 = {"dtype": "float64"}


def model_grads_vs_fd(model, x, y, rtol=1e-6, atol=1e-8):
    """Gradients of one train_on_batch (SGD lr 0) against central differences of
    test_on_batch, for every parameter."""
    model.compile(optimizers.SGD(0.0), model._test_loss, loss_weights=model._test_weights)
    model.train_on_batch(x, y)
    grads = {k: g.copy() for k, g in model.grads()}
    params = dict(model.params())
    assert set(grads) == set(params)
    for name, p in params.items():
        fd = numeric_grad(lambda: model.test_on_batch(x, y), p)
        np.testing.assert_allclose(grads[name], fd, rtol=rtol, atol=atol, err_msg=name)


def test_symbolic_call_records_nodes_and_shapes():
    x = fr.Input((None, 3))
    seq, h, c = fr.LSTM(4, return_sequences=True, return_state=True)(x)
    assert isinstance(seq, SymbolicTensor) and seq.shape == (None, None, 4)
    assert h.shape == c.shape == (None, 4) and h.node is seq.node and (h.index, c.index) == (1, 2)
    y = fr.Dense(2)(fr.LSTM(4)(seq, initial_state=[h, c]))
    g = Graph([x], [y])
    assert [type(n.layer).__name__ for n in g.nodes] == ["LSTM", "LSTM", "Dense"]
    with pytest.raises(TypeError, match="no values"):
        np.asarray(y)


def test_disconnected_and_bad_graphs_are_refused():
    a, b = fr.Input((3,)), fr.Input((3,))
    s = fr.Add()([a, b])
    with pytest.raises(ValueError, match="graph disconnected"):
        fr.Model(a, s)
    with pytest.raises(TypeError, match="symbolic tensors"):
        fr.Model(a, np.zeros(3))
    with pytest.raises(ValueError, match="units"):
        seq, h = fr.GRU(4, return_sequences=True, return_state=True)(fr.Input((None, 2)))
        fr.GRU(5)(seq, initial_state=h)
    with pytest.raises(ValueError, match="takes 3 input features"):
        d = fr.Dense(2)
        d(fr.Input((3,)))
        d(fr.Input((4,)))
    with pytest.raises(TypeError, match="unexpected keyword"):
        fr.Dense(2)(a, foo=1)
    with pytest.raises(TypeError, match="the model sets it"):
        fr.Dense(2)(a, training=True)
    with pytest.raises(TypeError, match="InputLayer cannot be called"):
        fr.layers.Input((3,))(a)
    with pytest.raises(ValueError, match="named 'same'"):
        fr.Model(a, fr.Dense(2, name="same")(fr.Dense(2, name="same")(a)))


def test_default_names_are_made_unique():
    x = fr.Input((3,))
    d1, d2 = fr.Dense(2), fr.Dense(2)
    m = fr.Model(x, [d1(x), d2(x)])
    assert [d1.name, d2.name] == ["dense", "dense_1"]
    assert m.output_names == ["dense", "dense_1"]


def test_fan_out_shared_layer_and_states_gradients():
    """One Dense shared by two branches, a tensor read by three nodes, an LSTM's states passed
    to a GRU-free decoder LSTM, a Bidirectional, and masks: all gradients by finite
    differences."""
    rng = np.random.default_rng(0)
    ids = fr.Input((None,), dtype="int64")
    feats = fr.Input((None, 3), dtype="float64")
    e = fr.Embedding(7, 3, mask_zero=True, seed=1, **F64)(ids)
    shared = fr.Dense(3, activation="tanh", seed=2, **F64)
    a = shared(e)                                   # shared layer, call 1
    b = shared(feats)                               # shared layer, call 2
    s = fr.Add()([a, b, e])                         # e is read twice (fan-out)
    seq, h, c = fr.LSTM(4, return_sequences=True, return_state=True, seed=3, **F64)(s)
    dec = fr.LSTM(4, return_sequences=True, seed=4, **F64)(feats, initial_state=[h, c])
    bi = fr.Bidirectional(fr.GRU(2, return_sequences=True, seed=5, **F64))(seq)
    ctx = fr.Attention(use_scale=True, **F64)([dec, seq])
    out = fr.Dense(2, seed=6, **F64)(fr.Concatenate()([ctx, bi, dec]))
    model = fr.Model([ids, feats], out)
    x_ids = rng.integers(1, 7, (3, 5))
    x_ids[0, 3:] = 0
    x_ids[2, 4:] = 0
    x = [x_ids, rng.standard_normal((3, 5, 3))]
    y = rng.standard_normal((3, 5, 2))
    model._test_loss, model._test_weights = "mse", None
    model_grads_vs_fd(model, x, y)
    # the shared Dense's gradient is the sum over both calls: not equal to either call's alone
    g = dict(model.grads())
    idx = model.layers.index(shared)
    assert np.abs(g[f"layers.{idx}.weight"]).sum() > 0


def test_multi_output_loss_weights_gradients():
    rng = np.random.default_rng(1)
    x = fr.Input((None, 2), dtype="float64")
    seq = fr.GRU(3, return_sequences=True, seed=1, **F64)(x)
    o1 = fr.Dense(4, activation="softmax", seed=2, name="tags", **F64)(seq)
    o2 = fr.Dense(1, seed=3, name="value", **F64)(fr.SimpleRNN(3, seed=4, **F64)(seq))
    model = fr.Model(x, [o1, o2])
    xs = rng.standard_normal((4, 5, 2))
    ys = [rng.integers(0, 4, (4, 5)), rng.standard_normal((4, 1))]
    model._test_loss = {"tags": "sparse_categorical_crossentropy", "value": "mse"}
    model._test_weights = [0.3, 2.0]
    model_grads_vs_fd(model, xs, ys)
    logs = model.test_on_batch(xs, ys, return_dict=True)
    np.testing.assert_allclose(logs["loss"], 0.3 * logs["tags_loss"] + 2.0 * logs["value_loss"],
                               rtol=1e-12)


def test_masks_travel_along_edges():
    ids = fr.Input((None,), dtype="int64")
    e = fr.Embedding(5, 3, mask_zero=True, seed=0)(ids)
    seq = fr.LSTM(4, return_sequences=True, seed=1)(e)
    model = fr.Model(ids, fr.Dense(2, seed=2)(seq))
    x = np.array([[1, 2, 0, 0], [3, 1, 4, 0]])
    out, mask = model._forward(x, training=False)
    np.testing.assert_array_equal(mask, x != 0)
    # a padded sample gives the same valid outputs as the unpadded one
    short = model.predict(x[:1, :2])
    np.testing.assert_allclose(model.predict(x)[0, :2], short[0], rtol=1e-6)


def test_deep_chain_and_order():
    """Topological order without recursion: a chain deeper than Python's recursion limit."""
    import sys
    x = fr.Input((2,))
    t = x
    layers = [fr.Add() for _ in range(sys.getrecursionlimit() + 50)]
    for layer in layers:
        t = layer([t, x])
    g = Graph([x], [t])
    assert [n.layer for n in g.nodes] == layers
    model = fr.Model(x, t)
    np.testing.assert_allclose(model.predict(np.ones((1, 2))), len(layers) + 1.0)


def test_malformed_configs_are_value_errors():
    x = fr.Input((3,))
    model = fr.Model(x, fr.Dense(2)(fr.Dense(4)(x)))
    good = model.get_config()
    bad = []
    c = json_copy(good)
    c["layers"][2]["calls"][0]["x"] = [[2, 0, 0]]          # reads its own output: never ready
    bad.append(c)
    c = json_copy(good)
    c["outputs"] = [[9, 0, 0]]
    bad.append(c)
    c = json_copy(good)
    c["layers"][1]["calls"][0]["x"] = [[0, 0, True]]
    bad.append(c)
    c = json_copy(good)
    c["layers"][1]["calls"][0]["kwargs"] = {"foo": 1}
    bad.append(c)
    c = json_copy(good)
    c["unexpected"] = 1
    bad.append(c)
    for c in bad:
        with pytest.raises((ValueError, TypeError)):
            fr.Model.from_config(c)
    again = fr.Model.from_config(json_copy(good))
    assert again.get_config() == good


def json_copy(obj):
    import json
    return json.loads(json.dumps(obj))
