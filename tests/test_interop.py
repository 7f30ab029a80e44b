"""Weights from PyTorch modules and Keras weight lists give the same numbers."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import interop


def sig(a):
    return 1 / (1 + np.exp(-a))


def keras_forward(kind, x, weights, reset_after=True):
    """Keras 3's equations (keras/src/layers/rnn/*.py), written independently, batch-first."""
    K, U = weights[0], weights[1]
    b = weights[2] if len(weights) > 2 else None
    B, T, _ = x.shape
    H = U.shape[0]
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    for t in range(T):
        if kind == "gru":
            bi = b[0] if b is not None else 0
            br = b[1] if b is not None else 0
            xz, xr, xh = np.split(x[:, t] @ K + bi, 3, axis=1)
            hz, hr, hh = np.split(h @ U + br, 3, axis=1)
            z, r = sig(xz + hz), sig(xr + hr)
            hh = np.tanh(xh + r * hh)
            h = z * h + (1 - z) * hh
        elif kind == "lstm":
            zz = x[:, t] @ K + h @ U + (b if b is not None else 0)
            i, f, g, o = np.split(zz, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
        else:
            h = np.tanh(x[:, t] @ K + h @ U + (b if b is not None else 0))
    return h


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_keras_weights_give_keras_numbers_and_round_trip(kind):
    rng = np.random.default_rng(0)
    I, H, G = 3, 4, {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    weights = [rng.uniform(-.7, .7, (I, G * H)), rng.uniform(-.7, .7, (H, G * H)),
               rng.uniform(-.5, .5, (2, G * H) if kind == "gru" else (G * H,))]
    cls = {"rnn": fr.SimpleRNN, "lstm": fr.LSTM, "gru": fr.GRU}[kind]
    layer = interop.load_keras_weights(cls(H, dtype="float64"), weights)
    x = rng.standard_normal((2, 5, I))
    np.testing.assert_allclose(layer(x), keras_forward(kind, x, weights), rtol=1e-10)
    back = interop.to_keras_weights(layer)
    again = interop.load_keras_weights(cls(H, dtype="float64"), back)
    np.testing.assert_allclose(again(x), layer(x), rtol=1e-12)
    if kind == "gru":
        for a, b in zip(back, weights):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_keras_reset_before_gru_is_rejected():
    rng = np.random.default_rng(0)
    w = [rng.standard_normal((3, 12)), rng.standard_normal((4, 12)), rng.standard_normal(12)]
    layer = fr.GRU(4)
    with pytest.raises(ValueError, match="reset_after=False"):
        interop.load_keras_weights(layer, w)
    assert not layer.built


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_from_torch_two_layer_stack(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = getattr(torch.nn, kind)(3, 5, num_layers=2, batch_first=True).double()
    layers = interop.from_torch(mod)
    assert [type(l).__name__ for l in layers] == [{"RNN": "SimpleRNN"}.get(kind, kind)] * 2
    x = np.random.default_rng(1).standard_normal((2, 6, 3))
    y = x
    for layer in layers:
        y = layer(y)
    with torch.no_grad():
        ty, _ = mod(torch.from_numpy(x))
    np.testing.assert_allclose(y, ty[:, -1].numpy(), rtol=1e-10, atol=1e-12)


def test_load_torch_weights_checks_before_writing():
    torch = pytest.importorskip("torch")
    mod = torch.nn.LSTM(3, 5)
    layer = fr.LSTM(6, input_size=3, seed=0)
    before = layer.params["weight_ih"].copy()
    with pytest.raises(ValueError, match="hidden_size"):
        interop.load_torch_weights(layer, mod)
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        interop.load_torch_weights(layer, torch.nn.GRU(3, 6))
    np.testing.assert_array_equal(layer.params["weight_ih"], before)


# ---------------------------------------------------------------------------------------------
# from_torch(as_module=True): the module's signature, layout, packed sequences, initial states
# ---------------------------------------------------------------------------------------------

def _torch_case(kind, bidirectional, batch_first, seed=0):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    mod = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=bidirectional,
                                  batch_first=batch_first).double()
    return torch, mod


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_torch_module_with_lengths_and_initial_state(kind, bidirectional, batch_first):
    torch, mod = _torch_case(kind, bidirectional, batch_first)
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    rng = np.random.default_rng(1)
    B, T, D = 3, 6, 2 if bidirectional else 1
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    lengths = np.array([4, 6, 2])
    h0 = rng.standard_normal((2 * D, B, 4))
    hx = (h0, rng.standard_normal((2 * D, B, 4))) if kind == "LSTM" else h0
    rnn = interop.from_torch(mod, as_module=True)
    out, state = rnn(x, hx=hx, lengths=lengths)
    thx = tuple(torch.from_numpy(a) for a in hx) if kind == "LSTM" else torch.from_numpy(hx)
    with torch.no_grad():
        packed = pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                      batch_first=batch_first, enforce_sorted=False)
        tout, tstate = mod(packed, thx)
        tout, _ = pad_packed_sequence(tout, batch_first=batch_first, total_length=T)
    np.testing.assert_allclose(out, tout.numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(state if kind == "LSTM" else [state],
                    tstate if kind == "LSTM" else [tstate]):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)
    # a PackedSequence in gives a PackedSequence out, with the same numbers
    pout, pstate = rnn(packed, hx=hx)
    pout, _ = pad_packed_sequence(pout, batch_first=batch_first, total_length=T)
    np.testing.assert_allclose(pout.numpy(), tout.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_module_time_major_without_lengths(kind):
    torch, mod = _torch_case(kind, True, False, seed=3)
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    out, state = interop.from_torch(mod, as_module=True)(torch.from_numpy(x))
    with torch.no_grad():
        tout, tstate = mod(torch.from_numpy(x))
    np.testing.assert_allclose(out, tout.numpy(), rtol=1e-10, atol=1e-12)
    h = state[0] if kind == "LSTM" else state
    th = tstate[0] if kind == "LSTM" else tstate
    np.testing.assert_allclose(h, th.numpy(), rtol=1e-10, atol=1e-12)


def test_from_torch_warns_for_time_major_module_and_checks_arguments():
    torch, mod = _torch_case("GRU", False, False)
    with pytest.warns(UserWarning, match="batch_first=False"):
        interop.from_torch(mod)
    rnn = interop.from_torch(mod, as_module=True)
    x = np.zeros((4, 2, 3))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 4\]"):
        rnn(x, lengths=[5, 1])
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        rnn(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"h_0 must have shape \(D\*num_layers, batch, "
                                         r"hidden_size\) = \(2, 2, 4\)"):
        rnn(x, hx=np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="must have 3 features"):
        rnn(np.zeros((4, 2, 5)))
