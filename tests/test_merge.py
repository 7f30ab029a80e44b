"""Merge layers: forward against NumPy formulas, backward against finite differences."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.layers import deserialize, serialize

from _gradcheck import check_layer_grads

F64 = {"dtype": "float64"}


def _xs(rng, shapes):
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("cls,n,formula", [
    (fr.Add, 3, lambda a: a[0] + a[1] + a[2]),
    (fr.Subtract, 2, lambda a: a[0] - a[1]),
    (fr.Multiply, 3, lambda a: a[0] * a[1] * a[2]),
    (fr.Average, 2, lambda a: (a[0] + a[1]) / 2),
])
def test_elementwise_forward_and_gradients(cls, n, formula):
    rng = np.random.default_rng(1)
    xs = _xs(rng, [(2, 3, 4)] * n)
    layer = cls(**F64)
    np.testing.assert_allclose(layer(xs), formula(xs), rtol=1e-15)
    check_layer_grads(layer, xs, rng)


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate(axis):
    rng = np.random.default_rng(2)
    shapes = {-1: [(2, 3, 4), (2, 3, 1), (2, 3, 2)], 2: [(2, 3, 4), (2, 3, 5)],
              1: [(2, 3, 4), (2, 1, 4)]}[axis]
    xs = _xs(rng, shapes)
    layer = fr.Concatenate(axis=axis, **F64)
    np.testing.assert_array_equal(layer(xs), np.concatenate(xs, axis=axis))
    assert layer.compute_output_shape([(None,) + s[1:] for s in shapes]) == \
        (None,) + np.concatenate(xs, axis=axis).shape[1:]
    check_layer_grads(layer, xs, rng)


@pytest.mark.parametrize("axes,shapes,normalize", [
    (1, [(3, 5), (3, 5)], False),
    (1, [(3, 5), (3, 5)], True),
    (2, [(2, 4, 3), (2, 6, 3)], False),
    ((1, 1), [(2, 4, 3), (2, 4, 5)], True),
    ((2, 1), [(2, 4, 3), (2, 3, 5)], False),
])
def test_dot(axes, shapes, normalize):
    rng = np.random.default_rng(3)
    xs = _xs(rng, shapes)
    layer = fr.Dot(axes, normalize=normalize, **F64)
    a0, a1 = (axes, axes) if isinstance(axes, int) else axes
    x0, x1 = xs
    if normalize:
        x0 = x0 / np.linalg.norm(x0, axis=a0, keepdims=True)
        x1 = x1 / np.linalg.norm(x1, axis=a1, keepdims=True)
    want = np.stack([np.tensordot(x0[b], x1[b], axes=(a0 - 1, a1 - 1)) for b in range(len(x0))])
    if want.ndim == 1:
        want = want[:, None]
    np.testing.assert_allclose(layer(xs), want, rtol=1e-12)
    assert layer.compute_output_shape([(None,) + s[1:] for s in shapes]) == \
        (None,) + want.shape[1:]
    check_layer_grads(layer, xs, rng)


def test_masks_are_combined():
    rng = np.random.default_rng(4)
    xs = _xs(rng, [(2, 3, 4)] * 2)
    m0 = np.array([[1, 1, 0], [1, 1, 1]], bool)
    m1 = np.array([[1, 0, 1], [1, 1, 1]], bool)
    add = fr.Add()
    np.testing.assert_array_equal(add.compute_mask(xs, [m0, m1]), m0 & m1)
    np.testing.assert_array_equal(add.compute_mask(xs, [m0, None]), m0)
    assert add.compute_mask(xs, [None, None]) is None
    cat_t = fr.Concatenate(axis=1)
    np.testing.assert_array_equal(cat_t.compute_mask(xs, [m0, None]),
                                  np.concatenate([m0, np.ones((2, 3), bool)], axis=1))
    assert fr.Dot(2).compute_mask(xs, [m0, m1]) is None


def test_bad_inputs_are_reported():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="same shape"):
        fr.Add()([rng.standard_normal((2, 3)), rng.standard_normal((2, 4))])
    with pytest.raises(ValueError, match="exactly 2"):
        fr.Subtract()(_xs(rng, [(2, 3)] * 3))
    with pytest.raises(TypeError, match="list of arrays"):
        fr.Add()(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="batch axis"):
        fr.Concatenate(axis=0)
    with pytest.raises(ValueError, match="same size"):
        fr.Dot(1)([rng.standard_normal((2, 3)), rng.standard_normal((2, 4))])
    with pytest.raises(ValueError, match="all axes but"):
        fr.Concatenate()([rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))])
    layer = fr.Add()
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((2, 3)))


@pytest.mark.parametrize("layer", [fr.Concatenate(axis=1), fr.Add(), fr.Subtract(),
                                   fr.Multiply(), fr.Average(), fr.Dot((1, 2), normalize=True)])
def test_config_round_trip(layer):
    again = deserialize(serialize(layer))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()
