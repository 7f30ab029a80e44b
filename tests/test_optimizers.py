"""Tests for fastrnn.optimizers: parity with torch.optim, clipping, NaN safety, state."""

import copy
import inspect
import itertools
import math
import warnings
import zlib

import numpy as np
import pytest

from fastrnn import optimizers as O

SHAPES = [(4, 3), (5,), (2, 3, 2), (1,)]


def _params(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(rng, dtype, scale=1.0):
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]


def _named(ps, gs):
    return [(f"layers.{i}.w", p, g) for i, (p, g) in enumerate(zip(ps, gs))]


# --------------------------------------------------------------------------
# parity with torch.optim
# --------------------------------------------------------------------------

def _torch_opt(torch, ours, tparams):
    c = ours.get_config()
    lr = c["learning_rate"]
    if isinstance(ours, O.SGD):
        return torch.optim.SGD(tparams, lr=lr, momentum=c["momentum"], nesterov=c["nesterov"],
                               weight_decay=c["weight_decay"], dampening=c["dampening"])
    if isinstance(ours, O.Adam):   # also AdamW
        cls = torch.optim.AdamW if isinstance(ours, O.AdamW) else torch.optim.Adam
        return cls(tparams, lr=lr, betas=(c["beta_1"], c["beta_2"]), eps=c["epsilon"],
                   weight_decay=c["weight_decay"], amsgrad=c["amsgrad"])
    if isinstance(ours, O.RMSprop):
        return torch.optim.RMSprop(tparams, lr=lr, alpha=c["rho"], eps=c["epsilon"],
                                   weight_decay=c["weight_decay"], momentum=c["momentum"],
                                   centered=c["centered"])
    if isinstance(ours, O.Adagrad):
        return torch.optim.Adagrad(tparams, lr=lr, lr_decay=c["lr_decay"],
                                   weight_decay=c["weight_decay"],
                                   initial_accumulator_value=c["initial_accumulator_value"],
                                   eps=c["epsilon"])
    raise AssertionError(type(ours))


def _cases():
    """PyTorch's argument names (lr, betas, eps, alpha, dampening, lr_decay) select the
    PyTorch convention; the no-argument cases ask for it explicitly."""
    cases = []
    for mom, nest, wd, damp in [(0.0, False, 0.0, 0.0), (0.9, False, 0.0, 0.0),
                                (0.9, True, 0.01, 0.0), (0.5, False, 0.1, 0.3),
                                (0.0, False, 0.05, 0.0)]:
        cases.append(("SGD", dict(lr=0.05, momentum=mom, nesterov=nest,
                                  weight_decay=wd, dampening=damp)))
    for cls in ("Adam", "AdamW"):
        for wd, ams in itertools.product((0.0, 0.1), (False, True)):
            cases.append((cls, dict(lr=0.01, betas=(0.8, 0.95),
                                    eps=1e-6, weight_decay=wd, amsgrad=ams)))
        cases.append((cls, {"convention": "torch"}))
    # Keras spellings with convention="torch" follow PyTorch's rules as well
    cases.append(("Adam", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6,
                               convention="torch")))
    for mom, cen, wd in itertools.product((0.0, 0.7), (False, True), (0.0, 0.1)):
        cases.append(("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6,
                                      weight_decay=wd, momentum=mom, centered=cen)))
    cases.append(("RMSprop", {"convention": "torch"}))
    for lrd, wd, init in [(0.0, 0.0, 0.0), (0.1, 0.05, 0.3), (0.0, 0.0, 1.0)]:
        cases.append(("Adagrad", dict(lr=0.1, lr_decay=lrd, weight_decay=wd,
                                      initial_accumulator_value=init, eps=1e-10)))
    cases.append(("Adagrad", {"convention": "torch"}))
    return cases


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", _cases(),
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(_cases())])
def test_matches_torch(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(zlib.crc32(f"{name}{sorted(kwargs.items())}".encode()))
    ours = getattr(O, name)(**kwargs)
    ps = _params(rng, dtype)
    tps = [torch.tensor(p.copy(), requires_grad=True) for p in ps]
    topt = _torch_opt(torch, ours, tps)
    for step in range(8):
        if step == 5:   # learning-rate change (schedules) must act the same way
            ours.learning_rate = ours.learning_rate * 0.5
            for group in topt.param_groups:
                group["lr"] = group["lr"] * 0.5
        gs = _grads(rng, dtype)
        for tp, g in zip(tps, gs):
            tp.grad = torch.tensor(g.copy())
        topt.step()
        assert ours.apply(_named(ps, gs)) is True
        for p, tp in zip(ps, tps):
            assert p.dtype == dtype
            ref = tp.detach().numpy()
            if dtype == np.float64:
                np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-14)
            else:
                # torch uses FMA and a vectorised (not correctly rounded) sqrt in float32,
                # so only a few ulp of difference are allowed
                np.testing.assert_allclose(p, ref, rtol=2e-6, atol=2e-6)
    # the slots match torch's state as well
    _, slots = ours.get_state()
    tname = {"momentum_buffer": "momentum_buffer", "exp_avg": "exp_avg",
             "exp_avg_sq": "exp_avg_sq", "max_exp_avg_sq": "max_exp_avg_sq",
             "square_avg": "square_avg", "grad_avg": "grad_avg", "sum": "sum"}
    for i, tp in enumerate(tps):
        tstate = topt.state[tp]
        for slot in ours._slots():
            ref = tstate[tname[slot]].numpy()
            tol = 1e-11 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(slots[f"{slot}.layers.{i}.w"], ref, rtol=tol, atol=tol)
        if "step" in tstate:
            assert int(slots[f"step.layers.{i}.w"]) == int(tstate["step"])


def test_defaults_match_torch():
    torch = pytest.importorskip("torch")
    mapping = {
        O.SGD: (torch.optim.SGD, {"momentum": "momentum", "nesterov": "nesterov",
                                  "weight_decay": "weight_decay", "dampening": "dampening"}),
        O.Adam: (torch.optim.Adam, {"epsilon": "eps", "weight_decay": "weight_decay",
                                    "amsgrad": "amsgrad"}),
        O.AdamW: (torch.optim.AdamW, {"epsilon": "eps", "weight_decay": "weight_decay",
                                      "amsgrad": "amsgrad"}),
        O.RMSprop: (torch.optim.RMSprop, {"rho": "alpha", "epsilon": "eps",
                                          "weight_decay": "weight_decay",
                                          "momentum": "momentum", "centered": "centered"}),
        O.Adagrad: (torch.optim.Adagrad, {"lr_decay": "lr_decay", "epsilon": "eps",
                                          "weight_decay": "weight_decay",
                                          "initial_accumulator_value":
                                              "initial_accumulator_value"}),
    }
    for ours_cls, (tcls, names) in mapping.items():
        tsig = inspect.signature(tcls.__init__).parameters
        cfg = ours_cls(convention="torch").get_config()
        for ours_name, tname in names.items():
            assert cfg[ours_name] == tsig[tname].default, (ours_cls, ours_name)
        if "betas" in tsig:
            assert (cfg["beta_1"], cfg["beta_2"]) == tuple(tsig["betas"].default)
        assert cfg["learning_rate"] == tsig["lr"].default, ours_cls
        # a PyTorch name alone selects the PyTorch defaults too
        assert ours_cls(lr=cfg["learning_rate"]).get_config() == cfg


def test_pairs_and_triples_and_dict_agree():
    rng = np.random.default_rng(0)
    ps0 = _params(rng, np.float64)
    grads = [_grads(rng, np.float64) for _ in range(3)]
    results = []
    for form in ("pairs", "triples", "dict"):
        ps = [p.copy() for p in ps0]
        opt = O.Adam(0.01)
        for gs in grads:
            if form == "pairs":
                opt.apply(list(zip(ps, gs)))
            elif form == "triples":
                opt.apply(_named(ps, gs))
            else:
                opt.apply({f"w{i}": (p, g) for i, (p, g) in enumerate(zip(ps, gs))})
        results.append(ps)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_state_keyed_by_name_not_position():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    ga, gb = rng.standard_normal(3), rng.standard_normal(3)
    o1 = O.SGD(0.1, momentum=0.9)
    a1, b1 = a.copy(), b.copy()
    o1.apply([("a", a1, ga), ("b", b1, gb)])
    o1.apply([("a", a1, ga), ("b", b1, gb)])
    o2 = O.SGD(0.1, momentum=0.9)
    a2, b2 = a.copy(), b.copy()
    o2.apply([("a", a2, ga), ("b", b2, gb)])
    o2.apply([("b", b2, gb), ("a", a2, ga)])   # other order, same names
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)


def test_float32_params_stay_float32_with_float64_grads():
    rng = np.random.default_rng(2)
    for cls in (O.SGD, O.Adam, O.AdamW, O.RMSprop, O.Adagrad):
        p = rng.standard_normal((3, 4)).astype(np.float32)
        before = p.copy()
        opt = cls()
        assert opt.apply([("p", p, rng.standard_normal((3, 4)))])
        assert p.dtype == np.float32
        assert not np.array_equal(p, before)
        _, slots = opt.get_state()
        for k, v in slots.items():
            if not k.startswith(("step.", "iterations")):
                assert v.dtype == np.float32, k


def test_gradients_are_not_modified():
    rng = np.random.default_rng(3)
    for kw in ({}, {"clipnorm": 0.1}, {"clipvalue": 0.1}, {"global_clipnorm": 0.1}):
        p = rng.standard_normal(5)
        g = rng.standard_normal(5) * 10
        g0 = g.copy()
        O.Adam(0.1, weight_decay=0.1, **kw).apply([("p", p, g)])
        np.testing.assert_array_equal(g, g0)


# --------------------------------------------------------------------------
# clipping
# --------------------------------------------------------------------------

def _clipped(opt_kwargs, grads):
    """Clipped gradients recovered from a plain SGD step with lr=1 (float64)."""
    ps = [np.zeros_like(g) for g in grads]
    opt = O.SGD(learning_rate=1.0, **opt_kwargs)
    assert opt.apply(list(zip(ps, grads)))
    return [-p for p in ps]


@pytest.mark.parametrize("c", [0.5, 3.0, 1e-3])
def test_clipnorm_per_tensor(c):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(s) * k for s, k in zip(SHAPES, (10, 0.01, 5, 100))]
    out = _clipped({"clipnorm": c}, grads)
    for g, h in zip(grads, out):
        n = np.linalg.norm(g)
        assert np.linalg.norm(h) <= c * (1 + 1e-6)
        if n <= c:
            np.testing.assert_array_equal(h, g)   # no change below c
        else:
            np.testing.assert_allclose(np.linalg.norm(h), c, rtol=1e-12)
            # direction unchanged: h is a positive multiple of g
            np.testing.assert_allclose(h / np.linalg.norm(h), g / n, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("c", [0.5, 50.0, 1e6])
def test_global_clipnorm(c):
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(s) * k for s, k in zip(SHAPES, (10, 0.01, 5, 100))]
    out = _clipped({"global_clipnorm": c}, grads)
    total = math.sqrt(sum(np.sum(g * g) for g in grads))
    total_after = math.sqrt(sum(np.sum(h * h) for h in out))
    assert total_after <= c * (1 + 1e-6)
    if total <= c:
        for g, h in zip(grads, out):
            np.testing.assert_array_equal(h, g)
    else:
        np.testing.assert_allclose(total_after, c, rtol=1e-12)
        scale = c / total
        for g, h in zip(grads, out):   # all scaled by the same factor
            np.testing.assert_allclose(h, g * scale, rtol=1e-12, atol=1e-300)


def test_clipvalue_bounds_each_element():
    rng = np.random.default_rng(6)
    grads = [rng.standard_normal(s) * 3 for s in SHAPES]
    out = _clipped({"clipvalue": 1.5}, grads)
    for g, h in zip(grads, out):
        assert np.all(np.abs(h) <= 1.5)
        np.testing.assert_array_equal(h, np.clip(g, -1.5, 1.5))


def test_clipnorm_huge_float32_gradient_no_overflow():
    # squares of 1e30 overflow float32; the norm must still be right
    g = np.full(4, 1e30, dtype=np.float32)
    p = np.zeros(4, dtype=np.float32)
    assert O.SGD(1.0, clipnorm=1.0).apply([("p", p, g)])
    np.testing.assert_allclose(np.linalg.norm(p.astype(np.float64)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, -0.5, rtol=1e-6)


def test_clip_zero_gradient():
    p = np.ones(3)
    assert O.SGD(1.0, clipnorm=1.0).apply([("p", p, np.zeros(3))])
    np.testing.assert_array_equal(p, np.ones(3))
    assert O.SGD(1.0, global_clipnorm=1.0).apply([("p", p, np.zeros(3))])
    np.testing.assert_array_equal(p, np.ones(3))


@pytest.mark.parametrize("kwargs", [
    {"clipnorm": 1.0, "clipvalue": 1.0},
    {"clipnorm": 1.0, "global_clipnorm": 1.0},
    {"clipvalue": 1.0, "global_clipnorm": 1.0},
    {"clipnorm": 1.0, "clipvalue": 2.0, "global_clipnorm": 3.0},
])
@pytest.mark.parametrize("cls", [O.SGD, O.Adam, O.AdamW, O.RMSprop, O.Adagrad])
def test_combined_clip_options_raise(cls, kwargs):
    with pytest.raises(ValueError, match="Only one of"):
        cls(**kwargs)


@pytest.mark.parametrize("key", ["clipnorm", "clipvalue", "global_clipnorm"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_bad_clip_values_raise(key, bad):
    with pytest.raises(ValueError, match=key):
        O.Adam(**{key: bad})


@pytest.mark.parametrize("bad", ["1.0", True, [1.0]])
def test_clip_value_type_error(bad):
    with pytest.raises(TypeError, match="clipnorm"):
        O.SGD(clipnorm=bad)


# --------------------------------------------------------------------------
# non-finite gradients and results: never applied
# --------------------------------------------------------------------------

def _snapshot(opt, ps):
    cfg, slots = opt.get_state()
    return ([p.copy() for p in ps], cfg, {k: v.copy() for k, v in slots.items()},
            opt.iterations)


def _assert_same(snap, opt, ps):
    ps0, cfg0, slots0, it0 = snap
    for a, b in zip(ps0, ps):
        assert a.tobytes() == b.tobytes()
    cfg, slots = opt.get_state()
    assert cfg == cfg0
    assert slots.keys() == slots0.keys()
    for k in slots:
        assert slots[k].tobytes() == slots0[k].tobytes(), k
    assert opt.iterations == it0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cls", [O.SGD, O.Adam, O.AdamW, O.RMSprop, O.Adagrad])
@pytest.mark.parametrize("clip", [{}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0},
                                  {"clipvalue": 1.0}])
def test_nonfinite_gradient_skips_whole_step(cls, bad, clip):
    rng = np.random.default_rng(7)
    kw = {"momentum": 0.9} if cls in (O.SGD, O.RMSprop) else {}
    opt = cls(**kw, **clip)
    ps = _params(rng, np.float32)
    for _ in range(2):
        assert opt.apply(_named(ps, _grads(rng, np.float32)))
    snap = _snapshot(opt, ps)
    gs = _grads(rng, np.float32)
    gs[2][1, 2, 0] = bad     # one bad element in the third tensor; others are fine
    assert opt.apply(_named(ps, gs)) is False
    _assert_same(snap, opt, ps)
    assert opt.skipped_steps == 1
    # a later finite step proceeds normally, with the step counter not advanced by the skip
    gs = _grads(rng, np.float32)
    assert opt.apply(_named(ps, gs)) is True
    _, slots = opt.get_state()
    assert int(slots["step.layers.0.w"]) == 3
    assert opt.iterations == 3


def test_nonfinite_raise_mode():
    rng = np.random.default_rng(8)
    opt = O.Adam(on_nonfinite="raise")
    ps = _params(rng, np.float64)
    opt.apply(_named(ps, _grads(rng, np.float64)))
    snap = _snapshot(opt, ps)
    gs = _grads(rng, np.float64)
    gs[0][0, 0] = np.nan
    with pytest.raises(O.NonFiniteGradientError, match="layers.0.w"):
        opt.apply(_named(ps, gs))
    assert issubclass(O.NonFiniteGradientError, ValueError)
    _assert_same(snap, opt, ps)
    with pytest.raises(ValueError, match="on_nonfinite"):
        O.Adam(on_nonfinite="ignore")


def test_overflowing_update_is_skipped():
    # finite gradients, but lr * g overflows float32: the result is never applied
    p = np.array([1.0, 2.0], dtype=np.float32)
    q = np.array([3.0], dtype=np.float32)
    opt = O.SGD(learning_rate=1e30)
    assert opt.apply([("q", q, np.array([1.0], np.float32)),
                      ("p", p, np.array([1e10, 1.0], np.float32))]) is False
    np.testing.assert_array_equal(p, [1.0, 2.0])
    np.testing.assert_array_equal(q, [3.0])     # even the tensor computed before it
    assert opt.iterations == 0 and opt.skipped_steps == 1


# --------------------------------------------------------------------------
# input validation: errors before anything changes
# --------------------------------------------------------------------------

def test_validation_errors_leave_everything_unchanged():
    rng = np.random.default_rng(9)
    p = rng.standard_normal((3, 2))
    q = rng.standard_normal(4)
    opt = O.Adam()
    opt.apply([("p", p, rng.standard_normal((3, 2))), ("q", q, rng.standard_normal(4))])
    snap = _snapshot(opt, [p, q])
    good = rng.standard_normal((3, 2))
    cases = [
        ([("p", p, good), ("q", q, np.ones(5))], ValueError, r"shape \(5,\).*\(4,\)"),
        ([("p", p, good), ("q", q.astype(np.int64), np.ones(4))], TypeError, "float32 or float64"),
        ([("p", p, good), ("q", list(q), np.ones(4))], TypeError, "ndarray"),
        ([("p", p, good), ("p", q, np.ones(4))], ValueError, "twice"),
        ([("p", p, good), (q, np.ones(4))], TypeError, "mix"),
        ([("p", p, good), ("q", q, np.array(["a"] * 4))], TypeError, "numeric"),
        ([("p", p, good), ("", q, np.ones(4))], TypeError, "non-empty"),
        ([("p", p, good), ("q", q)], TypeError, "mix"),
        ([("p", p, good), ("q", q, np.ones(4), 1)], TypeError, "triple"),
        (5, TypeError, "expects"),
    ]
    for items, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            opt.apply(items)
        _assert_same(snap, opt, [p, q])
    ro = q.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.apply([("p", p, good), ("q", ro, np.ones(4))])
    _assert_same(snap, opt, [p, q])
    # same name, different shape (another model): clear error, no silent broadcast
    with pytest.raises(ValueError, match="reset"):
        opt.apply([("p", np.zeros((2, 3)), np.ones((2, 3)))])
    _assert_same(snap, opt, [p, q])


@pytest.mark.parametrize("cls,kwargs,match", [
    (O.SGD, {"learning_rate": -0.1}, "learning_rate"),
    (O.SGD, {"momentum": -0.5}, "momentum"),
    (O.SGD, {"nesterov": True, "convention": "torch"}, "Nesterov"),
    (O.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov"),
    (O.SGD, {"weight_decay": -1.0}, "weight_decay"),
    (O.Adam, {"beta_1": 1.0}, "beta_1"),
    (O.Adam, {"beta_2": -0.1}, "beta_2"),
    (O.Adam, {"epsilon": -1e-8}, "epsilon"),
    (O.Adam, {"learning_rate": float("nan")}, "learning_rate"),
    (O.AdamW, {"weight_decay": -0.01}, "weight_decay"),
    (O.RMSprop, {"alpha": -0.1}, "alpha"),
    (O.RMSprop, {"momentum": -0.1}, "momentum"),
    (O.Adagrad, {"lr_decay": -0.1}, "lr_decay"),
    (O.Adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
])
def test_bad_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_hyperparameter_types():
    with pytest.raises(TypeError, match="amsgrad"):
        O.Adam(amsgrad="yes")
    with pytest.raises(TypeError, match="learning_rate"):
        O.Adam(learning_rate="0.1")
    with pytest.raises(TypeError, match="learning_rate"):
        O.Adam(learning_rate=True)
    with pytest.raises(TypeError, match="not both"):
        O.Adam(lr=0.1, learning_rate=0.1)     # one spelling at a time
    with pytest.raises(TypeError, match="betas"):
        O.Adam(betas=0.9)
    with pytest.raises(ValueError, match="PyTorch argument name"):
        O.RMSprop(alpha=0.9, convention="keras")
    with pytest.raises(ValueError, match="convention"):
        O.SGD(convention="tf")
    opt = O.SGD()
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    assert opt.learning_rate == 0.01


# --------------------------------------------------------------------------
# state, config, lookup
# --------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: O.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: O.Adam(0.01, amsgrad=True, clipnorm=1.0),
    lambda: O.AdamW(0.01),
    lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: O.Adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.1),
])
def test_state_roundtrip_resume_is_identical(make):
    rng = np.random.default_rng(10)
    ps = _params(rng, np.float32)
    grads = [_grads(rng, np.float32) for _ in range(6)]
    full = make()
    ps_full = [p.copy() for p in ps]
    for gs in grads:
        full.apply(_named(ps_full, gs))

    first = make()
    ps_b = [p.copy() for p in ps]
    for gs in grads[:3]:
        first.apply(_named(ps_b, gs))
    config, slots = first.get_state()
    # state is detached: later updates of `first` do not change the saved slots
    saved = {k: v.copy() for k, v in slots.items()}
    first.apply(_named([p.copy() for p in ps_b], grads[3]))
    for k in saved:
        np.testing.assert_array_equal(saved[k], slots[k])

    resumed = O.from_config(copy.deepcopy(config))
    resumed.set_state(config, slots, params={f"layers.{i}.w": p for i, p in enumerate(ps_b)})
    assert resumed.iterations == 3
    for gs in grads[3:]:
        resumed.apply(_named(ps_b, gs))
    for a, b in zip(ps_full, ps_b):
        np.testing.assert_array_equal(a, b)


def test_set_state_accepts_tuple():
    rng = np.random.default_rng(11)
    p = rng.standard_normal(3)
    a = O.Adam()
    a.apply([("p", p, rng.standard_normal(3))])
    b = O.Adam()
    b.set_state(a.get_state())
    assert b.get_state()[1].keys() == a.get_state()[1].keys()


def test_set_state_validation():
    rng = np.random.default_rng(12)
    p = rng.standard_normal((2, 3))
    a = O.Adam()
    a.apply([("p", p, rng.standard_normal((2, 3)))])
    config, slots = a.get_state()
    b = O.Adam()
    b.apply([("x", np.zeros(2), np.ones(2))])
    before = b.get_state()

    def check(exc, match, cfg, sl, params=None):
        with pytest.raises(exc, match=match):
            b.set_state(cfg, sl, params=params)
        after = b.get_state()
        assert after[0] == before[0]
        assert after[1].keys() == before[1].keys()

    check(ValueError, "cannot load it into Adam", O.serialize(O.SGD()), {})
    check(ValueError, "Unknown optimizer class", {"class_name": "os.system", "config": {}}, {})
    missing = {k: v for k, v in slots.items() if not k.startswith("exp_avg_sq.")}
    check(ValueError, "missing slots", config, missing)
    check(ValueError, "unexpected optimizer slot", config,
          {**slots, "momentum_buffer.p": np.zeros((2, 3))})
    check(ValueError, "unknown parameter", config, slots, params={"q": p})
    check(ValueError, "parameter has", config, slots, params={"p": np.zeros((3, 2))})
    check(ValueError, ">= 0", config, {**slots, "step.p": np.array(-1)})
    check(TypeError, "integer", config, {**slots, "step.p": np.array(1.5)})
    check(ValueError, "NaN", config, {**slots, "exp_avg.p": np.full((2, 3), np.nan)})
    check(ValueError, "expected", config, {**slots, "exp_avg.p": np.zeros((3, 2))})
    check(ValueError, "<slot>", config, {**slots, "nodot": np.zeros(2)})
    # amsgrad needs its slot
    check(ValueError, "missing slots",
          {"class_name": "Adam", "config": {**config["config"], "amsgrad": True}}, slots)


def test_set_state_restores_hyperparameters():
    a = O.Adam(learning_rate=0.123, beta_1=0.5, clipnorm=2.0)
    b = O.Adam()
    b.set_state(*a.get_state())
    assert b.get_config() == a.get_config()


@pytest.mark.parametrize("cls", [O.SGD, O.Adam, O.AdamW, O.RMSprop, O.Adagrad])
def test_config_roundtrip(cls):
    opt = cls(learning_rate=0.0321, global_clipnorm=4.0)
    cfg = opt.get_config()
    import json
    cfg2 = json.loads(json.dumps(O.serialize(opt)))
    again = O.from_config(cfg2)
    assert type(again) is cls
    assert again.get_config() == cfg
    assert type(opt).from_config(cfg).get_config() == cfg
    assert cls(**cfg).get_config() == cfg
    assert O.deserialize(O.serialize(opt)).get_config() == cfg
    assert repr(opt).startswith(cls.__name__)


def test_from_config_rejects_unknown():
    with pytest.raises(ValueError, match="Unknown optimizer class"):
        O.from_config({"class_name": "Optimizer", "config": {}})
    with pytest.raises(ValueError, match="Unknown Adam config keys"):
        O.from_config({"class_name": "Adam", "config": {"lrate": 0.1}})
    with pytest.raises(ValueError, match="class_name"):
        O.from_config({"config": {}})
    with pytest.raises(ValueError):
        O.from_config("Adam")


def test_get():
    for name, cls in [("sgd", O.SGD), ("adam", O.Adam), ("adamw", O.AdamW),
                      ("rmsprop", O.RMSprop), ("adagrad", O.Adagrad), ("Adam", O.Adam),
                      ("RMSprop", O.RMSprop), ("SGD", O.SGD)]:
        opt = O.get(name)
        assert type(opt) is cls
        assert opt.get_config() == cls().get_config()
    inst = O.Adam(0.5)
    assert O.get(inst) is inst
    assert type(O.get({"class_name": "SGD", "config": {"momentum": 0.9}})) is O.SGD
    with pytest.raises(ValueError, match="Unknown optimizer 'adamax'"):
        O.get("adamax")
    with pytest.raises(TypeError):
        O.get(3)
    with pytest.raises(TypeError):
        O.get(None)


def test_reset_and_counters():
    rng = np.random.default_rng(13)
    p = rng.standard_normal(3)
    opt = O.SGD(0.1, momentum=0.9)
    opt.apply([("p", p, rng.standard_normal(3))])
    assert opt.iterations == 1
    opt.reset()
    assert opt.iterations == 0
    assert list(opt.get_state()[1]) == ["iterations"]
    # after reset the momentum buffer starts from the gradient again (torch semantics)
    g = rng.standard_normal(3)
    before = p.copy()
    opt.apply([("p", p, g)])
    np.testing.assert_allclose(p, before - 0.1 * g, rtol=1e-15)


def test_empty_and_zero_size_params():
    opt = O.Adam()
    assert opt.apply([]) is True
    p = np.zeros((0, 3))
    assert opt.apply([("p", p, np.zeros((0, 3)))]) is True


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e30, 1.0])
def test_clipnorm_extreme_magnitudes_float64(scale):
    g = np.array([3.0, -4.0]) * scale
    p = np.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # no overflow/underflow warnings leak
        assert O.SGD(1.0, clipnorm=1e-3).apply([("p", p, g)])
    if 5.0 * scale > 1e-3:
        np.testing.assert_allclose(p, [-0.6e-3, 0.8e-3], rtol=1e-12)
    else:
        np.testing.assert_array_equal(p, -g)
    q = np.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert O.SGD(1.0, global_clipnorm=1e-3).apply([("q", q, g), ("r", np.zeros(1),
                                                                       np.zeros(1))])
    np.testing.assert_allclose(q, p, rtol=1e-12)


def test_hyperparameter_switched_on_after_steps():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    p = rng.standard_normal(4)
    tp = torch.tensor(p.copy(), requires_grad=True)
    ours = O.SGD(0.1)
    theirs = torch.optim.SGD([tp], lr=0.1)
    for k in range(4):
        if k == 2:   # momentum switched on mid-run, as a user or callback might do
            ours.momentum = 0.9
            theirs.param_groups[0]["momentum"] = 0.9
        g = rng.standard_normal(4)
        tp.grad = torch.tensor(g.copy())
        theirs.step()
        assert ours.apply([("p", p, g)])
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-14)
    a = O.Adam()
    q = rng.standard_normal(3)
    a.apply([("q", q, rng.standard_normal(3))])
    a.amsgrad = True
    assert a.apply([("q", q, rng.standard_normal(3))])
    assert "max_exp_avg_sq.q" in a.get_state()[1]
