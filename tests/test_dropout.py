"""Dropout: identity at inference, inverted scaling and statistics in training, seeds."""

import numpy as np
import pytest

from fastrnn.layers import Dropout


def test_inference_is_identity():
    d = Dropout(0.5, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(d.forward(x), x)
    np.testing.assert_array_equal(d.backward(x), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_training_statistics(rate):
    d = Dropout(rate, seed=1)
    x = np.ones((200, 500), dtype=np.float64)
    y = d.forward(x, training=True)
    kept = y != 0
    n = x.size
    # fraction kept ~ Binomial(n, 1 - rate): within 5 standard deviations
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 5 * sd
    np.testing.assert_allclose(y[kept], 1 / (1 - rate))
    assert abs(y.mean() - 1) < 5 * sd / (1 - rate)     # the mean is preserved
    assert y.dtype == x.dtype


def test_backward_uses_the_same_mask():
    d = Dropout(0.4, seed=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7, 3))
    y = d.forward(x, training=True)
    r = rng.standard_normal(x.shape)
    dx = d.backward(r)
    # y is linear in x with the (fixed) mask: dy/dx = mask * scale
    scale = np.where(y != 0, y / x, 0)
    np.testing.assert_allclose(dx, r * scale)
    assert ((dx == 0) == (y == 0)).all()


def test_seed_reproducible_and_masks_change_between_calls():
    x = np.ones((50, 40), np.float32)
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    ya1, yb1 = a.forward(x, training=True), b.forward(x, training=True)
    np.testing.assert_array_equal(ya1, yb1)
    ya2 = a.forward(x, training=True)
    assert not np.array_equal(ya1, ya2)
    a.reset_rng()
    np.testing.assert_array_equal(a.forward(x, training=True), ya1)
    assert not np.array_equal(Dropout(0.5, seed=4).forward(x, training=True), ya1)


def test_rate_zero_is_identity_in_training():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Dropout(0.0).forward(x, training=True), x)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None, True, float("nan")])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)


def test_bad_input_and_config():
    with pytest.raises(TypeError, match="float"):
        Dropout(0.5).forward(np.array([1, 2]), training=True)
    assert Dropout(0.25, seed=9).get_config()["rate"] == 0.25
    assert Dropout(0.25, seed=9).get_config()["seed"] == 9
    m = np.ones((2, 3), bool)
    assert Dropout(0.1).compute_mask(None, m) is m
