"""Metrics: values, accumulation over batches, masks, "accuracy" resolution, names."""

import numpy as np
import pytest

from fastrnn import losses, metrics


def test_values():
    y = np.array([0, 2, 1, 1])
    p = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.6, 0.3, 0.1]])
    assert metrics.SparseCategoricalAccuracy()(y, p) == 0.75
    assert metrics.CategoricalAccuracy()(np.eye(3)[y], p) == 0.75
    assert metrics.BinaryAccuracy()(np.array([1, 0, 1]), np.array([[0.7], [0.6], [0.2]])) == \
        pytest.approx(1 / 3)
    assert metrics.BinaryAccuracy(threshold=0.65)(np.array([[1], [0]]), np.array([[0.7], [0.6]])) == 1
    t, q = np.array([[1.0, 2.0]]), np.array([[2.0, 0.0]])
    assert metrics.MeanAbsoluteError()(t, q) == 1.5
    assert metrics.MeanSquaredError()(t, q) == 2.5


def test_accumulates_per_sample_over_unequal_batches():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 10)
    p = rng.random((10, 4))
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(y[:7], p[:7])
    m.update_state(y[7:], p[7:])
    assert m.result() == pytest.approx(np.mean(p.argmax(-1) == y))
    m.reset_state()
    assert m.result() == 0.0


def test_mask_excludes_padded_steps():
    y = np.array([[0, 1, 1], [1, 0, 0]])
    p = np.zeros((2, 3, 2))
    p[..., 0] = 1                    # always predicts class 0
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(y, p, mask)
    assert m.result() == pytest.approx(1 / 3)        # valid: (0 ok, 1 wrong), (1 wrong)
    assert m(y, p) == pytest.approx(3 / 6)


@pytest.mark.parametrize("loss,y,p,expected", [
    ("sparse_categorical_crossentropy", np.array([1]), np.array([[0.2, 0.8]]),
     metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", np.array([[0, 1]]), np.array([[0.2, 0.8]]),
     metrics.CategoricalAccuracy),
    ("binary_crossentropy", np.array([[1]]), np.array([[0.8]]), metrics.BinaryAccuracy),
    ("mse", np.array([[1]]), np.array([[0.8]]), metrics.BinaryAccuracy),
    ("mse", np.array([1]), np.array([[0.2, 0.8]]), metrics.SparseCategoricalAccuracy),
    ("mse", np.array([[0, 1]]), np.array([[0.2, 0.8]]), metrics.CategoricalAccuracy),
])
def test_accuracy_resolution(loss, y, p, expected):
    m = metrics.get("accuracy", loss=losses.get(loss))
    m.update_state(y, p)
    assert type(m._impl) is expected
    assert m.result() == 1.0


def test_accuracy_with_logit_bce_uses_zero_threshold():
    m = metrics.get("acc", loss=losses.BinaryCrossentropy(from_logits=True))
    assert m(np.array([[1], [0]]), np.array([[0.3], [-0.2]])) == 1.0


def test_names_and_get():
    assert metrics.get("acc").name == "acc"
    assert metrics.get("mae").name == "mae"
    assert type(metrics.get("mean_squared_error")) is metrics.MeanSquaredError
    obj = metrics.BinaryAccuracy(name="ba")
    assert metrics.get(obj) is obj
    assert metrics.serialize(metrics.get("acc")) == "acc"
    d = metrics.serialize(metrics.BinaryAccuracy(name="ba", threshold=0.3))
    back = metrics.get(d)
    assert type(back) is metrics.BinaryAccuracy and back.threshold == 0.3 and back.name == "ba"
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1")
    with pytest.raises(TypeError, match="metric"):
        metrics.get(3)
    with pytest.raises(ValueError, match="class_name"):
        metrics.get({"class_name": "Evil"})


def test_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        metrics.CategoricalAccuracy()(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="shape"):
        metrics.SparseCategoricalAccuracy()(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="y_pred"):
        metrics.MeanAbsoluteError()(np.zeros(2), np.array(["a", "b"]))
