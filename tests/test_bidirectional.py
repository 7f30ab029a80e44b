"""Bidirectional: against torch bidirectional RNN/LSTM/GRU (outputs and gradients), merge modes
against finite differences, states, masks, parameters and config."""

import json

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.layers import Bidirectional, deserialize, serialize

CELLS = {"rnn": fr.SimpleRNN, "lstm": fr.LSTM, "gru": fr.GRU}
PNAMES = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]

pytestmark = pytest.mark.filterwarnings("ignore:fastrnn's compiled kernels:RuntimeWarning")


def make(cell, H=5, I=4, seed=0, merge_mode="concat", **kw):
    return Bidirectional(CELLS[cell](H, input_size=I, dtype="float64", seed=seed, **kw),
                         merge_mode=merge_mode)


def torch_twin(torch, layer, cell):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    mod = cls(layer.input_size, layer.units, batch_first=True, bidirectional=True,
              dtype=torch.float64)
    with torch.no_grad():
        for p in PNAMES:
            getattr(mod, p + "_l0").copy_(torch.from_numpy(layer.params["forward_" + p]))
            getattr(mod, p + "_l0_reverse").copy_(torch.from_numpy(layer.params["backward_" + p]))
    return mod


def torch_grads(mod):
    g = {}
    for p in PNAMES:
        g["forward_" + p] = getattr(mod, p + "_l0").grad.numpy()
        g["backward_" + p] = getattr(mod, p + "_l0_reverse").grad.numpy()
    return g


TOL = dict(rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_matches_torch_outputs_states_and_gradients(cell, return_sequences):
    torch = pytest.importorskip("torch")
    B, T, I, H = 3, 6, 4, 5
    layer = make(cell, H, I, seed=1, return_sequences=return_sequences, return_state=True)
    mod = torch_twin(torch, layer, cell)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, I))
    n = 2 if cell == "lstm" else 1
    init = [0.5 * rng.standard_normal((B, H)) for _ in range(2 * n)]
    outs = layer.forward(x, initial_state=init, training=True)
    assert isinstance(outs, list) and len(outs) == 1 + 2 * n

    tx = torch.from_numpy(x).requires_grad_()
    if cell == "lstm":
        th = torch.from_numpy(np.stack([init[0], init[2]])).requires_grad_()
        tc = torch.from_numpy(np.stack([init[1], init[3]])).requires_grad_()
        ty, (thn, tcn) = mod(tx, (th, tc))
        tstates = [thn[0], tcn[0], thn[1], tcn[1]]
    else:
        th = torch.from_numpy(np.stack([init[0], init[1]])).requires_grad_()
        ty, thn = mod(tx, th)
        tstates = [thn[0], thn[1]]
    if return_sequences:
        tout = ty
    else:   # Keras: last forward output and the backward direction's final state
        tout = torch.cat([thn[0], thn[1]], dim=-1)
    np.testing.assert_allclose(outs[0], tout.detach().numpy(), **TOL)
    for mine, theirs in zip(outs[1:], tstates):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), **TOL)

    d_out = rng.standard_normal(outs[0].shape)
    d_states = [rng.standard_normal((B, H)) for _ in range(2 * n)]
    dx = layer.backward(d_out, d_states)
    total = (tout * torch.from_numpy(d_out)).sum()
    for s, d in zip(tstates, d_states):
        total = total + (s * torch.from_numpy(d)).sum()
    total.backward()
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL)
    for k, v in torch_grads(mod).items():
        np.testing.assert_allclose(layer.grads[k], v, err_msg=k, **TOL)
    if cell == "lstm":
        dh0 = [layer.d_initial_state[0], layer.d_initial_state[2]]
        dc0 = [layer.d_initial_state[1], layer.d_initial_state[3]]
        np.testing.assert_allclose(np.stack(dh0), th.grad.numpy(), **TOL)
        np.testing.assert_allclose(np.stack(dc0), tc.grad.numpy(), **TOL)
    else:
        np.testing.assert_allclose(np.stack(layer.d_initial_state), th.grad.numpy(), **TOL)


def numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("cell,return_sequences", [("lstm", True), ("gru", False), ("rnn", True)])
def test_merge_modes_finite_differences(merge_mode, cell, return_sequences):
    B, T, I, H = 2, 3, 3, 2
    inner = CELLS[cell](H, input_size=I, dtype="float64", seed=3, backend="numpy",
                        return_sequences=return_sequences)
    layer = Bidirectional(inner, merge_mode=merge_mode)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, T, I))
    y = layer.forward(x, training=True)
    width = 2 * H if merge_mode == "concat" else H
    assert y.shape == ((B, T, width) if return_sequences else (B, width))
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x, training=True)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    for name in layer.params:
        np.testing.assert_allclose(layer.grads[name], numeric_grad(loss, layer.params[name]),
                                   rtol=1e-6, atol=1e-9, err_msg=name)


def test_backward_direction_is_flipped_back_to_input_order():
    # the backward half at time t only depends on x[t:], the forward half only on x[:t+1]
    layer = make("gru", H=3, I=2, seed=5, return_sequences=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 6, 2))
    y1 = layer.forward(x)
    x2 = x.copy()
    x2[0, 0] += 1.0        # change only the first step
    y2 = layer.forward(x2)
    assert not np.allclose(y1[0, :, :3], y2[0, :, :3])       # forward half changes everywhere
    np.testing.assert_allclose(y1[0, 1:, 3:], y2[0, 1:, 3:])  # backward half only at t=0
    assert not np.allclose(y1[0, 0, 3:], y2[0, 0, 3:])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_right_padded_mask_equals_each_sequence_alone(cell):
    B, T, I, H = 3, 7, 3, 4
    lengths = [7, 4, 2]
    layer = make(cell, H, I, seed=6, return_sequences=True, return_state=True)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, I))
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    x[~mask] = rng.standard_normal(x[~mask].shape) * 100   # garbage in the padding
    outs = layer.forward(x, mask=mask, training=True)
    r = rng.standard_normal(outs[0].shape)
    r[~mask] = 0            # a masked loss gives padded outputs no gradient
    dx = layer.backward(r)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    sum_grads = {k: 0 for k in grads}
    for b, L in enumerate(lengths):
        alone = layer.forward(x[b:b + 1, :L], training=True)
        np.testing.assert_allclose(outs[0][b, :L], alone[0][0], rtol=1e-10, atol=1e-12)
        for s_pad, s_alone in zip(outs[1:], alone[1:]):
            np.testing.assert_allclose(s_pad[b], s_alone[0], rtol=1e-10, atol=1e-12)
        dxb = layer.backward(r[b:b + 1, :L])
        np.testing.assert_allclose(dx[b, :L], dxb[0], rtol=1e-9, atol=1e-12)
        for k in grads:
            sum_grads[k] = sum_grads[k] + layer.grads[k]
    assert (dx[~mask] == 0).all()       # padded steps get no gradient
    for k in grads:
        np.testing.assert_allclose(grads[k], sum_grads[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert layer.compute_mask(x, mask) is mask


def test_params_prefixed_shared_and_assignable():
    inner = fr.LSTM(4, input_size=3, seed=0)
    layer = Bidirectional(inner)
    names = list(layer.params)
    assert names == ["forward_" + p for p in PNAMES] + ["backward_" + p for p in PNAMES]
    # the wrapped layer's weights are copied into the forward direction
    np.testing.assert_array_equal(layer.params["forward_weight_ih"], inner.params["weight_ih"])
    # the backward direction is initialised independently
    assert not np.array_equal(layer.params["forward_weight_ih"], layer.params["backward_weight_ih"])
    # reads give the direction's own array (in-place optimizer updates reach it)
    assert layer.params["backward_weight_hh"] is layer.backward_layer.params["weight_hh"]
    new = np.ones((16, 4))
    layer.params["backward_weight_hh"] = new
    np.testing.assert_array_equal(layer.backward_layer.params["weight_hh"], new)
    assert layer.backward_layer.params["weight_hh"].dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        layer.params["backward_weight_hh"] = np.ones((3, 3))
    with pytest.raises(KeyError):
        layer.params["weight_hh"] = new
    assert layer.count_params() == 2 * inner.count_params()


def test_output_shapes():
    assert make("lstm", 5, 4, return_sequences=True).compute_output_shape((None, 7, 4)) == (None, 7, 10)
    assert make("gru", 5, 4, merge_mode="sum").compute_output_shape((None, 7, 4)) == (None, 5)
    s = make("lstm", 5, 4, return_state=True).compute_output_shape((None, 7, 4))
    assert s == [(None, 10), (None, 5), (None, 5), (None, 5), (None, 5)]


def test_lazy_build_and_seeds():
    a = Bidirectional(fr.GRU(3, seed=11))
    b = Bidirectional(fr.GRU(3, seed=11))
    assert not a.built
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert a.built and a.input_size == 5
    assert not np.array_equal(a.params["forward_weight_ih"], a.params["backward_weight_ih"])


def test_config_roundtrip():
    layer = Bidirectional(fr.LSTM(4, return_sequences=True, seed=2), merge_mode="ave")
    d = json.loads(json.dumps(serialize(layer)))
    clone = deserialize(d)
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), layer.forward(x))


def test_bad_arguments():
    with pytest.raises(TypeError, match="layer"):
        Bidirectional(fr.Dense(3))
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(fr.LSTM(3), merge_mode="max")
    layer = make("lstm", 3, 2)
    x = np.zeros((2, 4, 2))
    with pytest.raises(ValueError, match="initial_state"):
        layer.forward(x, initial_state=[np.zeros((2, 3))] * 2)
    with pytest.raises(ValueError, match="3 dimensions"):
        Bidirectional(fr.GRU(3)).forward(np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="training=True"):
        make("gru", 3, 2).backward(np.zeros((2, 6)))
    layer.forward(x, training=True)
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((2, 3)))
    with pytest.raises(NotImplementedError):
        layer.step(np.zeros((2, 2)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_masked_matches_torch_packed_sequence(cell):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    B, T, I, H = 4, 6, 3, 5
    lengths = [6, 5, 2, 1]
    layer = make(cell, H, I, seed=8, return_sequences=True, return_state=True)
    mod = torch_twin(torch, layer, cell)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((B, T, I))
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    outs = layer.forward(x, mask=mask)
    packed = pack_padded_sequence(torch.from_numpy(x), torch.tensor(lengths), batch_first=True)
    ty, state = mod(packed)
    ty, _ = pad_packed_sequence(ty, batch_first=True, total_length=T)
    ty = ty.detach().numpy()
    np.testing.assert_allclose(outs[0][mask], ty[mask], **TOL)
    hn = (state[0] if cell == "lstm" else state).detach().numpy()
    np.testing.assert_allclose(outs[1], hn[0], **TOL)
    np.testing.assert_allclose(outs[3 if cell == "lstm" else 2], hn[1], **TOL)
    if cell == "lstm":
        cn = state[1].detach().numpy()
        np.testing.assert_allclose(outs[2], cn[0], **TOL)
        np.testing.assert_allclose(outs[4], cn[1], **TOL)
