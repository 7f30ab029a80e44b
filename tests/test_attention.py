"""Attention and AdditiveAttention: forward against plain NumPy loops and (when installed)
keras.layers, backward against finite differences, masks, causal masking, step."""

import os

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.layers import deserialize, serialize

from _gradcheck import check_layer_grads

F64 = {"dtype": "float64"}


def loop_attention(q, v, k=None, qmask=None, vmask=None, causal=False, score=None):
    """One query row at a time, the textbook way (Keras's masking constant 1e9)."""
    k = v if k is None else k
    B, Tq, _ = q.shape
    Tv = k.shape[1]
    out = np.zeros((B, Tq, v.shape[2]))
    weights = np.zeros((B, Tq, Tv))
    for b in range(B):
        for i in range(Tq):
            s = np.array([score(q[b, i], k[b, j]) for j in range(Tv)])
            for j in range(Tv):
                ok = (vmask is None or vmask[b, j]) and (not causal or j <= i)
                if not ok:
                    s[j] -= 1e9
            w = np.exp(s - s.max())
            w /= w.sum()
            weights[b, i] = w
            out[b, i] = w @ v[b]
            if qmask is not None and not qmask[b, i]:
                out[b, i] = 0
    return out, weights


def _data(rng, B=2, Tq=3, Tv=4, d=5, dv=3, key=False):
    dv = dv if key else d                 # without a key the value is the key
    q = rng.standard_normal((B, Tq, d))
    v = rng.standard_normal((B, Tv, dv))
    k = rng.standard_normal((B, Tv, d)) if key else None
    return q, v, k


@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("key", [False, True])
def test_dot_attention_forward(use_scale, key):
    rng = np.random.default_rng(0)
    q, v, k = _data(rng, key=key)
    layer = fr.Attention(use_scale=use_scale, **F64)
    xs = [q, v] + ([k] if key else [])
    layer.build([a.shape for a in xs])
    scale = 1.0
    if use_scale:
        layer.params["scale"] = np.array([0.7])
        scale = 0.7
    out, w = layer(xs, return_attention_scores=True)
    want, ww = loop_attention(q, v, k, score=lambda a, b: scale * (a @ b))
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_allclose(w, ww, rtol=1e-12)


@pytest.mark.parametrize("use_scale", [False, True])
def test_additive_attention_forward(use_scale):
    rng = np.random.default_rng(1)
    q, v, k = _data(rng, key=True, dv=5)
    layer = fr.AdditiveAttention(use_scale=use_scale, seed=3, **F64)
    out = layer([q, v, k])
    s = layer.params["scale"] if use_scale else np.ones(5)
    want, _ = loop_attention(q, v, k, score=lambda a, b: np.sum(s * np.tanh(a + b)))
    np.testing.assert_allclose(out, want, rtol=1e-12)
    if use_scale:
        assert layer.params["scale"].shape == (5,)
        assert np.all(layer.params["scale"] != 0)


@pytest.mark.parametrize("cls", [fr.Attention, fr.AdditiveAttention])
def test_masks_and_causal(cls):
    rng = np.random.default_rng(2)
    q, v, _ = _data(rng, Tq=4, Tv=4, d=3, dv=3)
    qmask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    vmask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    layer = cls(use_scale=False, **F64)
    score = (lambda a, b: a @ b) if cls is fr.Attention else \
        (lambda a, b: np.sum(np.tanh(a + b)))
    for causal in (False, True):
        out, w = layer([q, v], mask=[qmask, vmask], use_causal_mask=causal,
                       return_attention_scores=True)
        want, ww = loop_attention(q, v, qmask=qmask, vmask=vmask, causal=causal, score=score)
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(w, ww, rtol=1e-12, atol=1e-300)
    assert np.all(w[0, :, 2:] < 1e-300)                   # masked values get no weight
    np.testing.assert_array_equal(layer.compute_mask([q, v], [qmask, vmask]), qmask)
    # the constructor's causal flag is the default of use_causal_mask
    c = cls(use_scale=False, causal=True, **F64)
    np.testing.assert_allclose(c([q, v]), layer([q, v], use_causal_mask=True), rtol=1e-15)


@pytest.mark.parametrize("cls", [fr.Attention, fr.AdditiveAttention])
@pytest.mark.parametrize("key", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients(cls, key, masked):
    rng = np.random.default_rng(3)
    q, v, k = _data(rng, key=key, Tq=3, Tv=4, d=3, dv=2)
    layer = cls(use_scale=True, seed=5, **F64)
    xs = [q, v] + ([k] if key else [])
    layer.build([a.shape for a in xs])
    if cls is fr.Attention:
        layer.params["scale"] = np.array([1.3])
    kw = {}
    if masked:
        kw = {"mask": [np.array([[1, 1, 0], [1, 1, 1]], bool),
                       np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)], "use_causal_mask": True}
    check_layer_grads(layer, xs, rng, fwd_kw=kw)
    # with the weights returned as a second output, their gradient flows too
    check_layer_grads(layer, xs, rng, fwd_kw=dict(kw, return_attention_scores=True), multi=True)


@pytest.mark.parametrize("cls", [fr.Attention, fr.AdditiveAttention])
def test_step_equals_forward_rows(cls):
    rng = np.random.default_rng(4)
    q, v, _ = _data(rng, d=5, dv=5)
    vmask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    layer = cls(seed=1, **F64)
    out, w = layer([q, v], mask=[None, vmask], return_attention_scores=True)
    for i in range(q.shape[1]):
        ctx, wt = layer.step(q[:, i], v, value_mask=vmask)
        np.testing.assert_allclose(ctx, out[:, i], rtol=1e-13)
        np.testing.assert_allclose(wt, w[:, i], rtol=1e-13)


def test_shapes_errors_and_config():
    att = fr.Attention(use_scale=True, causal=True)
    assert att.compute_output_shape([(None, 3, 4), (None, 7, 2), (None, 7, 4)]) == (None, 3, 2)
    assert att.compute_output_shape([(None, 3, 4), (None, 7, 4)],
                                    return_attention_scores=True) == [(None, 3, 4), (None, 3, 7)]
    with pytest.raises(ValueError, match="same feature size"):
        att.compute_output_shape([(None, 3, 4), (None, 7, 2), (None, 7, 5)])
    with pytest.raises(ValueError, match="same number of steps"):
        att.compute_output_shape([(None, 3, 4), (None, 7, 2), (None, 6, 4)])
    with pytest.raises(TypeError, match="list"):
        att(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="value_mask must have shape"):
        att([np.zeros((2, 3, 4)), np.zeros((2, 5, 4))], mask=[None, np.ones((2, 4), bool)])
    for layer in (att, fr.AdditiveAttention(use_scale=False, seed=2)):
        again = deserialize(serialize(layer))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


# ---- Keras parity (a scratch environment with keras and the torch backend) ----------------
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras parity runs with the torch backend")
    return keras


@pytest.mark.parametrize("cls_name", ["Attention", "AdditiveAttention"])
@pytest.mark.parametrize("use_scale", [False, True])
def test_matches_keras(cls_name, use_scale):
    keras = _keras()
    rng = np.random.default_rng(7)
    q, v, k = _data(rng, Tq=4, Tv=5, d=3, dv=3, key=True)
    qmask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    vmask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    kl = getattr(keras.layers, cls_name)(use_scale=use_scale, dtype="float64")
    ours = getattr(fr, cls_name)(use_scale=use_scale, seed=0, **F64)
    for causal in (False, True):
        want, wscores = kl([q, v, k], mask=[qmask, vmask], use_causal_mask=causal,
                           return_attention_scores=True)
        if use_scale:
            ours.build([q.shape, v.shape, k.shape])
            ours.params["scale"] = np.reshape(keras.ops.convert_to_numpy(kl.scale),
                                              ours.params["scale"].shape)
        out, w = ours([q, v, k], mask=[qmask, vmask], use_causal_mask=causal,
                      return_attention_scores=True)
        # Keras's torch backend runs matmul in float32 even for float64 inputs: compare at
        # float32 rounding
        np.testing.assert_allclose(out, keras.ops.convert_to_numpy(want), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(w, keras.ops.convert_to_numpy(wscores), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("name,kw", [("Concatenate", {"axis": -1}), ("Concatenate", {"axis": 1}),
                                     ("Add", {}), ("Subtract", {}), ("Multiply", {}),
                                     ("Average", {}), ("Dot", {"axes": 2}),
                                     ("Dot", {"axes": (1, 1), "normalize": True})])
def test_merge_layers_match_keras(name, kw):
    keras = _keras()
    rng = np.random.default_rng(8)
    n = 2 if name in ("Subtract", "Dot") else 3
    xs = [rng.standard_normal((2, 4, 3)) for _ in range(n)]
    want = keras.ops.convert_to_numpy(getattr(keras.layers, name)(dtype="float64", **kw)(xs))
    got = getattr(fr, name)(**kw, **F64)(xs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)     # float32 matmul in Keras


# ---- MultiHeadAttention -------------------------------------------------------------------
def loop_mha(layer, q, v, k, mask):
    """Head by head, query row by query row."""
    p = layer.params
    N, H = layer.num_heads, layer.key_dim
    B, T, S = q.shape[0], q.shape[1], k.shape[1]
    out = np.zeros((B, T, p["output_kernel"].shape[2]))
    weights = np.zeros((B, N, T, S))
    for b in range(B):
        for n in range(N):
            Q = q[b] @ p["query_kernel"][:, n] + p["query_bias"][n]
            K = k[b] @ p["key_kernel"][:, n] + p["key_bias"][n]
            V = v[b] @ p["value_kernel"][:, n] + p["value_bias"][n]
            for t in range(T):
                s = K @ Q[t] / np.sqrt(H)
                s = np.where(mask[b, t], s, -1e9)
                w = np.exp(s - s.max())
                w /= w.sum()
                weights[b, n, t] = w
                out[b, t] += (w @ V) @ p["output_kernel"][n]
        out[b] += p["output_bias"]
    return out, weights


def _mha(seed=0, **kw):
    layer = fr.MultiHeadAttention(2, 3, seed=seed, **F64, **kw)
    return layer


@pytest.mark.parametrize("key", [False, True])
def test_mha_forward_and_gradients(key):
    rng = np.random.default_rng(10)
    q = rng.standard_normal((2, 3, 4))
    v = rng.standard_normal((2, 5, 4 if not key else 3))
    k = rng.standard_normal((2, 5, 4)) if key else None
    layer = _mha(value_dim=2, output_shape=3)
    xs = [q, v] + ([k] if key else [])
    layer.build([a.shape for a in xs])
    for name in layer.params:                     # no zero biases in a correctness test
        if name.endswith("bias"):
            layer.params[name] = rng.standard_normal(layer.params[name].shape)
    qmask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    vmask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    out, w = layer(xs, mask=[qmask, vmask], use_causal_mask=True, return_attention_scores=True)
    full = qmask[:, :, None] & vmask[:, None, :] & (np.arange(3)[:, None] >= np.arange(5))
    want, ww = loop_mha(layer, q, v, k if key else v, full)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_allclose(w, ww, rtol=1e-12, atol=1e-300)
    kw = {"mask": [qmask, vmask], "use_causal_mask": True}
    check_layer_grads(layer, xs, rng, fwd_kw=kw)
    check_layer_grads(layer, xs, rng, fwd_kw=dict(kw, return_attention_scores=True), multi=True)


def test_mha_in_a_model_and_config():
    q = fr.Input((None, 4))
    v = fr.Input((None, 6))
    mha = fr.MultiHeadAttention(2, 3, seed=1)
    out = mha(q, v)                                # Keras's call form
    assert out.shape == (None, None, 4)
    model = fr.Model([q, v], out)
    again = fr.Model.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    for name in mha.params:
        assert again.layers[-1].params[name].shape == mha.params[name].shape


def test_mha_matches_keras():
    keras = _keras()
    rng = np.random.default_rng(11)
    q = rng.standard_normal((2, 4, 5))
    v = rng.standard_normal((2, 6, 3))
    k = rng.standard_normal((2, 6, 5))
    kl = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2, output_shape=4,
                                         dtype="float64")
    vmask = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)
    want, wscores = kl(q, v, k, value_mask=vmask, return_attention_scores=True,
                       use_causal_mask=True)
    ours = fr.MultiHeadAttention(2, 3, value_dim=2, output_shape=4, **F64)
    ours.build([q.shape, v.shape, k.shape])
    names = {"query": kl._query_dense, "key": kl._key_dense, "value": kl._value_dense,
             "output": kl._output_dense}
    for part, dense in names.items():
        ours.params[f"{part}_kernel"] = keras.ops.convert_to_numpy(dense.kernel)
        ours.params[f"{part}_bias"] = keras.ops.convert_to_numpy(dense.bias)
    out, w = ours([q, v, k], mask=[None, vmask], use_causal_mask=True,
                  return_attention_scores=True)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w, keras.ops.convert_to_numpy(wscores), rtol=1e-5, atol=1e-6)
