"""Losses: values and gradients against torch.nn.functional and finite differences, masks,
numerical stability, names and bad inputs."""

import numpy as np
import pytest

from fastrnn import losses


def numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def case(name, shape, rng):
    """(loss object, y_true, y_pred) with well-conditioned random values."""
    if name == "mse":
        return losses.MeanSquaredError(), rng.standard_normal(shape), rng.standard_normal(shape)
    if name == "mae":
        return losses.MeanAbsoluteError(), rng.standard_normal(shape), rng.standard_normal(shape)
    if name == "bce":
        return (losses.BinaryCrossentropy(), (rng.random(shape) > 0.5).astype(float),
                rng.uniform(0.05, 0.95, shape))
    if name == "bce_logits":
        return (losses.BinaryCrossentropy(from_logits=True), rng.random(shape),
                3 * rng.standard_normal(shape))
    if name == "cce":
        p = rng.random(shape) + 0.1
        t = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
        return losses.CategoricalCrossentropy(), t, p / p.sum(-1, keepdims=True)
    if name == "cce_logits":
        t = rng.random(shape)
        return (losses.CategoricalCrossentropy(from_logits=True), t / t.sum(-1, keepdims=True),
                2 * rng.standard_normal(shape))
    if name == "scce":
        p = rng.random(shape) + 0.1
        return (losses.SparseCategoricalCrossentropy(), rng.integers(0, shape[-1], shape[:-1]),
                p / p.sum(-1, keepdims=True))
    if name == "scce_logits":
        return (losses.SparseCategoricalCrossentropy(from_logits=True),
                rng.integers(0, shape[-1], shape[:-1]), 2 * rng.standard_normal(shape))
    raise KeyError(name)


NAMES = ["mse", "mae", "bce", "bce_logits", "cce", "cce_logits", "scce", "scce_logits"]


def torch_value(torch, name, t, p):
    F = torch.nn.functional
    if name == "mse":
        return F.mse_loss(p, t)
    if name == "mae":
        return F.l1_loss(p, t)
    if name == "bce":
        return F.binary_cross_entropy(p, t)
    if name == "bce_logits":
        return F.binary_cross_entropy_with_logits(p, t)
    C = p.shape[-1]
    if name == "cce":
        return F.nll_loss(torch.log(p).reshape(-1, C), t.reshape(-1, C).argmax(-1))
    if name == "cce_logits":
        return F.cross_entropy(p.reshape(-1, C), t.reshape(-1, C))
    if name == "scce":
        return F.nll_loss(torch.log(p).reshape(-1, C), t.reshape(-1))
    if name == "scce_logits":
        return F.cross_entropy(p.reshape(-1, C), t.reshape(-1))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 3)])
def test_matches_torch(name, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    loss, t, p = case(name, shape, rng)
    value, grad = loss.loss_and_gradient(t, p)
    tp = torch.from_numpy(p).requires_grad_()
    tt = torch.from_numpy(t)
    tv = torch_value(torch, name, tt, tp)
    tv.backward()
    np.testing.assert_allclose(value, tv.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert isinstance(value, float) and grad.shape == p.shape


@pytest.mark.parametrize("name", NAMES)
def test_gradient_finite_differences_with_mask(name):
    rng = np.random.default_rng(1)
    loss, t, p = case(name, (3, 4, 3), rng)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
    value, grad = loss.loss_and_gradient(t, p, mask)
    num = numeric_grad(lambda: loss(t, p, mask), p)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-9)
    assert (grad[~mask] == 0).all()
    # masked mean == mean over the valid positions only
    valid = [loss(t[b:b + 1, mask[b]], p[b:b + 1, mask[b]]) * mask[b].sum() for b in range(3)]
    np.testing.assert_allclose(value, sum(valid) / mask.sum(), rtol=1e-12)


def test_mask_without_valid_steps_and_ignored_for_2d():
    rng = np.random.default_rng(2)
    loss, t, p = case("mse", (2, 3, 2), rng)
    v, g = loss.loss_and_gradient(t, p, np.zeros((2, 3), bool))
    assert v == 0 and (g == 0).all()
    loss, t, p = case("mse", (2, 3), rng)
    assert loss(t, p, np.zeros((2, 3), bool)) == loss(t, p)     # 2-D output: no time axis


def test_padded_labels_outside_mask_are_not_checked():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    p = np.zeros((1, 3, 4))
    y = np.array([[1, 2, -1]])
    mask = np.array([[True, True, False]])
    assert np.isfinite(loss(y, p, mask))
    with pytest.raises(ValueError, match="out of range"):
        loss(y, p)


def test_logits_are_stable_for_huge_values():
    z = np.array([[1e4, -1e4, 0.0], [-3e4, 5e3, 0.0]], np.float32)
    y = np.array([1, 0])
    v, g = losses.SparseCategoricalCrossentropy(True).loss_and_gradient(y, z)
    assert np.isfinite(v) and np.isfinite(g).all()
    np.testing.assert_allclose(v, (2e4 + 3.5e4) / 2, rtol=1e-6)
    assert g.dtype == np.float32
    v, g = losses.CategoricalCrossentropy(True).loss_and_gradient(np.eye(3)[[1, 0]], z)
    np.testing.assert_allclose(v, (2e4 + 3.5e4) / 2, rtol=1e-6)
    v, g = losses.BinaryCrossentropy(True).loss_and_gradient(np.array([[0.0], [1.0]]),
                                                             np.array([[800.0], [-800.0]]))
    np.testing.assert_allclose(v, 800.0)
    assert np.isfinite(g).all()


def test_probabilities_are_clipped_not_infinite():
    v, g = losses.BinaryCrossentropy().loss_and_gradient(np.array([[1.0, 0.0]]),
                                                         np.array([[0.0, 1.0]]))
    assert np.isfinite(v) and np.isfinite(g).all()
    np.testing.assert_allclose(v, -np.log(1e-7), rtol=1e-6)
    v = losses.SparseCategoricalCrossentropy()(np.array([0]), np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(v, -np.log(1e-7), rtol=1e-6)


def test_shapes_broadcast_trailing_unit_axis_and_dtype():
    rng = np.random.default_rng(3)
    p = rng.standard_normal((6, 1)).astype(np.float32)
    t = rng.standard_normal(6)
    v1, g1 = losses.MeanSquaredError().loss_and_gradient(t, p)
    v2 = losses.MeanSquaredError()(t[:, None], p)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    assert g1.dtype == np.float32 and g1.shape == (6, 1)
    # 1-D predictions
    v3, g3 = losses.MeanSquaredError().loss_and_gradient(t, p[:, 0])
    np.testing.assert_allclose(v3, v2, rtol=1e-6)
    assert g3.shape == (6,)
    # sparse labels with a trailing axis of 1
    z = rng.standard_normal((4, 3))
    y = np.array([0, 2, 1, 1])
    scce = losses.SparseCategoricalCrossentropy(True)
    assert scce(y, z) == scce(y[:, None], z)
    assert scce(y.astype(float), z) == scce(y, z)


@pytest.mark.parametrize("name,cls", [
    ("mse", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
    ("mae", losses.MeanAbsoluteError), ("binary_crossentropy", losses.BinaryCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
])
def test_get_by_name(name, cls):
    assert type(losses.get(name)) is cls
    obj = cls()
    assert losses.get(obj) is obj
    d = losses.serialize(obj)
    assert type(losses.get(d)) is cls


def test_get_rejects_unknown():
    with pytest.raises(ValueError, match="unknown loss name 'hinge'"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="loss"):
        losses.get(3)
    with pytest.raises(ValueError, match="class_name"):
        losses.get({"class_name": "os.system"})
    with pytest.raises(TypeError, match="from_logits"):
        losses.BinaryCrossentropy(from_logits="yes")


def test_bad_inputs():
    mse = losses.MeanSquaredError()
    with pytest.raises(ValueError, match=r"y_true shape \(3, 2\).*y_pred shape \(3, 4\)"):
        mse(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(TypeError, match="y_pred"):
        mse(np.zeros(3), np.array(["a", "b", "c"]))
    scce = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"got 3, expected 0 <= id < 3"):
        scce(np.array([0, 3]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="integer class ids"):
        scce(np.array([0.5, 1]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="shape"):
        scce(np.array([0, 1, 1]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="mask"):
        mse(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="mask"):
        mse(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), np.ones((2, 3)))


def test_functional_forms():
    t, p = np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])
    assert losses.mean_squared_error(t, p) == pytest.approx(0.25)
    assert losses.mean_absolute_error(t, p) == pytest.approx(0.5)
    assert losses.categorical_crossentropy(t, p) == pytest.approx(np.log(2))
    assert losses.sparse_categorical_crossentropy(np.array([0]), p) == pytest.approx(np.log(2))
    assert losses.binary_crossentropy(t, p) == pytest.approx(np.log(2))


# ---------------------------------------------------------------- Huber, KLDivergence

def test_huber_by_hand_and_gradient():
    y_true = np.array([[0.0, 0.0, 1.0], [2.0, -1.0, 0.5]])
    y_pred = np.array([[0.5, 3.0, -1.5], [2.2, -4.0, 0.5]])
    # x = [[.5, 3, -2.5], [.2, -3, 0]]; delta 1: quadratic |x|<=1, else |x| - 0.5
    want = np.mean([np.mean([0.125, 2.5, 2.0]), np.mean([0.02, 2.5, 0.0])])
    assert losses.Huber()(y_true, y_pred) == pytest.approx(want, rel=1e-14)
    # delta 2.5: 3 -> 2.5*3 - 3.125 = 4.375; -2.5 is still quadratic (3.125)
    want2 = np.mean([np.mean([0.125, 4.375, 3.125]), np.mean([0.02, 4.375, 0.0])])
    assert losses.Huber(delta=2.5)(y_true, y_pred) == pytest.approx(want2, rel=1e-14)
    rng = np.random.default_rng(3)
    t, p = rng.standard_normal((4, 3)), 2 * rng.standard_normal((4, 3))
    h = losses.Huber(delta=0.7)
    g = h.gradient(t, p)
    np.testing.assert_allclose(g, numeric_grad(lambda: h(t, p), p), rtol=1e-6, atol=1e-9)
    assert losses.get("huber").delta == 1.0 and losses.get("huber_loss").delta == 1.0
    assert losses.huber(y_true, y_pred, delta=2.5) == pytest.approx(want2)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "1", True])
def test_huber_bad_delta(bad):
    with pytest.raises((TypeError, ValueError), match="delta"):
        losses.Huber(delta=bad)


def test_kl_divergence_by_hand_and_gradient():
    t = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    p = np.array([[0.25, 0.75, 0.0], [0.3, 0.3, 0.4]])
    e = 1e-7
    row0 = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75) + e * np.log(e / e)
    row1 = 0.1 * np.log(0.1 / 0.3) + 0.2 * np.log(0.2 / 0.3) + 0.7 * np.log(0.7 / 0.4)
    k = losses.KLDivergence()
    assert k(t, p) == pytest.approx((row0 + row1) / 2, rel=1e-12)
    for name in ("kld", "kl_divergence", "kullback_leibler_divergence", "KLDivergence"):
        assert isinstance(losses.get(name), losses.KLDivergence)
    rng = np.random.default_rng(4)
    t = rng.dirichlet(np.ones(4), size=3)
    p = rng.dirichlet(np.ones(4), size=3)
    np.testing.assert_allclose(k.gradient(t, p), numeric_grad(lambda: k(t, p), p, eps=1e-8),
                               rtol=1e-5, atol=1e-8)
    assert losses.kl_divergence(t, p) == pytest.approx(k(t, p))


def test_new_losses_serialize():
    for obj in (losses.Huber(delta=0.3), losses.KLDivergence()):
        again = losses.get(losses.serialize(obj))
        assert type(again) is type(obj) and again.get_config() == obj.get_config()


# ---------------------------------------------------------------- sample and class weights

def test_sample_weight_by_hand():
    y_true = np.array([[0.0], [1.0], [2.0], [0.0]])
    y_pred = np.array([[1.0], [1.0], [0.0], [3.0]])
    sw = np.array([2.0, 5.0, 0.5, 0.0])
    per = np.array([1.0, 0.0, 4.0, 9.0])
    # Keras "sum_over_batch_size": sum(w * loss) / number of samples, not / sum(w)
    want = float(np.sum(sw * per) / 4)
    mse = losses.MeanSquaredError()
    loss, grad = mse.loss_and_gradient(y_true, y_pred, sample_weight=sw)
    assert loss == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose(grad[:, 0], sw * 2 * (y_pred - y_true)[:, 0] / 4)
    assert mse(y_true, y_pred, sample_weight=np.ones(4)) == pytest.approx(mse(y_true, y_pred))
    assert mse(y_true, y_pred, sample_weight=sw[:, None]) == pytest.approx(want)


def test_sample_weight_sparse_and_sequences_with_mask():
    rng = np.random.default_rng(5)
    B, T, C = 3, 4, 5
    logits = rng.standard_normal((B, T, C))
    labels = rng.integers(0, C, (B, T))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    sce = losses.SparseCategoricalCrossentropy(from_logits=True)
    sw = np.array([1.0, 3.0, 0.5])                     # per sample, repeated over time
    want = np.sum(per * sw[:, None] * mask) / mask.sum()
    assert sce(labels, logits, mask, sample_weight=sw) == pytest.approx(want, rel=1e-12)
    tw = rng.uniform(0, 2, (B, T))                     # temporal weights
    want_t = np.sum(per * tw * mask) / mask.sum()
    loss, grad = sce.loss_and_gradient(labels, logits, mask, sample_weight=tw)
    assert loss == pytest.approx(want_t, rel=1e-12)
    num = numeric_grad(lambda: sce(labels, logits, mask, sample_weight=tw), logits)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("sw,exc", [(np.ones(3), ValueError), (np.ones((4, 2)), ValueError),
                                    (np.array([1.0, -1.0, 1.0, 1.0]), ValueError),
                                    (np.array([1.0, np.nan, 1.0, 1.0]), ValueError),
                                    (np.array(["a"] * 4), TypeError)])
def test_bad_sample_weight(sw, exc):
    with pytest.raises(exc, match="sample_weight"):
        losses.MeanSquaredError()(np.zeros((4, 1)), np.ones((4, 1)), sample_weight=sw)


def test_class_weight_to_sample_weight():
    cw = {0: 1.0, 1: 4.0, 2: 0.5}
    f = losses.class_weight_to_sample_weight
    np.testing.assert_array_equal(f(cw, np.array([0, 1, 2, 1])), [1, 4, 0.5, 4])
    np.testing.assert_array_equal(f(cw, np.array([[2], [0]])), [0.5, 1])
    onehot = np.eye(3)[[2, 1, 1]]
    np.testing.assert_array_equal(f(cw, onehot), [0.5, 4, 4])
    np.testing.assert_array_equal(f({1: 3.0}, np.array([0.0, 1.0, 0.9])), [1, 3, 3])
    seq = np.array([[0, 1], [2, 2]])
    np.testing.assert_array_equal(
        f(cw, seq, loss=losses.SparseCategoricalCrossentropy()), [[1, 4], [0.5, 0.5]])
    for bad in ({-1: 1.0}, {0: -2.0}, {0: float("nan")}, {"a": 1.0}):
        with pytest.raises(ValueError, match="class_weight"):
            f(bad, np.array([0, 1]))
    with pytest.raises(TypeError, match="class_weight"):
        f([1.0, 2.0], np.array([0, 1]))
