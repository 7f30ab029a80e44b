"""fastrnn.optimizers against closed-form NumPy updates written out here (no torch needed).

Each rule is spelled out step by step in float64 from the formulas in the docstrings (Keras 3
and torch.optim).  Hyperparameters are chosen so that the usual slips change the result far
beyond the tolerance: a bias correction with t-1 or t+1, epsilon inside instead of outside a
square root (or the reverse), coupled instead of decoupled weight decay, the learning rate
outside instead of inside the momentum buffer.
"""

import math

import numpy as np
import pytest

from fastrnn import optimizers as O
from fastrnn.optimizers import schedules

STEPS = 6
SHAPE = (3, 4)


def _grads(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(SHAPE) for _ in range(STEPS)]


def _run(opt, p0, grads, lr_change=None):
    p = p0.copy()
    out = []
    for i, g in enumerate(grads):
        if lr_change is not None and i == lr_change[0]:
            opt.learning_rate = lr_change[1]
        assert opt.apply([("w", p, g)]) is True
        out.append(p.copy())
    return out


def _check(opt, expected_fn, seed, scale=1.0, lr_change=None):
    rng = np.random.default_rng(seed + 1000)
    p0 = rng.standard_normal(SHAPE)
    grads = _grads(seed, scale)
    got = _run(opt, p0, grads, lr_change)
    want = expected_fn(p0.copy(), grads)
    for t, (a, b) in enumerate(zip(got, want), 1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")


def _lrs(lr, lr_change):
    """Learning rate of each step (0-based) when it is changed before step lr_change[0]."""
    return [lr_change[1] if lr_change and i >= lr_change[0] else lr for i in range(STEPS)]


# ------------------------------------------------------------------ Keras convention

@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0),
                                                  (0.8, True, 0.0), (0.7, False, 0.1),
                                                  (0.0, False, 0.2)])
def test_keras_sgd(momentum, nesterov, wd):
    lr, change = 0.1, (3, 0.02)

    def expected(p, grads):
        m = np.zeros_like(p)
        out = []
        for g, a in zip(grads, _lrs(lr, change)):
            p = p - p * wd * a
            if momentum == 0:
                p = p - a * g
            else:
                m = momentum * m - a * g
                p = p + (momentum * m - a * g if nesterov else m)
            out.append(p)
        return out

    opt = O.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    assert opt.convention == "keras"
    _check(opt, expected, seed=1, lr_change=change)


@pytest.mark.parametrize("amsgrad,wd,cls", [(False, 0.0, O.Adam), (True, 0.0, O.Adam),
                                            (False, 0.05, O.Adam), (False, 0.05, O.AdamW)])
def test_keras_adam(amsgrad, wd, cls):
    lr, b1, b2, eps = 0.05, 0.8, 0.9, 1e-2

    def expected(p, grads):
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        vmax = np.zeros_like(p)
        out = []
        for t, g in enumerate(grads, 1):
            p = p - p * wd * lr
            m = m + (g - m) * (1 - b1)
            v = v + (g * g - v) * (1 - b2)
            vmax = np.maximum(vmax, v)
            a = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            p = p - a * m / (np.sqrt(vmax if amsgrad else v) + eps)
            out.append(p)
        return out

    opt = cls(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, amsgrad=amsgrad,
              weight_decay=wd)
    _check(opt, expected, seed=2, scale=0.1)


@pytest.mark.parametrize("momentum,centered,wd", [(0.0, False, 0.0), (0.5, False, 0.0),
                                                  (0.0, True, 0.0), (0.5, True, 0.1)])
def test_keras_rmsprop_epsilon_inside_sqrt(momentum, centered, wd):
    lr, rho, eps = 0.01, 0.8, 1e-3

    def expected(p, grads):
        v = np.zeros_like(p)
        a = np.zeros_like(p)
        b = np.zeros_like(p)
        out = []
        for g in grads:
            p = p - p * wd * lr
            v = rho * v + (1 - rho) * g * g
            if centered:
                a = rho * a + (1 - rho) * g
                inc = lr * g / np.sqrt(v - a * a + eps)
            else:
                inc = lr * g / np.sqrt(v + eps)
            if momentum > 0:
                b = momentum * b + inc
                p = p - b
            else:
                p = p - inc
            out.append(p)
        return out

    opt = O.RMSprop(learning_rate=lr, rho=rho, momentum=momentum, epsilon=eps,
                    centered=centered, weight_decay=wd)
    _check(opt, expected, seed=3, scale=0.05)


def test_keras_adagrad():
    lr, init, eps = 0.1, 0.1, 1e-2

    def expected(p, grads):
        s = np.full_like(p, init)
        out = []
        for g in grads:
            s = s + g * g
            p = p - lr * g / np.sqrt(s + eps)
            out.append(p)
        return out

    _check(O.Adagrad(learning_rate=lr, initial_accumulator_value=init, epsilon=eps), expected,
           seed=4, scale=0.1)


# ------------------------------------------------------------------ PyTorch convention

@pytest.mark.parametrize("momentum,nesterov,wd,damp", [(0.0, False, 0.0, 0.0),
                                                       (0.9, False, 0.1, 0.0),
                                                       (0.8, True, 0.05, 0.0),
                                                       (0.5, False, 0.0, 0.3)])
def test_torch_sgd(momentum, nesterov, wd, damp):
    lr, change = 0.1, (3, 0.02)

    def expected(p, grads):
        b = None
        out = []
        for g, a in zip(grads, _lrs(lr, change)):
            g = g + wd * p
            if momentum:
                b = g.copy() if b is None else momentum * b + (1 - damp) * g
                g = g + momentum * b if nesterov else b
            p = p - a * g
            out.append(p)
        return out

    opt = O.SGD(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd, dampening=damp)
    assert opt.convention == "torch"
    _check(opt, expected, seed=5, lr_change=change)


@pytest.mark.parametrize("amsgrad,wd,cls", [(False, 0.0, O.Adam), (True, 0.0, O.Adam),
                                            (False, 0.05, O.Adam), (True, 0.05, O.AdamW)])
def test_torch_adam(amsgrad, wd, cls):
    lr, b1, b2, eps = 0.05, 0.8, 0.9, 1e-2

    def expected(p, grads):
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        vmax = np.zeros_like(p)
        out = []
        for t, g in enumerate(grads, 1):
            if cls is O.AdamW:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vmax = np.maximum(vmax, v)
            vh = vmax if amsgrad else v
            denom = np.sqrt(vh) / math.sqrt(1 - b2 ** t) + eps
            p = p - (lr / (1 - b1 ** t)) * m / denom
            out.append(p)
        return out

    opt = cls(lr=lr, betas=(b1, b2), eps=eps, amsgrad=amsgrad, weight_decay=wd)
    _check(opt, expected, seed=6, scale=0.1)


@pytest.mark.parametrize("momentum,centered,wd", [(0.0, False, 0.0), (0.5, False, 0.1),
                                                  (0.0, True, 0.0), (0.5, True, 0.0)])
def test_torch_rmsprop_epsilon_outside_sqrt(momentum, centered, wd):
    lr, alpha, eps = 0.01, 0.8, 1e-3

    def expected(p, grads):
        v = np.zeros_like(p)
        a = np.zeros_like(p)
        b = np.zeros_like(p)
        out = []
        for g in grads:
            g = g + wd * p
            v = alpha * v + (1 - alpha) * g * g
            if centered:
                a = alpha * a + (1 - alpha) * g
                s = np.sqrt(v - a * a) + eps
            else:
                s = np.sqrt(v) + eps
            if momentum > 0:
                b = momentum * b + g / s
                p = p - lr * b
            else:
                p = p - lr * g / s
            out.append(p)
        return out

    opt = O.RMSprop(lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
                    weight_decay=wd)
    _check(opt, expected, seed=7, scale=0.05)


def test_torch_adagrad():
    lr, lr_decay, init, eps, wd = 0.1, 0.2, 0.3, 1e-2, 0.05

    def expected(p, grads):
        s = np.full_like(p, init)
        out = []
        for t, g in enumerate(grads, 1):
            g = g + wd * p
            clr = lr / (1 + (t - 1) * lr_decay)
            s = s + g * g
            p = p - clr * g / (np.sqrt(s) + eps)
            out.append(p)
        return out

    opt = O.Adagrad(lr=lr, lr_decay=lr_decay, initial_accumulator_value=init, eps=eps,
                    weight_decay=wd)
    _check(opt, expected, seed=8, scale=0.1)


# ------------------------------------------------------------------ defaults and names

KERAS_DEFAULTS = {
    # keras.optimizers.<name>() defaults (Keras 3 documentation)
    "sgd": (O.SGD, dict(learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0)),
    "adam": (O.Adam, dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                          amsgrad=False, weight_decay=0.0)),
    "adamw": (O.AdamW, dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                            amsgrad=False, weight_decay=0.004)),
    "rmsprop": (O.RMSprop, dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                                centered=False, weight_decay=0.0)),
    "adagrad": (O.Adagrad, dict(learning_rate=0.001, initial_accumulator_value=0.1,
                                epsilon=1e-7, weight_decay=0.0)),
}


@pytest.mark.parametrize("name", sorted(KERAS_DEFAULTS))
def test_by_name_gets_keras_defaults(name):
    cls, defaults = KERAS_DEFAULTS[name]
    for ident in (name, name.upper()):
        opt = O.get(ident)
        assert type(opt) is cls and opt.convention == "keras"
        cfg = opt.get_config()
        for k, v in defaults.items():
            assert cfg[k] == v, (name, k)
    assert "dampening" not in cls().get_config() and "lr_decay" not in cls().get_config()


def test_compile_rmsprop_is_keras_rmsprop():
    import fastrnn as fr
    model = fr.Sequential([fr.Dense(2)])
    model.compile(optimizer="rmsprop", loss="mse")
    opt = model.optimizer
    assert isinstance(opt, O.RMSprop) and opt.convention == "keras"
    assert (opt.learning_rate, opt.rho, opt.epsilon) == (0.001, 0.9, 1e-7)


def test_keras_names_and_positional_order():
    # Keras's positional order: RMSprop(learning_rate, rho, momentum, epsilon, centered, ...)
    opt = O.RMSprop(0.002, 0.8, 0.1, 1e-5, True)
    assert (opt.learning_rate, opt.rho, opt.momentum, opt.epsilon, opt.centered) == \
        (0.002, 0.8, 0.1, 1e-5, True)
    # Adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)
    opt = O.Adam(0.002, 0.8, 0.99, 1e-5, True, 0.01)
    assert (opt.beta_1, opt.beta_2, opt.epsilon, opt.amsgrad, opt.weight_decay) == \
        (0.8, 0.99, 1e-5, True, 0.01)
    opt = O.Adagrad(0.1, 0.2, 1e-3)
    assert (opt.initial_accumulator_value, opt.epsilon) == (0.2, 1e-3)
    # PyTorch spellings are aliases, and select PyTorch's rules
    t = O.RMSprop(lr=0.1, alpha=0.5, eps=1e-3)
    assert (t.learning_rate, t.rho, t.alpha, t.epsilon, t.convention) == \
        (0.1, 0.5, 0.5, 1e-3, "torch")
    t = O.Adam(betas=(0.5, 0.6))
    assert (t.beta_1, t.beta_2, t.convention, t.epsilon) == (0.5, 0.6, "torch", 1e-8)


@pytest.mark.parametrize("cls", [O.SGD, O.Adam, O.AdamW, O.RMSprop, O.Adagrad])
@pytest.mark.parametrize("convention", ["keras", "torch"])
def test_config_roundtrip_keeps_convention(cls, convention):
    opt = cls(convention=convention)
    again = O.deserialize(O.serialize(opt))
    assert again.convention == convention and again.get_config() == opt.get_config()


def test_old_configs_without_convention_load_as_torch():
    # written before conventions existed: torch rules with Keras spellings, RMSprop's "alpha"
    old = {"class_name": "RMSprop", "config": {
        "learning_rate": 0.01, "alpha": 0.99, "epsilon": 1e-8, "weight_decay": 0.0,
        "momentum": 0.0, "centered": False, "clipnorm": None, "clipvalue": None,
        "global_clipnorm": None, "on_nonfinite": "skip"}}
    opt = O.deserialize(old)
    assert opt.convention == "torch" and opt.rho == 0.99


# ------------------------------------------------------------------ schedules as learning_rate

def test_schedule_as_learning_rate_is_read_at_iterations():
    sched = schedules.PiecewiseConstantDecay([1, 3], [0.5, 0.1, 0.01])
    opt = O.SGD(learning_rate=sched)

    def expected(p, grads):
        out = []
        for i, g in enumerate(grads):       # i = iterations before the step
            lr = 0.5 if i <= 1 else (0.1 if i <= 3 else 0.01)
            p = p - lr * g
            out.append(p)
        return out

    _check(opt, expected, seed=9)
    assert opt.learning_rate == 0.01 and opt.iterations == STEPS
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        opt.learning_rate = 0.1
    cfg = O.serialize(opt)
    again = O.deserialize(cfg)
    assert isinstance(again.learning_rate_schedule, schedules.PiecewiseConstantDecay)
    assert again.learning_rate == 0.5          # a fresh optimizer starts at step 0


def test_skipped_step_does_not_advance_the_schedule():
    opt = O.SGD(learning_rate=schedules.InverseTimeDecay(1.0, 1.0, 1.0))
    p = np.zeros(2)
    assert opt.apply([("w", p, np.array([np.nan, 0.0]))]) is False
    assert opt.learning_rate == 1.0
    assert opt.apply([("w", p, np.ones(2))]) is True
    assert opt.learning_rate == 0.5


# ------------------------------------------------------------------ hostile step counters

@pytest.mark.parametrize("key", ["iterations", "step.w"])
def test_step_counter_above_2_53_rejected(key):
    opt = O.Adam()
    p = np.ones(3)
    opt.apply([("w", p, np.ones(3))])
    config, slots = opt.get_state()
    before = opt.get_state()
    slots = dict(slots)
    slots[key] = np.array(2 ** 53 + 1, dtype=np.int64)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        opt.set_state(config, slots)
    after = opt.get_state()
    assert after[0] == before[0] and after[1].keys() == before[1].keys()
    slots[key] = np.array(2 ** 53, dtype=np.int64)       # the bound itself is accepted
    opt.set_state(config, slots)
    slots[key] = np.array(2 ** 64 - 1, dtype=np.uint64)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        opt.set_state(config, slots)


def test_schedule_survives_state_and_model_file(tmp_path):
    import fastrnn as fr
    sched = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    m = fr.Sequential([fr.Dense(1)], seed=0)
    m.compile(O.SGD(learning_rate=sched, momentum=0.5), "mse")
    x = np.ones((4, 3), np.float32)
    y = np.zeros((4, 1), np.float32)
    m.fit(x, y, batch_size=2, epochs=1, verbose=0)            # 2 steps
    assert m.optimizer.iterations == 2
    assert m.optimizer.learning_rate == pytest.approx(0.05)
    path = tmp_path / "m.safetensors"
    m.save(path)
    m2 = fr.load_model(path)
    assert isinstance(m2.optimizer.learning_rate_schedule, schedules.ExponentialDecay)
    assert m2.optimizer.iterations == 2 and m2.optimizer.learning_rate == pytest.approx(0.05)
    # both continue identically
    m.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    m2.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_schedule_overflow_is_rejected_before_any_change():
    p = np.ones(2)
    opt2 = O.SGD(learning_rate=schedules.ExponentialDecay(1.0, 1.0, 1e300))
    opt2.iterations = 5                       # 1e300 ** 5 overflows: an infinite rate
    before = p.copy()
    with pytest.raises(ValueError, match="learning_rate"):
        opt2.apply([("w", p, np.ones(2))])
    np.testing.assert_array_equal(p, before)
