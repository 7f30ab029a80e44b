"""Compiled kernels (fastrnn._engine) against the NumPy reference (fastrnn.reference).

Random weights always; float32 and float64; shapes with T=1, B=1, odd H, I != H;
non-zero initial states; masks with invalid steps anywhere; recurrent-dropout masks (exact
zeros and the 1 / (1 - rate) scale) with and without padding; every output and gradient.
"""
import zlib

import numpy as np
import pytest

from fastrnn import reference as R

from fastrnn._engine import blas as _blas, runtime as _runtime
from fastrnn._engine import kernels as E

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SHAPES = [  # T, B, I, H
    (1, 1, 3, 5),
    (1, 4, 6, 7),
    (5, 1, 4, 33),
    (7, 3, 5, 7),
    (4, 6, 9, 16),
    (3, 5, 33, 12),
]


def _tol(dt):
    return dict(rtol=1e-10, atol=1e-12) if dt == np.float64 else dict(rtol=2e-4, atol=2e-5)


def make(cell, T, B, I, H, dt, seed, mask=None, scale=1.0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    s = scale / np.sqrt(H)
    a = dict(x=rng.standard_normal((T, B, I)),
             h0=0.5 * rng.standard_normal((B, H)),
             weight_ih=rng.uniform(-s, s, (G * H, I)) * 2,
             weight_hh=rng.uniform(-s, s, (G * H, H)) * 2,
             bias_ih=rng.uniform(-s, s, G * H),
             bias_hh=rng.uniform(-s, s, G * H))
    if cell == "lstm":
        a["c0"] = rng.standard_normal((B, H))
    a = {k: v.astype(dt) for k, v in a.items()}
    if mask == "random":
        m = rng.random((T, B)) > 0.35
        m[0, 0] = False           # invalid first step
        m[-1, -1] = False         # invalid last step
        mask = m
    elif mask == "lengths":       # right-padded variable lengths
        lens = rng.integers(0, T + 1, B)
        mask = np.arange(T)[:, None] < lens[None, :]
    return a, mask


def order(cell):
    return ["x", "h0"] + (["c0"] if cell == "lstm" else []) + \
        ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def fwd(mod, cell, a, mask, training, **kw):
    return getattr(mod, cell + "_forward")(*[a[k] for k in order(cell)], mask=mask,
                                          training=training, **kw)


def grads_in(cell, out, seed, dt):
    rng = np.random.default_rng(seed + 1000)
    y = out[0]
    dy = rng.standard_normal(y.shape).astype(dt)
    dh = rng.standard_normal(out[1].shape).astype(dt)
    extra = [rng.standard_normal(out[1].shape).astype(dt)] if cell == "lstm" else []
    return [dy, dh] + extra


def check_cell(cell, shape, dt, mask_kind, seed, **kw):
    T, B, I, H = shape
    a, mask = make(cell, T, B, I, H, dt, seed, mask_kind)
    ref = fwd(R, cell, a, mask, True, **kw)
    got_inf = fwd(E, cell, a, mask, False, **kw)
    got = fwd(E, cell, a, mask, True, **kw)
    assert got_inf[-1] is None
    tol = _tol(dt)
    for r, gi, gt in zip(ref[:-1], got_inf[:-1], got[:-1]):
        assert gi.dtype == dt and gt.dtype == dt and gi.shape == r.shape
        np.testing.assert_allclose(gi, r, **tol)
        np.testing.assert_allclose(gt, r, **tol)
    gargs = grads_in(cell, ref, seed, dt)
    gr = getattr(R, cell + "_backward")(ref[-1], *gargs)
    ge = getattr(E, cell + "_backward")(got[-1], *gargs)
    assert set(ge) == set(gr)
    for k in gr:
        assert ge[k].dtype == dt and ge[k].shape == gr[k].shape, k
        scale = max(1.0, float(np.abs(gr[k]).max()))
        np.testing.assert_allclose(ge[k], gr[k], rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   err_msg=k)
    # the cache can be used twice, and None gradients mean zeros. Not bit-for-bit: the weight
    # gradients' row blocks go through OpenBLAS from two OpenMP threads, and OpenBLAS may run a
    # block on its own pool or inline depending on what else it is doing (last-bit differences,
    # seen at 1e-14 in float64); a few ulps is the bound
    ge2 = getattr(E, cell + "_backward")(got[-1], *gargs)
    eps = np.finfo(dt).eps
    for k in gr:
        scale = max(1.0, float(np.abs(ge[k]).max()))
        np.testing.assert_allclose(ge2[k], ge[k], rtol=8 * eps, atol=8 * eps * scale, err_msg=k)
    gnone = getattr(E, cell + "_backward")(got[-1], *([None] * len(gargs)))
    gzero = getattr(R, cell + "_backward")(ref[-1], *[np.zeros_like(g) for g in gargs])
    for k in gzero:
        np.testing.assert_allclose(gnone[k], gzero[k], rtol=tol["rtol"], atol=tol["atol"])


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_vs_reference(cell, shape, dt):
    check_cell(cell, shape, dt, None, seed=zlib.crc32(repr((cell, shape)).encode()) % 1000)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_elman_vs_reference(activation, shape, dt):
    check_cell("rnn", shape, dt, None, seed=7 + shape[3], activation=activation)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("mask_kind", ["random", "lengths"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", [(6, 5, 4, 7), (5, 1, 3, 9), (1, 3, 4, 5)])
def test_masked_vs_reference(cell, shape, mask_kind, dt):
    check_cell(cell, shape, dt, mask_kind, seed=11 + shape[0])


def recurrent_mask(B, H, dt, seed, rate=0.3):
    """Recurrent-dropout mask as the layers draw it: exact zeros and 1 / (1 - rate)."""
    rng = np.random.default_rng(seed + 500)
    keep = rng.random((B, H)) >= rate
    keep.flat[0] = False                  # at least one dropped unit
    keep.flat[-1] = keep.size == 1 or keep.flat[-1]
    return (keep / (1 - rate)).astype(dt)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("mask_kind", [None, "random", "lengths"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_dropout_vs_reference(cell, shape, mask_kind, dt):
    # T=1 takes the unfused step (GEMV / BLAS + pointwise pass), T>1 the fused packed step;
    # B=1 the GEMV backward; with a padding mask the fused steps' carry is repaired
    seed = zlib.crc32(repr((cell, shape, mask_kind)).encode()) % 1000
    check_cell(cell, shape, dt, mask_kind, seed,
               recurrent_mask=recurrent_mask(shape[1], shape[3], dt, seed))


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_recurrent_dropout_relu_and_bigger_problem(dt):
    check_cell("rnn", (6, 5, 4, 7), dt, "random", 31, activation="relu",
               recurrent_mask=recurrent_mask(5, 7, dt, 31))
    for cell in ("rnn", "lstm", "gru"):
        check_cell(cell, (9, 19, 37, 45), dt, "random", 32,
                   recurrent_mask=recurrent_mask(19, 45, dt, 32, rate=0.5))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_mask_of_ones_is_no_mask_and_zeros_reach_the_kernel(cell):
    T, B, I, H = 5, 4, 3, 9
    a, mask = make(cell, T, B, I, H, np.float64, 12, "random")
    plain = fwd(E, cell, a, mask, True)
    ones = fwd(E, cell, a, mask, True, recurrent_mask=np.ones((B, H)))
    for p, o in zip(plain[:-1], ones[:-1]):
        np.testing.assert_allclose(o, p, rtol=1e-14, atol=1e-15)
    g = grads_in(cell, plain, 12, np.float64)
    gp = getattr(E, cell + "_backward")(plain[-1], *g)
    go = getattr(E, cell + "_backward")(ones[-1], *g)
    for k in gp:
        np.testing.assert_allclose(go[k], gp[k], rtol=1e-13, atol=1e-14, err_msg=k)
    # dropping every unit of one sequence: its recurrent product is b_hh alone
    rm = np.ones((B, H))
    rm[1] = 0
    got = fwd(E, cell, a, mask, False, recurrent_mask=rm)
    q = dict(a, weight_hh=np.zeros_like(a["weight_hh"]))
    want = fwd(R, cell, q, mask, False)
    np.testing.assert_allclose(got[0][:, 1], want[0][:, 1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fully_masked_rows_carry_state(cell):
    T, B, I, H = 4, 3, 5, 6
    a, _ = make(cell, T, B, I, H, np.float64, 3)
    mask = np.ones((T, B), bool)
    mask[:, 1] = False
    y, h_n, *rest = fwd(E, cell, a, mask, False)
    np.testing.assert_array_equal(y[:, 1], np.broadcast_to(a["h0"][1], (T, H)))
    np.testing.assert_array_equal(h_n[1], a["h0"][1])
    if cell == "lstm":
        np.testing.assert_array_equal(rest[0][1], a["c0"][1])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bigger_problem_float32(cell):
    # larger than any kernel tile, odd sizes, exercises the GEMM paths
    check_cell(cell, (9, 19, 37, 45), np.float32, "random", seed=5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_readonly_inputs_not_modified_and_fresh_outputs(cell):
    a, mask = make(cell, 3, 2, 4, 5, np.float64, 1, "random")
    saved = {k: v.copy() for k, v in a.items()}
    for v in a.values():
        v.setflags(write=False)
    mask.setflags(write=False)
    out = fwd(E, cell, a, mask, True)
    g = getattr(E, cell + "_backward")(out[-1], *grads_in(cell, out, 1, np.float64))
    for k in a:
        np.testing.assert_array_equal(a[k], saved[k])
    for arr in list(out[:-1]) + list(g.values()):
        for inp in a.values():
            assert not np.shares_memory(arr, inp)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_nan_propagates(cell, dt):
    T, B, I, H = 4, 3, 5, 6
    a, _ = make(cell, T, B, I, H, dt, 2)
    a["x"][1, 0, 2] = np.nan
    y = fwd(E, cell, a, None, False)[0]
    assert np.isfinite(y[0]).all()
    assert np.isnan(y[1:, 0]).all()
    assert np.isfinite(y[:, 1:]).all()


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_saturated_inputs_match_reference(cell, dt):
    # huge pre-activations (|a| up to ~1e4 and inf): outputs saturate like the reference
    T, B, I, H = 3, 4, 5, 6
    a, _ = make(cell, T, B, I, H, dt, 4)
    a["x"] *= dt(3e3)
    a["x"][0, 0, 0] = np.inf
    a["x"][1, 1, 0] = -np.inf
    a["x"][2, 2, :] = np.array([89, -89, 20, -20, 9], dt)
    with np.errstate(all="ignore"):
        ref = fwd(R, cell, a, None, False)
        got = fwd(E, cell, a, None, False)
    for r, g in zip(ref[:-1], got[:-1]):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-6 if dt == np.float32 else 1e-12)


EXTREMES = [0.0, -0.0, 1e-30, -1e-8, 1e-3, 0.2, 0.25, 0.3, 0.0625, -0.07, 1.0, 9.0, -9.0,
            17.0, 20.0, -20.0, 44.0, 88.0, 89.0, -89.0, 200.0, 710.0, -710.0, 800.0, 1e4,
            -1e4, 3e38, -3e38, np.inf, -np.inf]


def _ref_sigmoid(x):
    # exp of -|x| only: relative accuracy on both tails (0.5 (1 + tanh(x / 2)) cancels
    # for x < -19 in float64, which would need an absolute tolerance of an ulp of 1)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_activation_accuracy_full_range(dt):
    x = np.concatenate([np.linspace(-40, 40, 40001), np.array(EXTREMES),
                        np.geomspace(1e-12, 40, 2001), -np.geomspace(1e-12, 40, 2001)]).astype(dt)
    x64 = x.astype(np.float64)
    # relative accuracy everywhere, tanh near 0 and sigmoid's lower tail included (src/fr_act.h
    # measures at most 4.3e-16 in float64, 2.3e-7 in float32, about 2-3 ulp); the absolute
    # term only admits the outputs flushed to 0 (FTZ) below the normal range
    atol, rtol = (1e-300, 1e-15) if dt == np.float64 else (1e-37, 3e-7)
    with np.errstate(all="ignore"):
        for kind, fn in ((0, _ref_sigmoid), (1, np.tanh)):
            got = _runtime.activation(kind, x)
            assert got.dtype == dt
            want = fn(x64)
            err = np.abs(got.astype(np.float64) - want)
            assert np.all(err <= atol + rtol * np.abs(want)), (kind, x[np.argmax(err)], err.max())
            # saturation is exact
            assert np.all(got[x64 >= 40] == 1.0)
            if kind == 1:
                assert np.all(got[x64 <= -40] == -1.0)
                assert np.all(np.abs(got) <= 1.0)
            else:
                assert np.all(got[x64 <= -800] == 0.0)
                assert np.all((got >= 0) & (got <= 1))
        relu = _runtime.activation(2, x)
        np.testing.assert_array_equal(relu, np.maximum(x, 0))


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_activation_nan(dt):
    x = np.array([np.nan, 1.0, -np.nan, 0.5, np.nan] * 5, dt)
    for kind in (0, 1, 2):
        y = _runtime.activation(kind, x)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


def _denormal_survives():
    tiny = np.array([np.finfo(np.float64).smallest_subnormal * 4], np.float64)
    one = np.ones(1)
    a = tiny * one              # a DAZ caller would read 0 here
    b = np.array([1e-300]) * np.array([1e-10])   # an FTZ caller would get 0 here
    return a[0] > 0 and b[0] > 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_floating_point_state_restored(cell):
    assert _denormal_survives()
    a, mask = make(cell, 3, 2, 4, 5, np.float32, 0, "random")
    out = fwd(E, cell, a, mask, True)
    assert _denormal_survives()
    getattr(E, cell + "_backward")(out[-1], *grads_in(cell, out, 0, np.float32))
    assert _denormal_survives()
    _runtime.activation(1, np.linspace(-1, 1, 33))
    assert _denormal_survives()


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_blas_rowmajor_wrappers(ta, tb, dt):
    rng = np.random.default_rng(3)
    M, N, K = 5, 7, 3
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dt)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dt)
    c = rng.standard_normal((M, N)).astype(dt)
    want = 1.5 * ((a.T if ta else a) @ (b.T if tb else b)) + 0.5 * c
    _blas.gemm(a, b, c, ta, tb, 1.5, 0.5)
    np.testing.assert_allclose(c, want, rtol=1e-5)
    x = rng.standard_normal(K).astype(dt)      # op(a) is (M, K)
    y = rng.standard_normal(M).astype(dt)
    wanty = 2.0 * ((a.T if ta else a) @ x) - y
    _blas.gemv(a, x, y, ta, 2.0, -1.0)
    np.testing.assert_allclose(y, wanty, rtol=1e-5)


def test_empty_sequence():
    for cell in ("rnn", "lstm", "gru"):
        a, _ = make(cell, 0, 2, 3, 4, np.float64, 0)
        out = fwd(E, cell, a, None, True)
        assert out[0].shape == (0, 2, 4)
        np.testing.assert_array_equal(out[1], a["h0"])


# (T, B, I, H) where one to three rows cannot be split over 2 threads but the step's work
# (B*G*H*H >= SPLIT_UNITS_MACS = 32k multiply-adds, >= 2 panels per thread) makes the
# threads split the hidden units instead (each packing its own panels and a share of the
# projection's rows), meeting at a barrier after every step: odd H (a partial last
# panel), B = 1, 2, 3, and sizes just above the threshold
SPLIT_SHAPES = {
    "lstm": [(4, 1, 5, 512), (3, 2, 6, 363), (2, 3, 4, 301), (5, 1, 7, 97)],
    "gru": [(4, 1, 5, 600), (3, 2, 6, 419), (2, 3, 4, 345), (5, 1, 7, 107)],
    "rnn": [(4, 1, 5, 1024), (3, 2, 6, 727), (2, 3, 4, 600), (5, 1, 7, 191)],
}


@pytest.fixture(params=[0, 1], ids=["hoisted", "in-step"])
def input_projection(request):
    """Force where the fused steps get the input projection: 0 the hoisted GEMM over all
    T*B rows, 1 computed in the step's own tiles (common.pxd: fuse_input; by default a
    measured rule picks by rows per thread and weight bytes)."""
    E._set_fuse_input(request.param)
    yield request.param
    E._set_fuse_input(-1)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_input_projection_in_step_and_hoisted_match_reference(input_projection, cell, dt):
    # B >= 5 so that the packed fused step runs even at T = 1; I = 100 and 130 take the
    # in-step projection through more than one K block (KC is 96 / 64 / 32 columns on
    # AVX-512 by gate count); odd H leaves a partial panel; masks and recurrent dropout
    # (the rows' h input is rewritten per step, the x input is not)
    check_cell(cell, (1, 5, 3, 7), dt, None, seed=81)
    check_cell(cell, (4, 6, 100, 19), dt, "random", seed=82)
    check_cell(cell, (3, 13, 130, 40), dt, "lengths", seed=83)
    check_cell(cell, (5, 7, 9, 33), dt, None, seed=84, recurrent_mask=recurrent_mask(7, 33, dt, 84))
    if cell == "rnn":
        check_cell(cell, (3, 6, 11, 50), dt, "random", seed=85, activation="relu")
    import fastrnn
    saved = fastrnn.get_num_threads()
    fastrnn.set_num_threads(2)
    try:
        # the batch split: each thread runs its rows' steps, projection included
        check_cell(cell, (6, 11, 37, 90), dt, "random", seed=86)
    finally:
        fastrnn.set_num_threads(saved)


def test_input_projection_mode_rejects_unknown_value():
    with pytest.raises(ValueError, match="got 2"):
        E._set_fuse_input(2)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hidden_unit_split_matches_reference(cell, dt):
    import fastrnn
    saved = fastrnn.get_num_threads()
    fastrnn.set_num_threads(2)
    try:
        for i, shape in enumerate(SPLIT_SHAPES[cell]):
            check_cell(cell, shape, dt, None, seed=40 + i)
            check_cell(cell, shape, dt, "random", seed=50 + i)
            check_cell(cell, shape, dt, "lengths", seed=60 + i)
        if cell == "rnn":
            check_cell(cell, (3, 1, 4, 1024), dt, "random", seed=70, activation="relu")
    finally:
        fastrnn.set_num_threads(saved)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_threaded_batch_split_matches_reference(cell, dt):
    # big enough that the kernels split the batch over 2 threads (odd B: uneven slices)
    import fastrnn
    saved = fastrnn.get_num_threads()
    fastrnn.set_num_threads(2)
    try:
        check_cell(cell, (5, 9, 10, 97), dt, "random", seed=21)
        check_cell(cell, (4, 3, 6, 130), dt, None, seed=22)
        # large enough for the row-split input projection / dX products too
        check_cell(cell, (20, 30, 64, 128), dt, "lengths", seed=23)
        # recurrent dropout: every thread masks and un-masks its own rows
        check_cell(cell, (5, 9, 10, 97), dt, "random", seed=24,
                   recurrent_mask=recurrent_mask(9, 97, dt, 24))
        check_cell(cell, (20, 30, 64, 128), dt, "lengths", seed=25,
                   recurrent_mask=recurrent_mask(30, 128, dt, 25))
        check_cell(cell, (6, 32, 40, 70), dt, None, seed=26,
                   recurrent_mask=recurrent_mask(32, 70, dt, 26))
    finally:
        fastrnn.set_num_threads(saved)
