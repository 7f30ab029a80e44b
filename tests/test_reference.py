"""The NumPy reference against central finite differences (float64), and against PyTorch."""

import numpy as np
import pytest

from fastrnn import reference as ref

CELLS = {"rnn": 1, "lstm": 4, "gru": 3}


def make_problem(cell, T, B=3, I=4, H=5, seed=0, mask=False):
    rng = np.random.default_rng(seed)
    G = CELLS[cell]
    p = dict(
        x=rng.standard_normal((T, B, I)),
        h0=rng.standard_normal((B, H)) * 0.5,
        weight_ih=rng.uniform(-0.6, 0.6, (G * H, I)),
        weight_hh=rng.uniform(-0.6, 0.6, (G * H, H)),
        bias_ih=rng.uniform(-0.5, 0.5, G * H),
        bias_hh=rng.uniform(-0.5, 0.5, G * H),
    )
    if cell == "lstm":
        p["c0"] = rng.standard_normal((B, H)) * 0.5
    m = None
    if mask:
        m = rng.random((T, B)) > 0.35
    return p, m


def run_forward(cell, p, mask, activation="tanh", training=False):
    if cell == "rnn":
        y, h, cache = ref.rnn_forward(p["x"], p["h0"], p["weight_ih"], p["weight_hh"],
                                      p["bias_ih"], p["bias_hh"], activation=activation,
                                      mask=mask, training=training)
        return (y, h), cache
    if cell == "gru":
        y, h, cache = ref.gru_forward(p["x"], p["h0"], p["weight_ih"], p["weight_hh"],
                                      p["bias_ih"], p["bias_hh"], mask=mask, training=training)
        return (y, h), cache
    y, h, c, cache = ref.lstm_forward(p["x"], p["h0"], p["c0"], p["weight_ih"], p["weight_hh"],
                                      p["bias_ih"], p["bias_hh"], mask=mask, training=training)
    return (y, h, c), cache


def run_backward(cell, cache, douts):
    if cell == "lstm":
        return ref.lstm_backward(cache, *douts)
    fn = ref.rnn_backward if cell == "rnn" else ref.gru_backward
    return fn(cache, *douts)


@pytest.mark.parametrize("cell,activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None),
                                             ("gru", None)])
@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_finite_differences(cell, activation, T, masked):
    p, mask = make_problem(cell, T, seed=T + 10 * masked, mask=masked)
    act = activation or "tanh"
    outs, cache = run_forward(cell, p, mask, act, training=True)
    rng = np.random.default_rng(123)
    douts = [rng.standard_normal(o.shape) for o in outs]   # random projection of every output

    def loss():
        o, _ = run_forward(cell, p, mask, act)
        return sum(float(np.sum(a * d)) for a, d in zip(o, douts))

    grads = run_backward(cell, cache, douts[0:1] + douts[1:])
    eps = 1e-6
    for name, value in p.items():
        key = name if name in grads else None
        assert key is not None, f"backward returned no gradient for {name}"
        num = np.zeros_like(value)
        flat, nflat = value.reshape(-1), num.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + eps
            lp = loss()
            flat[k] = old - eps
            lm = loss()
            flat[k] = old
            nflat[k] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{cell} d{name} T={T} mask={masked}")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_masked_steps_carry_state_and_get_no_gradient(cell):
    p, _ = make_problem(cell, 5, B=2, seed=3)
    mask = np.ones((5, 2), dtype=bool)
    mask[3:, 1] = False                       # sequence 1 has length 3 (right padded)
    outs, cache = run_forward(cell, p, mask, training=True)
    y = outs[0]
    np.testing.assert_array_equal(y[3, 1], y[2, 1])
    np.testing.assert_array_equal(y[4, 1], y[2, 1])
    np.testing.assert_array_equal(outs[1][1], y[2, 1])
    # same as running sequence 1 alone for 3 steps
    alone = {k: (v[:3, 1:2] if k == "x" else v[1:2] if k in ("h0", "c0") else v)
             for k, v in p.items()}
    outs1, _ = run_forward(cell, alone, None)
    np.testing.assert_allclose(outs[1][1:2], outs1[1], rtol=1e-12)
    # a gradient injected on padded outputs only flows back to the last real state
    d = np.zeros_like(y)
    d[4, 1] = 1.0
    g = run_backward(cell, cache, [d] + [None] * (len(outs) - 1))
    assert np.all(g["x"][3:, 1] == 0)
    assert np.any(g["x"][:3, 1] != 0)


def test_saturation_and_nan_propagation():
    x = np.array([[[-1e4, -89.0, 0.0, 89.0, 1e4, np.inf, -np.inf, np.nan]]]).reshape(8, 1, 1)
    w_ih, w_hh = np.full((4, 1), 1.0), np.zeros((4, 1))
    b = np.zeros(4)
    with np.errstate(all="raise"):
        y, h, c, _ = ref.lstm_forward(x, np.zeros((1, 1)), np.zeros((1, 1)), w_ih, w_hh, b, b)
    assert np.isnan(y[-1]).all()
    assert np.all(np.abs(y[:-1]) <= 1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_torch(cell):
    torch = pytest.importorskip("torch")
    p, _ = make_problem(cell, 6, B=2, I=3, H=4, seed=7)
    mod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](3, 4).double()
    with torch.no_grad():
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(mod, k + "_l0").copy_(torch.from_numpy(p[k]))
        hx = torch.from_numpy(p["h0"])[None]
        if cell == "lstm":
            hx = (hx, torch.from_numpy(p["c0"])[None])
        out, state = mod(torch.from_numpy(p["x"]), hx)
    outs, _ = run_forward(cell, p, None)
    np.testing.assert_allclose(outs[0], out.numpy(), rtol=1e-12, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(outs[2], state[1][0].numpy(), rtol=1e-12, atol=1e-12)
