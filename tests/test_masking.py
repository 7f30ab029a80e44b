"""Masks through a model: Embedding(mask_zero=True) / Masking -> recurrent layers -> Dense.

A right-padded batch must give the same outputs, final states, losses and gradients as running
each sequence alone; padded steps get no gradient and do not count in the loss or metrics."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import optimizers

pytestmark = pytest.mark.filterwarnings("ignore:fastrnn's compiled kernels:RuntimeWarning")

F64 = dict(dtype="float64")
LENGTHS = [6, 3, 1, 4]
T, V = 6, 9


def padded_ids(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, (len(LENGTHS), T))
    for b, L in enumerate(LENGTHS):
        x[b, L:] = 0
    return x


def grads_of(model):
    return {k: v.copy() for k, v in model.grads()}


@pytest.mark.parametrize("rnn", [
    lambda: fr.LSTM(5, **F64),
    lambda: fr.GRU(5, go_backwards=True, **F64),
    lambda: fr.Bidirectional(fr.SimpleRNN(4, **F64)),
])
def test_last_output_model_padded_equals_alone(rnn):
    x = padded_ids()
    y = np.random.default_rng(1).standard_normal((len(LENGTHS), 2))
    model = fr.Sequential([fr.Embedding(V, 3, mask_zero=True, **F64), rnn(), fr.Dense(2, **F64)],
                          seed=2)
    model.compile(optimizers.SGD(0.0), "mse")
    pred = model.predict(x)
    for b, L in enumerate(LENGTHS):
        np.testing.assert_allclose(pred[b], model.predict(x[b:b + 1, :L])[0], rtol=1e-10,
                                   atol=1e-12)
    loss = model.train_on_batch(x, y)
    g = grads_of(model)
    total, acc = 0.0, None
    for b, L in enumerate(LENGTHS):
        total += model.train_on_batch(x[b:b + 1, :L], y[b:b + 1]) / len(LENGTHS)
        gb = grads_of(model)
        acc = gb if acc is None else {k: acc[k] + gb[k] for k in acc}
    np.testing.assert_allclose(loss, total, rtol=1e-10)
    for k in g:
        np.testing.assert_allclose(g[k], acc[k] / len(LENGTHS), rtol=1e-8, atol=1e-12, err_msg=k)
    # id 0 only appears as padding: its embedding row gets exactly zero gradient
    assert (g["layers.0.weight"][0] == 0).all()


def test_sequence_output_loss_ignores_padded_steps():
    x = padded_ids(3)
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, x.shape)
    model = fr.Sequential([fr.Embedding(V, 3, mask_zero=True, **F64),
                           fr.GRU(5, return_sequences=True, **F64),
                           fr.Bidirectional(fr.LSTM(3, return_sequences=True, **F64)),
                           fr.Dense(4, activation="softmax", **F64)], seed=5)
    model.compile(optimizers.SGD(0.0), "sparse_categorical_crossentropy", ["accuracy"])
    logs = model.train_on_batch(x, y, return_dict=True)
    g = grads_of(model)
    n_valid = sum(LENGTHS)
    total, acc, hits = 0.0, None, 0.0
    for b, L in enumerate(LENGTHS):
        d = model.train_on_batch(x[b:b + 1, :L], y[b:b + 1, :L], return_dict=True)
        total += d["loss"] * L / n_valid
        hits += d["accuracy"] * L
        gb = {k: v * L / n_valid for k, v in grads_of(model).items()}
        acc = gb if acc is None else {k: acc[k] + gb[k] for k in acc}
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-10)
    np.testing.assert_allclose(logs["accuracy"], hits / n_valid, rtol=1e-12)
    for k in g:
        np.testing.assert_allclose(g[k], acc[k], rtol=1e-8, atol=1e-12, err_msg=k)
    # changing the labels at padded positions changes nothing
    y2 = y.copy()
    y2[x == 0] = 3 - y2[x == 0]
    assert model.test_on_batch(x, y2) == pytest.approx(model.test_on_batch(x, y), rel=1e-12)


def test_padded_inputs_get_zero_gradient():
    # Masking on float inputs: the gradient reaching the padded steps' inputs is zero
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 2))
    x[1, 3:] = 0
    x[2, 1:] = 0
    lstm = fr.LSTM(4, return_sequences=True, **F64)
    model = fr.Sequential([fr.Masking(**F64), lstm, fr.Dense(1, **F64)], seed=7)
    model.compile(optimizers.SGD(0.0), "mse")
    model.train_on_batch(x, rng.standard_normal((3, 5, 1)))
    mask = np.any(x != 0, axis=-1)
    out, m = model._forward(x, training=True)
    np.testing.assert_array_equal(m, mask)
    dx = lstm.backward(rng.standard_normal(out.shape[:2] + (4,)) * mask[..., None])
    assert (dx[~mask] == 0).all() and (dx[mask] != 0).all()


def test_masking_layer_matches_embedding_mask():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, T, 3))
    for b, L in enumerate(LENGTHS):
        x[b, L:] = 0
    model = fr.Sequential([fr.Masking(**F64), fr.GRU(3, **F64)], seed=1)
    pred = model.predict(x)
    for b, L in enumerate(LENGTHS):
        np.testing.assert_allclose(pred[b], model.predict(x[b:b + 1, :L])[0], rtol=1e-10,
                                   atol=1e-12)
    m = fr.Masking(mask_value=-1.0)
    assert m.compute_mask(np.array([[[-1.0, -1.0], [0.0, -1.0]]])).tolist() == [[False, True]]
    with pytest.raises(ValueError, match="3 dimensions"):
        m.forward(np.zeros((2, 3)))


def test_fully_padded_row_is_harmless():
    x = padded_ids()
    x[2] = 0                         # a row with no valid step
    y = np.random.default_rng(0).integers(0, 3, x.shape)
    model = fr.Sequential([fr.Embedding(V, 3, mask_zero=True, **F64),
                           fr.LSTM(4, return_sequences=True, **F64),
                           fr.Dense(3, activation="softmax", **F64)], seed=0)
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    for _, g in model.grads():
        assert np.isfinite(g).all()


def test_mask_stops_at_last_output_layer():
    x = padded_ids()
    model = fr.Sequential([fr.Embedding(V, 3, mask_zero=True), fr.LSTM(4, return_sequences=True),
                           fr.Dropout(0.5), fr.LSTM(4), fr.Dense(2)], seed=0)
    out, mask = model._forward(x, training=True)
    assert out.shape == (4, 2) and mask is None
    model = fr.Sequential([fr.Embedding(V, 3, mask_zero=True), fr.LSTM(4, return_sequences=True),
                           fr.Dropout(0.5), fr.Dense(2)], seed=0)
    out, mask = model._forward(x, training=True)
    np.testing.assert_array_equal(mask, x != 0)
