"""Recurrent dropout (Keras / Gal semantics) and input dropout of the recurrent layers.

Chain of oracles: the NumPy reference with a recurrent mask against central finite
differences (float64); the functional entry points (compiled kernels and reference) against
the reference; the layers against the reference run with the very masks they drew. The
kernels themselves are checked against the reference over shapes, dtypes, masks, threads
and instruction sets in test_engine.py / test_engine_isa.py.
"""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import functional as F
from fastrnn import reference as ref

G = {"rnn": 1, "lstm": 4, "gru": 3}


def _problem(cell, T=5, B=3, I=4, H=5, seed=0, mask=False):
    rng = np.random.default_rng(seed)
    g = G[cell]
    p = dict(x=rng.standard_normal((T, B, I)), h0=rng.standard_normal((B, H)) * 0.5,
             weight_ih=rng.uniform(-0.6, 0.6, (g * H, I)),
             weight_hh=rng.uniform(-0.6, 0.6, (g * H, H)),
             bias_ih=rng.uniform(-0.5, 0.5, g * H), bias_hh=rng.uniform(-0.5, 0.5, g * H))
    if cell == "lstm":
        p["c0"] = rng.standard_normal((B, H)) * 0.5
    keep = rng.random((B, H)) >= 0.4
    rmask = keep / 0.6                                   # inverted dropout, some zeros
    m = (rng.random((T, B)) > 0.3) if mask else None
    return p, rmask, m


def _fwd(cell, p, rmask, mask, training=True):
    args = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    if cell == "lstm":
        y, h, c, cache = ref.lstm_forward(p["x"], p["h0"], p["c0"], *args, mask=mask,
                                          training=training, recurrent_mask=rmask)
        return (y, h, c), cache
    fn = ref.rnn_forward if cell == "rnn" else ref.gru_forward
    y, h, cache = fn(p["x"], p["h0"], *args, mask=mask, training=training, recurrent_mask=rmask)
    return (y, h), cache


def _loss(outs, weights):
    return sum(float((o * w).sum()) for o, w in zip(outs, weights))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True])
def test_reference_recurrent_dropout_matches_finite_differences(cell, masked):
    p, rmask, mask = _problem(cell, seed=3 + masked, mask=masked)
    outs, cache = _fwd(cell, p, rmask, mask)
    rng = np.random.default_rng(7)
    weights = [rng.standard_normal(o.shape) for o in outs]
    bwd = {"rnn": ref.rnn_backward, "lstm": ref.lstm_backward, "gru": ref.gru_backward}[cell]
    grads = bwd(cache, *weights)
    eps = 1e-6
    for name in p:
        arr = p[name]
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = _loss(_fwd(cell, p, rmask, mask, False)[0], weights)
            arr[idx] = old - eps
            down = _loss(_fwd(cell, p, rmask, mask, False)[0], weights)
            arr[idx] = old
            num[idx] = (up - down) / (2 * eps)
        key = {"x": "x", "h0": "h0", "c0": "c0"}.get(name, name)
        np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-7, err_msg=f"{cell} {name}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_mask_enters_only_the_recurrent_product(cell):
    """A recurrent mask of ones changes nothing; a zero mask removes W_hh h_{t-1} only (the
    GRU's carry term z * h_{t-1} and the LSTM's cell state still see the state)."""
    p, _, _ = _problem(cell, T=3, seed=1)
    base, _ = _fwd(cell, p, None, None, False)
    ones, _ = _fwd(cell, p, np.ones_like(p["h0"]), None, False)
    for a, b in zip(base, ones):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    zero, _ = _fwd(cell, p, np.zeros_like(p["h0"]), None, False)
    q = dict(p, weight_hh=np.zeros_like(p["weight_hh"]))
    # with W_hh = 0 the product is b_hh whatever h is: same as masking h to zero
    nohh, _ = _fwd(cell, q, None, None, False)
    for a, b in zip(zero, nohh):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_functional_recurrent_mask_on_either_backend_matches_reference(cell, backend):
    """The compiled kernels take the mask themselves (no detour through the reference) and
    give the reference's outputs and gradients; bad masks are named errors."""
    p, rmask, mask = _problem(cell, seed=5, mask=True)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    fn = getattr(F, f"{cell}_forward")
    args = [p32["x"], p32["h0"]] + ([p32["c0"]] if cell == "lstm" else []) + [
        p32["weight_ih"], p32["weight_hh"], p32["bias_ih"], p32["bias_hh"]]
    out = fn(*args, mask=mask, training=True, backend=backend, recurrent_mask=rmask)
    cache = out[-1]
    assert cache.backend == backend
    expected, ref_cache = _fwd(cell, p, rmask, mask)
    for a, b in zip(out[:-1], expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    rng = np.random.default_rng(11)
    douts = [rng.standard_normal(o.shape) for o in expected]
    grads = getattr(F, f"{cell}_backward")(cache, *[d.astype(np.float32) for d in douts])
    want = {"rnn": ref.rnn_backward, "lstm": ref.lstm_backward,
            "gru": ref.gru_backward}[cell](ref_cache, *douts)
    assert set(grads) == set(want)
    for k in want:
        assert grads[k].dtype == np.float32
        np.testing.assert_allclose(grads[k], want[k], rtol=2e-4, atol=2e-4, err_msg=k)
    with pytest.raises(ValueError, match=r"recurrent_mask must have shape \(3, 5\)"):
        fn(*args, training=True, backend=backend, recurrent_mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match="recurrent_mask must be finite"):
        fn(*args, training=True, backend=backend, recurrent_mask=np.full((3, 5), np.nan))
    with pytest.raises(TypeError, match="recurrent_mask must be float32 or float64"):
        fn(*args, training=True, backend=backend, recurrent_mask=np.ones((3, 5), bool))


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_mutating_the_recurrent_mask_after_forward_changes_nothing(backend):
    p, rmask, _ = _problem("lstm", seed=8)
    args = [p[k] for k in ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    dy = np.random.default_rng(2).standard_normal((5, 3, 5))

    def grads(mutate):
        rm = rmask.copy()
        cache = F.lstm_forward(*args, training=True, backend=backend, recurrent_mask=rm)[-1]
        if mutate:
            rm[:] = 1.0
        return F.lstm_backward(cache, dy)

    clean, mutated = grads(False), grads(True)
    for k in clean:
        np.testing.assert_array_equal(mutated[k], clean[k], err_msg=k)


@pytest.mark.parametrize("cls,cell", [(fr.SimpleRNN, "rnn"), (fr.LSTM, "lstm"), (fr.GRU, "gru")])
def test_layer_dropout_matches_reference_with_its_masks(cls, cell):
    B, T, I, H = 4, 6, 3, 5
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I))
    layer = cls(H, input_size=I, dtype="float64", seed=2, dropout=0.3, recurrent_dropout=0.4,
                return_sequences=True, use_bias=True, bias_initializer="uniform")
    y = layer.forward(x, training=True)
    in_mask = layer._drop
    rmask = layer._cache[0].inner["rmask"]
    assert in_mask.shape == (B, I) and rmask.shape == (B, H)
    # inverted dropout: zeros and 1/(1-rate) only
    assert set(np.unique(in_mask)) <= {0.0, 1 / 0.7} and set(np.unique(rmask)) <= {0.0, 1 / 0.6}
    assert (in_mask == 0).any() and (rmask == 0).any()
    p = {k: v for k, v in layer.params.items()}
    p["x"] = (x * in_mask[:, None, :]).transpose(1, 0, 2).copy()
    p["h0"] = np.zeros((B, H))
    if cell == "lstm":
        p["c0"] = np.zeros((B, H))
    outs, cache = _fwd(cell, p, rmask, None)
    np.testing.assert_allclose(y, outs[0].transpose(1, 0, 2), rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    bwd = {"rnn": ref.rnn_backward, "lstm": ref.lstm_backward, "gru": ref.gru_backward}[cell]
    g = bwd(cache, dy.transpose(1, 0, 2), None, *([None] if cell == "lstm" else []))
    np.testing.assert_allclose(dx, g["x"].transpose(1, 0, 2) * in_mask[:, None, :],
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight_hh"], g["weight_hh"], rtol=1e-10, atol=1e-12)
    # inference is unaffected by both rates
    plain = cls(H, input_size=I, dtype="float64", seed=2, return_sequences=True,
                bias_initializer="uniform")
    np.testing.assert_allclose(layer.forward(x), plain.forward(x), rtol=1e-12)


def test_dropout_masks_are_per_sequence_seeded_and_fresh_per_batch():
    x = np.random.default_rng(1).standard_normal((2, 50, 3))
    a = fr.LSTM(4, input_size=3, seed=9, dropout=0.5, return_sequences=True)
    b = fr.LSTM(4, input_size=3, seed=9, dropout=0.5, return_sequences=True)
    ya, yb = a.forward(x, training=True), b.forward(x, training=True)
    np.testing.assert_array_equal(ya, yb)             # same seed, same masks
    m1 = a._drop
    a.forward(x, training=True)
    assert not np.array_equal(m1, a._drop)           # a new mask for the next batch
    a.reset_dropout()
    np.testing.assert_array_equal(a.forward(x, training=True), ya)


def test_dropout_rate_validation():
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\), got 1"):
        fr.GRU(3, recurrent_dropout=1)
    with pytest.raises(ValueError, match="dropout must be"):
        fr.LSTM(3, dropout=-0.1)


def test_fit_with_recurrent_dropout_learns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.float32)[:, None]
    m = fr.Sequential([fr.LSTM(8, input_size=2, dropout=0.1, recurrent_dropout=0.2, seed=0),
                       fr.Dense(1, activation="sigmoid")], seed=0)
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert m.evaluate(x, y)[1] > 0.75
