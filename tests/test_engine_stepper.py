"""The compiled streaming stepper (fastrnn/_engine/stepper.pyx) against the reference."""
import copy

import numpy as np
import pytest

from fastrnn import reference as R
from fastrnn._engine import kernels as E
from _threads import cpu_while_sleeping  # tests/ helper module

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _args(cell, B, I, H, dt, seed):
    rng = np.random.default_rng(seed)
    G, s = GATES[cell], 1.0 / np.sqrt(H)
    w = [rng.uniform(-s, s, (G * H, I)), rng.uniform(-s, s, (G * H, H)),
         rng.uniform(-s, s, G * H), rng.uniform(-s, s, G * H)]
    w = [a.astype(dt) for a in w]
    x = rng.standard_normal((B, I)).astype(dt)
    st = [rng.standard_normal((B, H)).astype(dt) for _ in range(2 if cell == "lstm" else 1)]
    return w, x, st


def _ref(cell, w, x, st, act="tanh"):
    kw = dict(activation=act) if cell == "rnn" else {}
    out = getattr(R, cell + "_forward")(x[None], *st, *w, training=False, **kw)
    return out[1:1 + len(st)]


def _tol(dt):
    return dict(rtol=1e-10, atol=1e-12) if dt == np.float64 else dict(rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("B", [1, 2, 4, 5, 9])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_matches_reference(cell, B, dt):
    w, x, st = _args(cell, B, 7, 13, dt, seed=B + 3)
    stp = E.make_stepper(cell, *w)
    got = stp.step(x, st)
    for g, r in zip(got, _ref(cell, w, x, st)):
        assert g.dtype == dt and g.shape == r.shape
        np.testing.assert_allclose(g, r, **_tol(dt))
    # a second step from the new state, and states are fresh arrays
    got2 = stp.step(x, list(got))
    for g, r in zip(got2, _ref(cell, w, x, list(got))):
        np.testing.assert_allclose(g, r, **_tol(dt))
    assert all(a is not b for a, b in zip(got, st))


# (I, H) whose weights exceed the stepper's split threshold (512 KiB in float32), with
# output counts that are not multiples of the 16-output slices
BIG = {"rnn": (101, 333), "lstm": (37, 197), "gru": (45, 229)}


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_threaded_step_matches_reference_and_one_thread(cell, B, dt):
    """Weights too big for one L2: the step's products split their outputs over the
    threads. Same result as the reference and, bit for bit, as one thread (every
    output is one GEMV dot product either way)."""
    import fastrnn as fr
    I, H = BIG[cell]
    w, x, st = _args(cell, B, I, H, dt, seed=B + 11)
    stp = E.make_stepper(cell, *w)
    old = fr.get_num_threads()
    try:
        fr.set_num_threads(2)
        got = stp.step(x, st)
        got2 = stp.step(x, list(got))
        fr.set_num_threads(1)
        one = stp.step(x, st)
    finally:
        fr.set_num_threads(old)
    for g, r, o in zip(got, _ref(cell, w, x, st), one):
        np.testing.assert_allclose(g, r, **_tol(dt))
        np.testing.assert_array_equal(g, o)
    for g, r in zip(got2, _ref(cell, w, x, list(got))):
        np.testing.assert_allclose(g, r, **_tol(dt))


def test_relu_and_in_place_weight_updates_are_seen():
    w, x, st = _args("rnn", 2, 5, 9, np.float64, seed=1)
    stp = E.make_stepper("rnn", *w, activation="relu")
    np.testing.assert_allclose(stp.step(x, st)[0], _ref("rnn", w, x, st, "relu")[0],
                               **_tol(np.float64))
    w[1] *= -0.5          # optimizer-style in-place updates
    w[2] += 0.3
    np.testing.assert_allclose(stp.step(x, st)[0], _ref("rnn", w, x, st, "relu")[0],
                               **_tol(np.float64))
    assert stp.matches(*w, activation="relu")
    assert not stp.matches(w[0].copy(), *w[1:], activation="relu")
    assert not stp.matches(*w, activation="tanh")


def test_bad_arguments_raise_value_error():
    w, x, st = _args("lstm", 2, 5, 9, np.float32, seed=2)
    stp = E.make_stepper("lstm", *w)
    with pytest.raises(ValueError):
        stp.step(x.astype(np.float64), st)
    with pytest.raises(ValueError):
        stp.step(x, [st[0], st[1][:1]])
    with pytest.raises(ValueError):
        stp.step(np.asfortranarray(np.ones((2, 5), np.float32)).T.copy().T, st)
    with pytest.raises(ValueError):
        stp.step(x[:0], [s[:0] for s in st])


def test_stepper_deepcopies():
    w, x, st = _args("gru", 1, 4, 6, np.float64, seed=3)
    stp = E.make_stepper("gru", *w)
    cp = copy.deepcopy(stp)
    np.testing.assert_array_equal(cp.step(x, st)[0], stp.step(x, st)[0])


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_layer_step_uses_current_weights(cell):
    import fastrnn
    layer = getattr(fastrnn, cell)(6)
    x = np.random.default_rng(4).standard_normal((2, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.step(x[:, 0])[0], layer.forward(x[:, :1]),
                               rtol=1e-5, atol=1e-6)
    # in-place changes (weights and biases) must be seen by the next step
    layer.params["weight_hh"][...] *= 0.5
    layer.params["bias_ih"][...] += 0.25
    h, state = layer.step(x[:, 0])
    np.testing.assert_allclose(h, layer.forward(x[:, :1]), rtol=1e-5, atol=1e-6)
    # stepping through the sequence equals one forward over it
    for t in range(1, 3):
        h, state = layer.step(x[:, t], state)
    np.testing.assert_allclose(h, layer.forward(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("B", [2, 9])
def test_steps_leave_no_spinning_blas_pool(B):
    # A step must not run BLAS ?gemm: OpenBLAS's workers spin on the cores for ~0.1 s
    # after every threaded call (measured: 1-2 ms per B=2 LSTM step instead of ~0.1 ms,
    # and a core taken from whatever runs next). The process's CPU time while its only
    # running thread sleeps is what such a pool burns; the engine's OpenMP team goes
    # idle within a millisecond.
    w, x, st = _args("lstm", B, 64, 256, np.float32, seed=4)
    stp = E.make_stepper("lstm", *w)
    fwd = E.lstm_forward
    for _ in range(20):
        st = list(stp.step(x, st))
    fwd(x[None], st[0], st[1], *w)              # the functional T = 1 path as well
    cpu_while_sleeping(0.01)                   # our own team's short spin, if any
    assert cpu_while_sleeping(0.06) < 0.02
