"""Keras 3 models in and out of fastrnn (fastrnn.interop.from_keras / to_keras and the weight
lists of Bidirectional): round trips give keras_model(x) to float32 rounding, and every
configuration fastrnn would compute differently is refused by name."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")     # the numpy backend needs jax
keras = pytest.importorskip("keras")

import fastrnn as fr  # noqa: E402
from fastrnn import interop  # noqa: E402
from fastrnn.interop import KerasConversionError  # noqa: E402

# Keras's own variables trip NumPy 2's __array__(copy=) deprecation; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

L = keras.layers
TOL = dict(rtol=2e-5, atol=2e-6)


def knp(t):
    """A Keras output (backend tensor, or a list of them) as NumPy."""
    if isinstance(t, (list, tuple)):
        return [knp(a) for a in t]
    if hasattr(t, "detach"):
        t = t.detach().cpu()
    return np.asarray(keras.ops.convert_to_numpy(t))


def randomize(kmodel, seed):
    """Non-default weights everywhere (zero biases would hide gate-order bugs)."""
    rng = np.random.default_rng(seed)
    for layer in kmodel.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(w.dtype) for w in ws])


def round_trip(kmodel, x, valid=None, seed=0):
    randomize(kmodel, seed)
    want = knp(kmodel(x))
    model = interop.from_keras(kmodel)
    got = model.predict(x)
    back = knp(interop.to_keras(model)(x))
    if valid is not None:
        want, got, back = want[valid], got[valid], back[valid]
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(back, got, **TOL)
    return model


def seq(shape=(5, 3)):
    return keras.Input(shape)


X = np.random.default_rng(1).standard_normal((4, 5, 3)).astype(np.float32)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("opts", [{}, {"go_backwards": True}, {"use_bias": False},
                                  {"return_sequences": True}])
def test_recurrent_layers_round_trip(cell, opts):
    k = keras.Sequential([seq(), getattr(L, cell)(4, **opts)])
    model = round_trip(k, X)
    layer = model.layers[0]
    assert type(layer).__name__ == cell
    for key, value in opts.items():
        assert getattr(layer, key) == value


def test_simple_rnn_relu_round_trip():
    k = keras.Sequential([seq(), L.SimpleRNN(4, activation="relu", return_sequences=True),
                          L.SimpleRNN(3)])
    model = round_trip(k, X)
    assert model.layers[0].activation == "relu"


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
def test_bidirectional_round_trip(cell, merge):
    k = keras.Sequential([seq(), L.Bidirectional(getattr(L, cell)(4, return_sequences=True),
                                                 merge_mode=merge),
                          L.Bidirectional(getattr(L, cell)(3), merge_mode=merge)])
    model = round_trip(k, X)
    assert [l.merge_mode for l in model.layers] == [merge, merge]


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax"])
def test_dense_round_trip(activation):
    k = keras.Sequential([seq(), L.LSTM(4, return_sequences=True),
                          L.Dense(3, activation=activation), L.Dropout(0.4),
                          L.GRU(2), L.Dense(2, activation=activation, use_bias=False)])
    round_trip(k, X)


@pytest.mark.parametrize("name, make", [
    ("Activation", lambda: [L.LSTM(4, return_sequences=True), L.Activation("gelu")]),
    ("Conv1D", lambda: [L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
                        L.GRU(3)]),
    ("Conv1D-valid", lambda: [L.Conv1D(4, 2, strides=2), L.LSTM(3)]),
    ("LayerNormalization", lambda: [L.LSTM(4, return_sequences=True),
                                    L.LayerNormalization(epsilon=1e-5), L.GRU(2)]),
    ("pooling", lambda: [L.GRU(4, return_sequences=True), L.MaxPooling1D(2, padding="same"),
                         L.GlobalAveragePooling1D()]),
    ("GlobalMaxPooling1D", lambda: [L.SimpleRNN(4, return_sequences=True),
                                    L.GlobalMaxPooling1D(keepdims=True), L.Flatten()]),
    ("RepeatVector", lambda: [L.LSTM(4), L.RepeatVector(3), L.GRU(2, return_sequences=True)]),
    ("TimeDistributed", lambda: [L.LSTM(4, return_sequences=True), L.SpatialDropout1D(0.3),
                                 L.TimeDistributed(L.Dense(2, activation="softmax"))]),
])
def test_other_layers_round_trip(name, make):
    round_trip(keras.Sequential([seq()] + make()), X)


def test_embedding_mask_zero_and_masking_round_trip():
    ids = np.random.default_rng(2).integers(1, 10, (4, 6))
    ids[0, 3:] = 0
    ids[2, 5:] = 0
    k = keras.Sequential([keras.Input((None,), dtype="int32"),
                          L.Embedding(10, 4, mask_zero=True),
                          L.Bidirectional(L.GRU(5, return_sequences=True)),
                          L.LSTM(3, return_sequences=True), L.LSTM(2), L.Dense(2)])
    model = round_trip(k, ids)
    assert model.layers[0].mask_zero
    x = X.copy()
    x[1, 3:] = 0
    k = keras.Sequential([seq((None, 3)), L.Masking(0.0), L.SimpleRNN(4, go_backwards=True)])
    round_trip(k, x)


def test_masked_bidirectional_sequence_output_agrees_on_valid_steps():
    ids = np.random.default_rng(3).integers(1, 10, (3, 6))
    ids[0, 2:] = 0
    k = keras.Sequential([keras.Input((None,), dtype="int32"),
                          L.Embedding(10, 4, mask_zero=True),
                          L.Bidirectional(L.LSTM(3, return_sequences=True))])
    round_trip(k, ids, valid=ids != 0)


def test_functional_chain_converts():
    inp = keras.Input((5, 3))
    h = L.GRU(4, return_sequences=True)(inp)
    out = L.Dense(2, activation="tanh")(L.LSTM(3)(h))
    model = round_trip(keras.Model(inp, out), X)
    assert isinstance(model, fr.Model)


def test_functional_graph_with_states_shared_layers_and_two_outputs():
    src = keras.Input((None,), dtype="int32", name="src")
    tgt = keras.Input((None, 3), name="tgt")
    e = L.Embedding(10, 4, mask_zero=True)(src)
    seq, hf, cf, hb, cb = L.Bidirectional(L.LSTM(5, return_sequences=True,
                                                 return_state=True))(e)
    shared = L.Dense(5, activation="tanh")
    dec = L.LSTM(5, return_sequences=True)(tgt, initial_state=[shared(hf), cb])
    y = L.Dense(2, activation="softmax")(dec)
    z = shared(L.GRU(5)(seq))
    kmodel = keras.Model([src, tgt], [y, z])
    randomize(kmodel, 9)
    rng = np.random.default_rng(9)
    ids = rng.integers(1, 10, (3, 6))
    ids[0, 3:] = 0
    x = rng.standard_normal((3, 4, 3)).astype(np.float32)
    want = knp(kmodel([ids, x]))
    model = interop.from_keras(kmodel)
    assert isinstance(model, fr.Model)
    assert sum(isinstance(l, fr.Dense) for l in model.layers) == 2     # shared stays shared
    got = model.predict([ids, x])
    back = knp(interop.to_keras(model)([ids, x]))
    for w, g, b in zip(want, got, back):
        np.testing.assert_allclose(g, w, **TOL)
        np.testing.assert_allclose(b, g, **TOL)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_single_layer_with_states(cell):
    klayer = L.Bidirectional(getattr(L, cell)(4, return_sequences=True, return_state=True))
    klayer.build((None, None, 3))
    rng = np.random.default_rng(4)
    klayer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(np.float32)
                        for w in klayer.get_weights()])
    layer = interop.from_keras(klayer)
    assert isinstance(layer, fr.Bidirectional) and layer.return_state
    for a, b in zip(layer(X), knp(klayer(X))):
        np.testing.assert_allclose(a, b, **TOL)


def test_bidirectional_weight_lists_both_ways():
    klayer = L.Bidirectional(L.GRU(4))
    klayer.build((None, None, 3))
    randomize(keras.Sequential([seq(), klayer]), 5)
    layer = interop.load_keras_weights(fr.Bidirectional(fr.GRU(4)), klayer.get_weights())
    np.testing.assert_allclose(layer(X), knp(klayer(X)), **TOL)
    for a, b in zip(interop.to_keras_weights(layer), klayer.get_weights()):
        np.testing.assert_array_equal(a, b)
    again = interop.load_keras_weights(fr.Bidirectional(fr.GRU(4)), klayer)   # layer object
    np.testing.assert_array_equal(again(X), layer(X))


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------

def refused(klayers, match, inp=None):
    k = keras.Sequential([inp if inp is not None else seq()] + klayers)
    with pytest.raises(KerasConversionError, match=match):
        interop.from_keras(k)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_refuses_non_tanh_activation(cell):
    refused([getattr(L, cell)(3, activation="relu")], rf"{cell}\(activation='relu'\)")


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_refuses_hard_sigmoid_gates(cell):
    refused([getattr(L, cell)(3, recurrent_activation="hard_sigmoid")],
            "recurrent_activation='hard_sigmoid'")


def test_refuses_simple_rnn_sigmoid():
    refused([L.SimpleRNN(3, activation="sigmoid")], r"SimpleRNN\(activation='sigmoid'\)")


@pytest.mark.parametrize("use_bias", [True, False])
def test_refuses_reset_before_gru(use_bias):
    refused([L.GRU(3, reset_after=False, use_bias=use_bias)], r"GRU\(reset_after=False\)")
    # the weight list of a bias-free reset_after=False GRU has the shapes of a reset_after=True
    # one: only the layer object can tell, and it is refused
    klayer = L.GRU(3, reset_after=False, use_bias=use_bias)
    klayer.build((None, None, 2))
    layer = fr.GRU(3, use_bias=use_bias)
    with pytest.raises(KerasConversionError, match="reset_after=False"):
        interop.load_keras_weights(layer, klayer)
    assert not layer.built


def test_stateful_layers_carry_state_like_keras():
    k = keras.Sequential([keras.Input((5, 3), batch_size=4), L.LSTM(3, stateful=True),
                          L.Dense(2)])
    randomize(k, 10)
    model = interop.from_keras(k)
    assert model.layers[0].stateful
    with pytest.raises(ValueError, match="pass batch_size="):
        interop.to_keras(model)
    back = interop.to_keras(model, batch_size=4)
    for step in range(2):             # the second call starts from the first call's state
        x = X + step
        want = knp(k(x))
        np.testing.assert_allclose(model.predict(x, batch_size=4), want, **TOL)
        np.testing.assert_allclose(knp(back(x)), want, **TOL)


def test_refuses_merge_none_and_odd_backward_layer():
    refused([L.Bidirectional(L.LSTM(3), merge_mode=None)], "merge_mode=None")
    refused([L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3, go_backwards=True,
                                                               use_bias=False))],
            "backward layer differs")


def test_refuses_unknown_layers_and_options():
    refused([L.Conv1D(2, 2, data_format="channels_first")], "data_format='channels_first'")
    refused([L.Conv2D(2, 2)], "Keras Conv2D has no fastrnn counterpart", inp=keras.Input((4, 4, 1)))
    refused([L.LSTM(3), L.Dense(2, activation="gelu")], r"Dense\(activation='gelu'\)")
    refused([L.Dropout(0.5, noise_shape=(None, 1, 3)), L.LSTM(2)], "noise_shape")


def test_refuses_unknown_layers_inside_functional_models():
    a = keras.Input((5, 3))
    out = L.LSTM(2)(L.BatchNormalization()(a))
    with pytest.raises(KerasConversionError, match="BatchNormalization has no fastrnn"):
        interop.from_keras(keras.Model(a, out))


def test_load_keras_weights_checks_the_layer_config():
    klayer = L.LSTM(3)
    klayer.build((None, None, 2))
    with pytest.raises(KerasConversionError, match="units=3 but the fastrnn layer has 4"):
        interop.load_keras_weights(fr.LSTM(4), klayer)
    with pytest.raises(KerasConversionError, match="needs a Keras GRU, got LSTM"):
        interop.load_keras_weights(fr.GRU(3), klayer)


def test_to_keras_needs_a_built_model():
    with pytest.raises(ValueError, match="not built"):
        interop.to_keras(fr.Sequential([fr.LSTM(3)]))


@pytest.mark.parametrize("bi", [False, True])
def test_to_keras_single_layer(bi):
    layer = fr.GRU(4, return_sequences=True, input_size=3, seed=8)
    if bi:
        layer = fr.Bidirectional(layer, merge_mode="mul")
    klayer = interop.to_keras(layer)
    np.testing.assert_allclose(knp(klayer(X)), layer(X), **TOL)


def two_outputs_close(kmodel, feeds):
    want = knp(kmodel(feeds))
    model = interop.from_keras(kmodel)
    got = model.predict(feeds)
    back = knp(interop.to_keras(model)(feeds))
    want, got, back = ([a] if not isinstance(a, list) else a for a in (want, got, back))
    for w, g, b in zip(want, got, back):
        np.testing.assert_allclose(g, w, **TOL)
        np.testing.assert_allclose(b, g, **TOL)
    return model


@pytest.mark.parametrize("merge", ["Concatenate", "Add", "Subtract", "Multiply", "Average"])
def test_merge_layers_round_trip(merge):
    if not hasattr(fr, merge):
        pytest.skip(f"this fastrnn has no {merge}")
    a = keras.Input((5, 3))
    b = keras.Input((5, 3))
    h1 = L.LSTM(4, return_sequences=True)(a)
    h2 = L.GRU(4, return_sequences=True)(b)
    out = L.SimpleRNN(2)(getattr(L, merge)()([h1, h2]))
    kmodel = keras.Model([a, b], out)
    randomize(kmodel, 11)
    x2 = np.random.default_rng(12).standard_normal((4, 5, 3)).astype(np.float32)
    two_outputs_close(kmodel, [X, x2])


@pytest.mark.parametrize("kind", ["Attention", "AdditiveAttention"])
@pytest.mark.parametrize("use_scale", [False, True])
def test_attention_encoder_decoder_round_trip(kind, use_scale):
    if not hasattr(fr, kind):
        pytest.skip(f"this fastrnn has no {kind}")
    src = keras.Input((None,), dtype="int32")
    tgt = keras.Input((None, 3))
    enc, h, c = L.LSTM(4, return_sequences=True, return_state=True)(
        L.Embedding(10, 4, mask_zero=True)(src))
    dec = L.LSTM(4, return_sequences=True)(tgt, initial_state=[h, c])
    ctx, scores = getattr(L, kind)(use_scale=use_scale)([dec, enc], use_causal_mask=False,
                                                         return_attention_scores=True)
    dot = L.Dot(axes=[2, 2], normalize=True)([dec, ctx])
    out = L.Dense(2)(L.Concatenate()([dec, ctx]))
    kmodel = keras.Model([src, tgt], [out, scores, dot])
    randomize(kmodel, 13)
    rng = np.random.default_rng(13)
    ids = rng.integers(1, 10, (3, 6))
    ids[0, 4:] = 0
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    two_outputs_close(kmodel, [ids, x])


def test_refuses_concat_score_attention():
    if not hasattr(fr, "Attention"):
        pytest.skip("this fastrnn has no Attention")
    q = keras.Input((4, 3))
    v = keras.Input((5, 3))
    out = L.Attention(score_mode="concat")([q, v])
    with pytest.raises(KerasConversionError, match="score_mode='concat'"):
        interop.from_keras(keras.Model([q, v], out))
