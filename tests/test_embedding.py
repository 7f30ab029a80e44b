"""Embedding: lookups, gradients (vs finite differences and torch), masks and bad ids."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn.layers import Embedding


def test_forward_is_a_lookup_and_backward_accumulates_repeats():
    rng = np.random.default_rng(0)
    emb = Embedding(6, 3, dtype="float64", seed=0)
    ids = np.array([[1, 2, 1], [5, 0, 1]])
    y = emb.forward(ids, training=True)
    assert y.shape == (2, 3, 3)
    np.testing.assert_array_equal(y, emb.params["weight"][ids])
    r = rng.standard_normal(y.shape)
    assert emb.backward(r) is None
    g = emb.grads["weight"]
    np.testing.assert_allclose(g[1], r[0, 0] + r[0, 2] + r[1, 2])
    np.testing.assert_allclose(g[3], 0)
    # finite differences on the weight
    w = emb.params["weight"]
    eps = 1e-6
    num = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        old = w[i]
        w[i] = old + eps
        fp = np.sum(emb.forward(ids) * r)
        w[i] = old - eps
        fm = np.sum(emb.forward(ids) * r)
        w[i] = old
        num[i] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)


def test_output_is_a_copy():
    emb = Embedding(4, 2, seed=0)
    y = emb.forward(np.array([[1]]))
    y[...] = 99
    assert not (emb.params["weight"] == 99).any()


def test_matches_torch_embedding():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    emb = Embedding(9, 4, seed=2)
    emb.build()
    t = torch.nn.Embedding(9, 4)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(emb.params["weight"]))
    ids = rng.integers(0, 9, (3, 7))
    y = emb.forward(ids, training=True)
    ty = t(torch.from_numpy(ids))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=0)
    r = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.from_numpy(r))
    emb.backward(r)
    np.testing.assert_allclose(emb.grads["weight"], t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_init_is_standard_normal_like_torch():
    # init="torch" keeps torch.nn.Embedding's N(0, 1); the default is Keras's U(-0.05, 0.05)
    emb = Embedding(400, 50, seed=0, init="torch")
    emb.forward(np.array([[0]]))
    w = emb.params["weight"]
    assert w.shape == (400, 50) and w.dtype == np.float32
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    emb2 = Embedding(400, 50, seed=0, init="torch")
    emb2.build()
    np.testing.assert_array_equal(w, emb2.params["weight"])


def test_mask_zero():
    emb = Embedding(5, 2, mask_zero=True, seed=0)
    ids = np.array([[3, 1, 0, 0], [2, 0, 4, 0]])
    m = emb.compute_mask(ids)
    np.testing.assert_array_equal(m, ids != 0)
    assert m.dtype == bool
    assert Embedding(5, 2).compute_mask(ids) is None
    assert emb.compute_output_shape((None, 4)) == (None, 4, 2)


def test_float_ids_with_integer_values_are_accepted():
    emb = Embedding(5, 2, seed=0)
    a = emb.forward(np.array([[1.0, 4.0]]))
    b = emb.forward(np.array([[1, 4]]))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ids,exc,match", [
    (np.array([[1, 5]]), ValueError, r"id 5 at position \(0, 1\).*input_dim=5"),
    (np.array([[-1, 2]]), ValueError, r"id -1 .*out of range"),
    (np.array([[1.5, 2]]), TypeError, "integer ids"),
    (np.array([[np.nan, 2]]), TypeError, "integer ids"),
    (np.array(["a", "b"]), TypeError, "integer ids"),
    (np.array([[True, False]]), TypeError, "integer ids"),
    (np.array(3), ValueError, "at least 1 dimension"),
])
def test_bad_ids(ids, exc, match):
    emb = Embedding(5, 2, seed=0)
    emb.build()
    before = emb.params["weight"].copy()
    with pytest.raises(exc, match=match):
        emb.forward(ids)
    np.testing.assert_array_equal(emb.params["weight"], before)


@pytest.mark.parametrize("kw,match", [
    (dict(input_dim=0, output_dim=2), "input_dim"),
    (dict(input_dim=3, output_dim=-2), "output_dim"),
    (dict(input_dim=3.0, output_dim=2), "input_dim"),
])
def test_bad_constructor_args(kw, match):
    with pytest.raises(ValueError, match=match):
        Embedding(**kw)


def test_backward_needs_training_forward():
    emb = Embedding(5, 2, seed=0)
    emb.forward(np.array([[1]]))
    with pytest.raises(RuntimeError, match="training=True"):
        emb.backward(np.zeros((1, 1, 2)))
    emb.forward(np.array([[1]]), training=True)
    with pytest.raises(ValueError, match="d_out"):
        emb.backward(np.zeros((1, 2, 2)))


def test_public_name():
    assert fr.Embedding is Embedding
