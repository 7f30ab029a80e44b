"""fastrnn.optimizers.schedules against Keras's documented formulas."""

import math

import pytest

from fastrnn.optimizers import schedules as S

STEPS = [0, 1, 5, 9, 10, 11, 25, 100, 1000]


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay(staircase):
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.96, staircase=staircase)
    for step in STEPS:
        p = step // 10 if staircase else step / 10
        assert s(step) == pytest.approx(0.1 * 0.96 ** p, rel=1e-15), step
    assert s(0) == 0.1


def test_piecewise_constant_decay_boundaries_inclusive_below():
    # Keras docs: 1.0 for the first 100001 steps (step <= 100000), 0.5 for the next 10000,
    # 0.1 after
    s = S.PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1])
    assert [s(0), s(100000), s(100001), s(110000), s(110001), s(10 ** 9)] == \
        [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    single = S.PiecewiseConstantDecay([], [0.3])
    assert single(0) == single(10 ** 6) == 0.3


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_cosine_decay(alpha):
    s = S.CosineDecay(2.0, decay_steps=20, alpha=alpha)
    for step in STEPS:
        k = min(step, 20)
        want = 2.0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * k / 20)) + alpha)
        assert s(step) == pytest.approx(want, rel=1e-14, abs=1e-15), step
    assert s(0) == pytest.approx(2.0) and s(20) == pytest.approx(2.0 * alpha, abs=1e-15)
    assert s(1000) == s(20)


def test_cosine_decay_with_warmup():
    s = S.CosineDecay(0.0, decay_steps=10, alpha=0.0, warmup_target=1.0, warmup_steps=4)
    assert [s(k) for k in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    for k in range(4, 20):
        d = min(k - 4, 10)
        assert s(k) == pytest.approx(0.5 * (1 + math.cos(math.pi * d / 10)), abs=1e-15), k


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay(staircase):
    s = S.InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5, staircase=staircase)
    for step in STEPS:
        assert s(step) == pytest.approx(0.1 / (1 + 0.5 * step), rel=1e-15)
    s = S.InverseTimeDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=staircase)
    for step in STEPS:
        p = step // 4 if staircase else step / 4
        assert s(step) == pytest.approx(0.1 / (1 + 0.5 * p), rel=1e-15)


@pytest.mark.parametrize("make", [
    lambda: S.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    lambda: S.PiecewiseConstantDecay([5, 10], [0.3, 0.2, 0.1]),
    lambda: S.CosineDecay(0.1, 100, alpha=0.01, warmup_target=0.2, warmup_steps=10),
    lambda: S.InverseTimeDecay(0.1, 10, 0.5),
])
def test_serialize_roundtrip(make):
    s = make()
    again = S.deserialize(S.serialize(s))
    assert type(again) is type(s) and again.get_config() == s.get_config()
    assert [again(k) for k in STEPS] == [s(k) for k in STEPS]
    assert repr(s).startswith(type(s).__name__)


@pytest.mark.parametrize("bad,exc", [
    (lambda: S.ExponentialDecay(0.1, 0, 0.9), ValueError),
    (lambda: S.ExponentialDecay(-0.1, 10, 0.9), ValueError),
    (lambda: S.ExponentialDecay(0.1, 10, float("nan")), ValueError),
    (lambda: S.ExponentialDecay("0.1", 10, 0.9), TypeError),
    (lambda: S.ExponentialDecay(0.1, 10, 0.9, staircase=1), TypeError),
    (lambda: S.PiecewiseConstantDecay([10, 5], [1, 2, 3]), ValueError),
    (lambda: S.PiecewiseConstantDecay([10], [1]), ValueError),
    (lambda: S.PiecewiseConstantDecay(10, [1, 2]), TypeError),
    (lambda: S.CosineDecay(0.1, -1), ValueError),
    (lambda: S.InverseTimeDecay(0.1, 10, -1), ValueError),
    (lambda: S.deserialize({"class_name": "os.system", "config": {}}), ValueError),
    (lambda: S.deserialize({"class_name": "CosineDecay", "config": {"evil": 1}}), TypeError),
    (lambda: S.deserialize("CosineDecay"), ValueError),
])
def test_bad_arguments(bad, exc):
    with pytest.raises(exc):
        bad()


@pytest.mark.parametrize("step", [-1, float("nan"), "3", True])
def test_bad_step(step):
    with pytest.raises((TypeError, ValueError)):
        S.ExponentialDecay(0.1, 10, 0.9)(step)
