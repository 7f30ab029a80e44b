"""Keras-convention optimizers, schedules, new losses and metrics against Keras 3 itself
(skipped when keras is not installed; any backend)."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from fastrnn import losses, metrics  # noqa: E402
from fastrnn import optimizers as O  # noqa: E402
from fastrnn.optimizers import schedules as S  # noqa: E402


pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


CASES = [
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("Adam", dict()),
    ("Adam", dict(learning_rate=0.01, beta_1=0.8, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(learning_rate=0.01)),
    ("RMSprop", dict()),
    ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True)),
    ("Adagrad", dict(learning_rate=0.1)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                    enumerate(CASES)])
def test_optimizer_matches_keras(name, kwargs):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [(0.1 * rng.standard_normal((3, 4))).astype(np.float32) for _ in range(8)]
    kopt = getattr(keras.optimizers, name)(**kwargs)
    ours = getattr(O, name)(**kwargs)
    assert ours.convention == "keras"
    v = keras.Variable(p0.copy(), dtype="float32")
    p = p0.copy()
    for g in grads:
        kopt.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
        ours.apply([("w", p, g)])
        np.testing.assert_allclose(p, _np(v), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_match_keras(name):
    kcfg = getattr(keras.optimizers, name)().get_config()
    ours = getattr(O, name)().get_config()
    for k in ("learning_rate", "beta_1", "beta_2", "epsilon", "rho", "momentum", "nesterov",
              "amsgrad", "centered", "initial_accumulator_value"):
        if k in kcfg:
            assert ours[k] == pytest.approx(kcfg[k]), (name, k)
    assert ours["weight_decay"] == pytest.approx(kcfg["weight_decay"] or 0.0)


@pytest.mark.parametrize("make", [
    lambda m: m.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    lambda m: m.ExponentialDecay(0.1, 7, 0.5),
    lambda m: m.PiecewiseConstantDecay([5, 10], [0.3, 0.2, 0.1]),
    lambda m: m.CosineDecay(0.1, 20, alpha=0.1),
    lambda m: m.CosineDecay(0.1, 20, alpha=0.1, warmup_target=0.3, warmup_steps=5),
    lambda m: m.InverseTimeDecay(0.1, 3, 0.5, staircase=True),
])
def test_schedules_match_keras(make):
    ks, ours = make(keras.optimizers.schedules), make(S)
    for step in range(40):
        assert ours(step) == pytest.approx(float(_np(ks(step))), rel=1e-6, abs=1e-9), step


def test_losses_match_keras():
    rng = np.random.default_rng(1)
    t = rng.standard_normal((5, 3)).astype(np.float32)
    p = (2 * rng.standard_normal((5, 3))).astype(np.float32)
    assert losses.Huber(delta=0.7)(t, p) == pytest.approx(
        float(_np(keras.losses.Huber(delta=0.7)(t, p))), rel=1e-5)
    pt = rng.dirichlet(np.ones(4), 6).astype(np.float32)
    pp = rng.dirichlet(np.ones(4), 6).astype(np.float32)
    assert losses.KLDivergence()(pt, pp) == pytest.approx(
        float(_np(keras.losses.KLDivergence()(pt, pp))), rel=1e-5)
    sw = rng.uniform(0, 2, 5).astype(np.float32)
    assert losses.MeanSquaredError()(t, p, sample_weight=sw) == pytest.approx(
        float(_np(keras.losses.MeanSquaredError()(t, p, sample_weight=sw))), rel=1e-5)


def test_metrics_match_keras():
    rng = np.random.default_rng(2)
    y = (rng.random(200) < 0.4).astype(np.float32)
    s = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1).astype(np.float32)
    for ours, theirs in [(metrics.AUC(), keras.metrics.AUC()),
                         (metrics.AUC(curve="PR"), keras.metrics.AUC(curve="PR")),
                         (metrics.AUC(num_thresholds=20, summation_method="minoring"),
                          keras.metrics.AUC(num_thresholds=20, summation_method="minoring")),
                         (metrics.Precision(), keras.metrics.Precision()),
                         (metrics.Recall(thresholds=0.3), keras.metrics.Recall(thresholds=0.3))]:
        for a in range(0, 200, 50):
            ours.update_state(y[a:a + 50], s[a:a + 50])
            theirs.update_state(y[a:a + 50], s[a:a + 50])
        assert ours.result() == pytest.approx(float(_np(theirs.result())), rel=1e-5, abs=1e-6)
