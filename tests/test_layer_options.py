"""Keras layer options on the recurrent layers and in models: stateful, trainable=False,
input_shape=, get_weights/set_weights, activations, reset_after, use_bias="single", and the
Keras semantics of Bidirectional (masked outputs, merge_mode=None, backward_layer=)."""

import io
import contextlib

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import interop


def _import_keras():
    """keras, on the torch backend when no backend was chosen (Keras's default, TensorFlow,
    is rarely installed next to fastrnn); skips the test when Keras is missing."""
    import importlib.util
    import os
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("torch") is not None:
        os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- stateful ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [fr.LSTM, fr.GRU, fr.SimpleRNN])
def test_stateful_carry_equals_one_long_sequence(cls):
    x = _x(4, 12, 3)
    full = fr.Sequential([cls(6, return_sequences=True, input_size=3, seed=1)])
    st = fr.Sequential([cls(6, return_sequences=True, input_size=3, seed=1, stateful=True)])
    expected = full.predict(x)
    parts = [st.predict(x[:, a:b], batch_size=4) for a, b in ((0, 5), (5, 6), (6, 12))]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), expected, rtol=1e-5, atol=1e-6)
    # reset_states: the next batch starts from zeros again
    st.reset_states()
    np.testing.assert_allclose(st.predict(x[:, :5], batch_size=4), expected[:, :5], rtol=1e-6)
    # a different batch size while a state is carried is an error, not a silent broadcast
    with pytest.raises(ValueError, match="carries the state of 4 sequences but got a batch of 2"):
        st.predict(x[:2, 5:])
    st.layers[0].reset_state()                      # Keras 3's name
    assert st.layers[0].states is None


def test_stateful_layer_api_and_fit():
    lstm = fr.LSTM(5, input_size=2, stateful=True, seed=0)
    x = _x(3, 4, 2)
    lstm(x)
    h, c = lstm.states
    assert h.shape == (3, 5) and c.shape == (3, 5)
    lstm.reset_states([np.ones((3, 5)), np.zeros((3, 5))])
    np.testing.assert_array_equal(lstm.states[0], 1)
    with pytest.raises(ValueError, match=r"each state must have shape \(batch, 5\)"):
        lstm.reset_states([np.ones((3, 4)), np.ones((3, 4))])
    # truncated BPTT: fit over consecutive windows with the state carried between batches
    m = fr.Sequential([fr.LSTM(4, input_size=2, stateful=True, return_sequences=True, seed=0),
                       fr.Dense(1)], seed=0)
    m.compile("adam", "mse")
    h = m.fit(_x(8, 5, 2), _x(8, 5, 1), batch_size=4, shuffle=False, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2 and m.layers[0].states is not None
    assert fr.LSTM.from_config(m.layers[0].get_config()).stateful


# ---- trainable=False ------------------------------------------------------------------------

def test_frozen_layers_unchanged_after_fit_and_counted_in_summary(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, (64, 7))
    y = rng.integers(0, 2, (64, 1)).astype(np.float32)
    emb = fr.Embedding(30, 8, trainable=False)
    m = fr.Sequential([emb, fr.LSTM(6), fr.Dense(1, activation="sigmoid", trainable=False)],
                      seed=0)
    m.compile("adam", "binary_crossentropy")
    m.build((None, 7))
    before = [w.copy() for w in m.get_weights()]
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    after = m.get_weights()
    np.testing.assert_array_equal(after[0], before[0])              # Embedding frozen
    np.testing.assert_array_equal(after[-2], before[-2])            # Dense frozen
    np.testing.assert_array_equal(after[-1], before[-1])
    assert not np.array_equal(after[1], before[1])                  # the LSTM trained
    lines = []
    m.summary(print_fn=lines.append)
    frozen = 30 * 8 + 6 + 1
    total = m.count_params()
    assert f"Trainable params: {total - frozen:,}" in lines
    assert f"Non-trainable params: {frozen:,}" in lines
    assert m.count_params(trainable=False) == frozen
    assert len(m.non_trainable_weights) == 3 and len(m.trainable_weights) == 4
    # the flag survives save / load
    m.save(tmp_path / "f.safetensors")
    m2 = fr.load_model(tmp_path / "f.safetensors")
    assert [l.trainable for l in m2.layers] == [False, True, False]
    with pytest.raises(TypeError, match="trainable must be True or False"):
        fr.Dense(3, trainable="no")


# ---- input_shape / get_weights --------------------------------------------------------------

def test_input_shape_on_first_layer():
    m = fr.Sequential([fr.LSTM(8, input_shape=(10, 3)), fr.Dense(2)])
    assert m.built and m.layers[0].input_size == 3
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        m.summary()
    assert "(None, 8)" in out.getvalue()
    e = fr.Sequential([fr.Embedding(100, 4, input_shape=(20,)), fr.GRU(3)])
    assert e.built and e.predict(np.ones((2, 20), int)).shape == (2, 3)
    c = fr.Sequential([fr.Conv1D(4, 3, input_shape=(None, 5)), fr.GlobalMaxPooling1D()])
    assert c.built
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive ints"):
        fr.Dense(3, input_shape=(0,))


def test_layer_get_set_weights():
    a = fr.GRU(4, input_size=3, seed=0)
    b = fr.GRU(4, input_size=3, seed=1)
    w = a.get_weights()
    assert [x.shape for x in w] == [(12, 3), (12, 4), (12,), (12,)]
    b.set_weights(w)
    x = _x(2, 5, 3)
    np.testing.assert_array_equal(a(x), b(x))
    w[0][...] = 7                                    # copies, not views
    assert not (a.params["weight_ih"] == 7).any()
    before = b.get_weights()
    with pytest.raises(ValueError, match=r"weight_hh of gru must have shape \(12, 4\)"):
        b.set_weights([np.zeros((12, 3)), np.zeros((4, 4)), np.zeros(12), np.zeros(12)])
    for u, v in zip(before, b.get_weights()):            # nothing was written
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="has 4 parameters"):
        b.set_weights(w[:2])


# ---- activations / reset_after --------------------------------------------------------------

def test_activation_arguments():
    fr.SimpleRNN(3, activation="relu")
    fr.LSTM(3, activation="tanh", recurrent_activation="sigmoid")
    fr.GRU(3, "tanh", "sigmoid", reset_after=True)
    with pytest.raises(ValueError, match=r"LSTM: recurrent_activation='hard_sigmoid' is not "
                                         r"supported.*\('sigmoid',\)"):
        fr.LSTM(3, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match=r"GRU: activation='relu' is not supported"):
        fr.GRU(3, activation="relu")
    with pytest.raises(ValueError, match=r"SimpleRNN: activation='sigmoid'.*\('tanh', 'relu'\)"):
        fr.SimpleRNN(3, activation="sigmoid")
    with pytest.raises(ValueError, match="reset_after=False is not supported"):
        fr.GRU(3, reset_after=False)


# ---- use_bias="single" ----------------------------------------------------------------------

@pytest.mark.parametrize("cls", [fr.LSTM, fr.SimpleRNN])
def test_single_bias_trains_like_one_keras_bias(cls):
    H, I = 5, 3
    two = cls(H, input_size=I, dtype="float64", seed=0, bias_initializer="uniform")
    one = cls(H, input_size=I, dtype="float64", seed=0, use_bias="single",
              bias_initializer="uniform")
    assert list(one.params) == ["weight_ih", "weight_hh", "bias_ih"]
    G = two.gates
    assert one.count_params() == G * H * (I + H + 1)          # Keras's count
    one.set_weights([two.params["weight_ih"], two.params["weight_hh"],
                     two.params["bias_ih"] + two.params["bias_hh"]])
    x = _x(4, 6, I).astype(np.float64)
    np.testing.assert_allclose(one(x), two(x), rtol=1e-12)
    dy = _x(4, H, seed=3).astype(np.float64)
    for layer in (one, two):
        layer.forward(x, training=True)
        layer.backward(dy)
    g = one.grads["bias_ih"]
    np.testing.assert_allclose(two.grads["bias_ih"], g)
    np.testing.assert_allclose(two.grads["bias_hh"], g)
    # one SGD step: the effective bias moves by lr*g with one bias, by 2*lr*g with two
    lr = 0.1
    b_one = one.params["bias_ih"] - lr * g
    b_two = (two.params["bias_ih"] - lr * g) + (two.params["bias_hh"] - lr * g)
    np.testing.assert_allclose(b_two - b_one, -lr * g, rtol=1e-12)
    assert fr.LSTM.from_config(fr.LSTM(3, use_bias="single").get_config()).single_bias
    with pytest.raises(ValueError, match="use_bias='single' is for SimpleRNN and LSTM"):
        fr.GRU(3, use_bias="single")


def test_single_bias_streaming_step():
    lstm = fr.LSTM(4, input_size=3, use_bias="single", seed=0, bias_initializer="uniform",
                   return_sequences=True)
    x = _x(2, 5, 3)
    state, outs = None, []
    for t in range(5):
        h, state = lstm.step(x[:, t], state)
        outs.append(h)
    np.testing.assert_allclose(np.stack(outs, 1), lstm(x), rtol=1e-5, atol=1e-6)


def test_single_bias_interop_round_trip():
    lstm = fr.LSTM(4, input_size=3, use_bias="single", seed=0)
    k = interop.to_keras_weights(lstm)
    assert [w.shape for w in k] == [(3, 16), (4, 16), (16,)]
    other = fr.LSTM(4, input_size=3, use_bias="single", seed=5)
    interop.load_keras_weights(other, k)
    x = _x(2, 5, 3)
    np.testing.assert_allclose(other(x), lstm(x), rtol=1e-6)


def test_single_bias_sgd_matches_keras():
    keras = _import_keras()
    H, I = 4, 3
    x = _x(6, 5, I)
    y = _x(6, 1, seed=1)
    km = keras.Sequential([keras.Input((5, I)), keras.layers.LSTM(H), keras.layers.Dense(1)])
    km.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    fm = fr.Sequential([fr.LSTM(H, input_size=I, use_bias="single"), fr.Dense(1)])
    fm.compile(optimizer=fr.optimizers.SGD(0.5), loss="mse")
    interop.load_keras_weights(fm.layers[0], [np.asarray(w) for w in km.layers[0].get_weights()])
    kd = [np.asarray(w) for w in km.layers[1].get_weights()]
    fm.layers[1].set_weights([kd[0].T, kd[1]])
    for _ in range(3):
        km.train_on_batch(x, y)
        fm.train_on_batch(x, y)
    kw = [np.asarray(w) for w in km.layers[0].get_weights()]
    np.testing.assert_allclose(interop.to_keras_weights(fm.layers[0])[2], kw[2], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(fm.predict(x), np.asarray(km.predict(x, verbose=0)), rtol=1e-4,
                               atol=1e-5)


# ---- Bidirectional --------------------------------------------------------------------------

def test_bidirectional_zeroes_masked_outputs_and_gradients():
    x = _x(3, 6, 2).astype(np.float64)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], bool)
    bi = fr.Bidirectional(fr.LSTM(4, return_sequences=True, dtype="float64", seed=0))
    y = bi.forward(x, mask=mask, training=True)
    assert (y[~mask] == 0).all() and (y[mask] != 0).all()
    # the gradient of a masked output position is ignored
    d = np.random.default_rng(1).standard_normal(y.shape)
    dx = bi.backward(d)
    d2 = np.where(mask[:, :, None], d, 123.0)
    bi.forward(x, mask=mask, training=True)
    np.testing.assert_allclose(bi.backward(d2), dx, rtol=1e-12)
    # valid steps equal a run on each unpadded sequence
    for b in range(3):
        n = mask[b].sum()
        np.testing.assert_allclose(y[b, :n], bi(x[b:b + 1, :n])[0], rtol=1e-10)


def test_bidirectional_merge_none_and_backward_layer(tmp_path):
    x = _x(2, 5, 3)
    bi = fr.Bidirectional(fr.GRU(4, return_sequences=True, seed=0), merge_mode=None)
    yf, yb = bi.forward(x, training=True)
    cat = fr.Bidirectional(fr.GRU(4, return_sequences=True, seed=0))
    cat.build(x.shape)
    cat.set_weights(bi.get_weights())
    np.testing.assert_allclose(np.concatenate([yf, yb], -1), cat(x), rtol=1e-6)
    assert bi.compute_output_shape((None, 5, 3)) == [(None, 5, 4), (None, 5, 4)]
    dx = bi.backward([np.ones_like(yf), np.zeros_like(yb)])
    assert dx.shape == x.shape
    with pytest.raises(ValueError, match="d_output must be a list"):
        bi.backward(np.ones((2, 5, 8)))

    fwd = fr.LSTM(3, return_sequences=True, seed=1)
    bwd = fr.LSTM(3, return_sequences=True, go_backwards=True, seed=2, input_size=3,
                  recurrent_initializer="he_uniform")
    bl = fr.Bidirectional(fwd, backward_layer=bwd)
    for k in bwd.params:
        np.testing.assert_array_equal(bl.backward_layer.params[k], bwd.params[k])
    y = bl(x)
    ref = np.concatenate([fwd(x), bwd(x)[:, ::-1]], axis=-1)
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    m = fr.Sequential([bl, fr.Dense(1)])
    m.save(tmp_path / "b.safetensors")
    np.testing.assert_allclose(fr.load_model(tmp_path / "b.safetensors").predict(x),
                               m.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match="go_backwards must be the opposite"):
        fr.Bidirectional(fwd, backward_layer=fr.LSTM(3, return_sequences=True))
    with pytest.raises(ValueError, match="backward_layer.units must equal"):
        fr.Bidirectional(fwd, backward_layer=fr.LSTM(2, return_sequences=True,
                                                     go_backwards=True))


def test_bidirectional_mask_matches_keras():
    keras = _import_keras()
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, (3, 7))
    ids[0, 4:] = 0
    ids[2, 2:] = 0
    emb = fr.Embedding(20, 5, mask_zero=True, seed=0)
    bi = fr.Bidirectional(fr.LSTM(4, return_sequences=True, seed=1))
    m = fr.Sequential([emb, bi])
    y = m.predict(ids)
    km = keras.Sequential([keras.Input((7,)), keras.layers.Embedding(20, 5, mask_zero=True),
                           keras.layers.Bidirectional(keras.layers.LSTM(4,
                                                                        return_sequences=True))])
    km.layers[0].set_weights([emb.params["weight"]])
    kb = km.layers[1]
    kb.forward_layer.set_weights(interop.to_keras_weights(bi.forward_layer))
    kb.backward_layer.set_weights(interop.to_keras_weights(bi.backward_layer))
    ky = np.asarray(km.predict(ids, verbose=0))
    np.testing.assert_allclose(y, ky, rtol=1e-5, atol=1e-6)
