"""The public recurrent layers: against PyTorch (same weights), and their own contracts."""

import importlib.util
import re

import numpy as np
import pytest

import fastrnn as fr

HAVE_ENGINE = importlib.util.find_spec("fastrnn._engine.kernels") is not None
BACKENDS = ["numpy", pytest.param("cython", marks=pytest.mark.skipif(
    not HAVE_ENGINE, reason="compiled kernels not built"))]
CLASSES = {"rnn": fr.SimpleRNN, "lstm": fr.LSTM, "gru": fr.GRU}
TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-10)}


def make_layer(cell, H, I, dtype="float64", backend="numpy", seed=0, **kw):
    return CLASSES[cell](H, input_size=I, dtype=dtype, backend=backend, seed=seed, **kw)


def torch_twin(torch, layer, cell, activation="tanh"):
    kw = {"nonlinearity": activation} if cell == "rnn" else {}
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    mod = cls(layer.input_size, layer.units, batch_first=True, bias=layer.use_bias, **kw)
    mod = mod.to(torch.float64 if layer.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for name, value in layer.params.items():
            getattr(mod, name + "_l0").copy_(torch.from_numpy(value))
    return mod


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None),
                                             ("gru", None)])
def test_forward_and_gradients_match_torch(cell, activation, dtype, backend):
    torch = pytest.importorskip("torch")
    B, T, I, H = 3, 6, 5, 7
    kw = {"activation": activation} if activation else {}
    layer = make_layer(cell, H, I, dtype, backend, seed=4, return_sequences=True,
                       return_state=True, **kw)
    mod = torch_twin(torch, layer, cell, activation or "tanh")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    init = (h0, c0) if cell == "lstm" else h0
    outs = layer.forward(x, initial_state=init, training=True)

    tx = torch.from_numpy(x).requires_grad_()
    th0 = torch.from_numpy(h0)[None].requires_grad_()
    tc0 = torch.from_numpy(c0)[None].requires_grad_()
    ty, tstate = mod(tx, (th0, tc0) if cell == "lstm" else th0)
    tfinal = list(tstate) if cell == "lstm" else [tstate]
    tol = TOL[dtype]
    np.testing.assert_allclose(outs[0], ty.detach().numpy(), **tol)
    for mine, theirs in zip(outs[1:], tfinal):
        np.testing.assert_allclose(mine, theirs[0].detach().numpy(), **tol)

    dy = rng.standard_normal(ty.shape).astype(dtype)
    dstates = [rng.standard_normal((B, H)).astype(dtype) for _ in tfinal]
    loss = (ty * torch.from_numpy(dy)).sum()
    for s, d in zip(tfinal, dstates):
        loss = loss + (s[0] * torch.from_numpy(d)).sum()
    loss.backward()
    dx = layer.backward(dy, dstates if cell == "lstm" else dstates[0])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    for name in layer.params:
        np.testing.assert_allclose(layer.grads[name], getattr(mod, name + "_l0").grad.numpy(),
                                   **tol, err_msg=name)
    d0 = layer.d_initial_state if cell == "lstm" else (layer.d_initial_state,)
    np.testing.assert_allclose(d0[0], th0.grad[0].numpy(), **tol)
    if cell == "lstm":
        np.testing.assert_allclose(d0[1], tc0.grad[0].numpy(), **tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_last_output_and_go_backwards_match_reversed_torch(cell, backend):
    torch = pytest.importorskip("torch")
    layer = make_layer(cell, 4, 3, backend=backend, seed=2, go_backwards=True)
    mod = torch_twin(torch, layer, cell)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out = layer.forward(x, training=True)
    tx = torch.from_numpy(x[:, ::-1].copy()).requires_grad_()
    ty, _ = mod(tx)
    np.testing.assert_allclose(out, ty[:, -1].detach().numpy(), rtol=1e-9, atol=1e-12)
    d = np.random.default_rng(1).standard_normal(out.shape)
    (ty[:, -1] * torch.from_numpy(d)).sum().backward()
    dx = layer.backward(d)
    np.testing.assert_allclose(dx, tx.grad.numpy()[:, ::-1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_by_step_equals_forward(cell, backend):
    layer = make_layer(cell, 6, 4, dtype="float32", backend=backend, seed=3,
                       return_sequences=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    full = layer.forward(x)
    state = None
    for t in range(5):
        h, state = layer.step(x[:, t], state)
        np.testing.assert_allclose(h, full[:, t], rtol=1e-6, atol=1e-7)
    assert h.dtype == np.float32


def test_params_assignment_changes_the_layer_and_is_checked():
    layer = fr.LSTM(3, input_size=2, seed=0, backend="numpy")
    x = np.random.default_rng(0).standard_normal((1, 4, 2)).astype(np.float32)
    before = layer(x)
    layer.params["weight_hh"] = np.zeros((12, 3))          # float64 -> cast to float32
    assert layer.params["weight_hh"].dtype == np.float32
    assert not np.allclose(layer(x), before)
    layer.params["weight_ih"][...] = 0                      # in-place writes count too
    layer.params["bias_ih"][...] = 1.0
    layer.params["bias_hh"][...] = 0
    s = 1 / (1 + np.exp(-1.0))                              # every gate pre-activation is 1
    np.testing.assert_allclose(layer(x[:, :1]), s * np.tanh(s * np.tanh(1.0)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"weight_hh.*\(12, 3\).*\(3, 12\)"):
        layer.params["weight_hh"] = np.zeros((3, 12))
    with pytest.raises(KeyError, match="weight_hr"):
        layer.params["weight_hr"] = np.zeros((3, 3))


def test_seed_reproducible_and_pytorch_init_range():
    # the default is Keras's init (tests/test_initializers.py); init="torch" gives PyTorch's
    a, b = (fr.GRU(50, input_size=7, seed=5, init="torch"),
            fr.GRU(50, input_size=7, seed=5, init="torch"))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        assert np.abs(a.params[k]).max() <= 1 / np.sqrt(50)
    c = fr.GRU(50, input_size=7, seed=6, init="torch")
    assert not np.array_equal(a.params["weight_hh"], c.params["weight_hh"])
    assert a.params["weight_ih"].shape == (150, 7) and a.params["bias_hh"].shape == (150,)


def test_builds_on_first_input_and_no_bias():
    layer = fr.SimpleRNN(4, use_bias=False, return_sequences=True, backend="numpy")
    assert not layer.built
    y = layer.forward(np.ones((2, 3, 5), dtype=np.float32), training=True)
    assert y.shape == (2, 3, 4) and set(layer.params) == {"weight_ih", "weight_hh"}
    layer.backward(np.ones_like(y))
    assert set(layer.grads) == {"weight_ih", "weight_hh"}


@pytest.mark.parametrize("bad,exc,pattern", [
    (np.zeros((2, 3)), ValueError, r"x must have 3 dimensions.*\(2, 3\)"),
    (np.zeros((2, 3, 4, 1)), ValueError, r"x must have 3 dimensions"),
    (np.zeros((2, 3, 7)), ValueError, r"x.shape\[2\].*5.*got 7"),
    (np.zeros((2, 3, 5), dtype=np.int64), TypeError, r"float32 or float64.*int64"),
    (np.zeros((2, 3, 5), dtype=np.complex64), TypeError, r"complex64"),
    (np.zeros((2, 3, 5), dtype=object), TypeError, r"object"),
    (np.zeros((2, 3, 5), dtype=np.float16), TypeError, r"float16"),
    (np.zeros((0, 3, 5)), ValueError, r"batch of at least one"),
    (np.full((1, 2, 5), np.nan), ValueError, r"x must be finite"),
])
def test_bad_inputs_raise_clear_errors_and_leave_weights_alone(bad, exc, pattern):
    layer = fr.LSTM(4, input_size=5, seed=0, backend="numpy")
    before = {k: v.copy() for k, v in layer.params.items()}
    with pytest.raises(exc, match=pattern):
        layer.forward(bad, training=True)
    for k, v in layer.params.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("state,pattern", [
    (np.zeros((2, 4)), r"\(h0, c0\)"),
    ((np.zeros((2, 4)), np.zeros((2, 7))), r"c0 must have shape \(2, 4\), got \(2, 7\)"),
    ((np.zeros((3, 4)), np.zeros((2, 4))), r"h0 must have shape \(2, 4\), got \(3, 4\)"),
])
def test_bad_initial_state(state, pattern):
    layer = fr.LSTM(4, input_size=5, seed=0, backend="numpy")
    with pytest.raises(ValueError, match=pattern):
        layer.forward(np.zeros((2, 3, 5)), initial_state=state)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="units must be a positive int, got 0"):
        fr.LSTM(0)
    with pytest.raises(ValueError, match="units"):
        fr.GRU(2.5)
    with pytest.raises(ValueError, match="activation"):
        fr.SimpleRNN(3, activation="sigmoid")
    with pytest.raises(ValueError, match="dtype"):
        fr.LSTM(3, dtype="int32")


def test_backward_without_training_forward_is_an_error():
    layer = fr.GRU(3, input_size=2, backend="numpy")
    layer.forward(np.zeros((1, 2, 2)))
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((1, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padded_batch_equals_each_sequence_alone(cell, backend):
    layer = make_layer(cell, 5, 3, backend=backend, seed=8, return_state=True)
    rng = np.random.default_rng(2)
    lengths = [4, 2, 1]
    x = rng.standard_normal((3, 4, 3))
    mask = np.arange(4)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 99.0                                  # padding must not matter
    outs = layer.forward(x, mask=mask, training=True)
    d_out = rng.standard_normal(outs[0].shape)
    dx = layer.backward(d_out)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    total = {k: 0 for k in grads}
    for b, L in enumerate(lengths):
        single = layer.forward(x[b:b + 1, :L], training=True)
        np.testing.assert_allclose(outs[1][b], single[1][0], rtol=1e-12)
        dxb = layer.backward(d_out[b:b + 1])
        np.testing.assert_allclose(dx[b, :L], dxb[0], rtol=1e-10, atol=1e-13)
        assert np.all(dx[b, L:] == 0)
        for k in total:
            total[k] = total[k] + layer.grads[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_fast_and_validated_paths_agree(cell, backend):
    layer = make_layer(cell, 5, 3, dtype="float32", backend=backend, seed=9, use_bias=False)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 5)).astype(np.float32)
    state = (h, h.copy()) if cell == "lstm" else h
    fast, _ = layer.step(x, state)                                # everything engine-ready
    slow_state = tuple(s.astype(np.float64) for s in state) if cell == "lstm" else h.astype(
        np.float64)
    slow, _ = layer.step(np.asfortranarray(x.astype(np.float64)), slow_state)
    np.testing.assert_array_equal(fast, slow)
    assert not np.shares_memory(fast, h)
    bad = h.copy()
    bad[0, 0] = np.nan
    # the messages name step's own argument (state) and its parts, not internal names
    with pytest.raises(ValueError, match=r"state(\[0\])?: h must be finite.*batch 0, unit 0"):
        layer.step(x, (bad, h) if cell == "lstm" else bad)
    with pytest.raises(ValueError, match=r"state(\[0\])?: h must have shape \(2, 5\)"):
        layer.step(x, (h[:, :4].copy(), h) if cell == "lstm" else h[:, :4].copy())


# issue 9: the step fast path with biases, distinct (h, c), every cell, against the reference

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_fast_path_uses_biases_and_both_states(cell, backend, monkeypatch):
    from fastrnn import reference as ref
    layer = make_layer(cell, 5, 3, dtype="float32", backend=backend, seed=11)
    rng = np.random.default_rng(21)
    for k in layer.params:                 # non-zero biases, distinct from each other
        layer.params[k] = rng.uniform(-0.8, 0.8, layer.params[k].shape)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    h = rng.standard_normal((4, 5)).astype(np.float32)
    c = rng.standard_normal((4, 5)).astype(np.float32) * 2.0       # c != h
    state = (h, c) if cell == "lstm" else h
    # the fast path must be the one taken: the validated path is made to fail
    monkeypatch.setattr(type(layer), "_engine_forward",
                        lambda *a, **k: pytest.fail("the fast path was not taken"))
    h1, new_state = layer.step(x, state)
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    args = (x[None].astype(np.float64), h.astype(np.float64))
    if cell == "lstm":
        args += (c.astype(np.float64),)
    out = getattr(ref, f"{cell}_forward")(*args, p["weight_ih"], p["weight_hh"], p["bias_ih"],
                                           p["bias_hh"])
    np.testing.assert_allclose(h1, out[1], rtol=2e-5, atol=2e-6)
    if cell == "lstm":
        np.testing.assert_allclose(new_state[0], out[1], rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(new_state[1], out[2], rtol=2e-5, atol=2e-6)
        assert not np.allclose(new_state[0], new_state[1])
    else:
        np.testing.assert_array_equal(new_state, h1)


# issue 9, "Also": errors name the public argument and the batch-first shape the caller passed

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_errors_use_public_names_and_batch_first_shapes(cell):
    layer = make_layer(cell, 4, 3, dtype="float32", backend="cython" if HAVE_ENGINE else
                       "numpy", seed=1, return_sequences=True)
    x = np.ones((2, 5, 3), np.float32)
    layer.forward(x, training=True)
    internal = re.compile(r"\bdy\b|dh_n|dc_n|weight_ih|\(T, B")
    cases = [
        (lambda: layer.backward(np.ones((2, 5, 4), np.complex64)), "d_output"),
        (lambda: layer.backward(np.ones((2, 5, 4), np.float32),
                                d_state=[np.ones((2, 4), np.complex64)] * layer.n_states),
         "d_state[0]"),
        (lambda: layer.step(np.ones((2, 7), np.float32)), "x_t must have shape (batch, "
                                                          "features) = (2, 3), got (2, 7)"),
        (lambda: layer.step(np.ones((2, 3), np.float32), [np.ones((2, 4))] * 3), "state must"),
        (lambda: layer.forward(np.ones((0, 5, 3), np.float32)), "(0, 5, 3)"),
        (lambda: layer.forward(np.ones((2, 0, 3), np.float32)), "(2, 0, 3)"),
    ]
    bad = np.ones((2, 5, 3), np.float32)
    bad[1, 4, 2] = np.inf
    cases.append((lambda: layer.forward(bad), "(batch 1, time 4, feature 2)"))
    for call, needle in cases:
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        msg = str(info.value)
        assert needle in msg, msg
        assert not internal.search(msg), msg
