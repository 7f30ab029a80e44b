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


# ---------------------------------------------------------------- Precision, Recall, AUC

def _pairs_auc(t, p):
    """Exact ROC AUC by counting pairs: P(score_pos > score_neg) + 0.5 P(tie)."""
    pos, neg = p[t == 1], p[t == 0]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


def test_precision_recall_by_hand_and_accumulated():
    from fastrnn.metrics import Precision, Recall
    t1, p1 = np.array([1, 0, 1, 1, 0]), np.array([0.9, 0.6, 0.4, 0.7, 0.2])
    t2, p2 = np.array([0, 0, 1]), np.array([0.8, 0.3, 0.55])
    # batch 1: TP 2 (0.9, 0.7), FP 1 (0.6), FN 1 (0.4); batch 2: TP 1, FP 1, FN 0
    prec, rec = Precision(), Recall()
    assert prec(t1, p1) == pytest.approx(2 / 3) and rec(t1, p1) == pytest.approx(2 / 3)
    for m in (prec, rec):
        m.update_state(t1, p1)
        m.update_state(t2, p2)
    # over both batches (not the mean of the batch values): TP 3, FP 2, FN 1
    assert prec.result() == pytest.approx(3 / 5) and rec.result() == pytest.approx(3 / 4)
    prec.reset_state()
    assert prec.result() == 0.0
    assert Precision(thresholds=0.65)(t1, p1) == pytest.approx(1.0)     # 0.9, 0.7
    assert Recall(thresholds=0.65)(t1, p1) == pytest.approx(2 / 3)
    assert Precision()(np.zeros(3), np.zeros(3)) == 0.0                 # nothing predicted
    assert Recall()(np.zeros(3), np.ones(3)) == 0.0                     # no positives


def test_precision_multilabel_class_id_and_mask():
    from fastrnn.metrics import Precision, Recall
    y = np.array([[[1, 0], [0, 1]], [[1, 1], [0, 0]]])
    p = np.array([[[0.9, 0.8], [0.1, 0.7]], [[0.2, 0.6], [0.9, 0.9]]])
    mask = np.array([[True, True], [True, False]])
    # valid positions (0,0), (0,1), (1,0): column 0: TP 1 (0.9) FN 1 (0.2); column 1: TP 2,
    # FP 1 (0.8 with label 0)
    assert Precision()(y, p, mask) == pytest.approx(3 / 4)
    assert Recall()(y, p, mask) == pytest.approx(3 / 4)
    assert Precision(class_id=1)(y, p, mask) == pytest.approx(2 / 3)
    assert Recall(class_id=0)(y, p, mask) == pytest.approx(1 / 2)


def test_auc_three_thresholds_by_hand():
    from fastrnn.metrics import AUC
    t, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.6, 0.4])
    # thresholds -1e-7, 0.5, 1+1e-7: (FPR, TPR) = (1, 1), (0.5, 0.5), (0, 0)
    assert AUC(num_thresholds=3)(t, p) == pytest.approx(0.5)
    assert AUC(num_thresholds=3, summation_method="minoring")(t, p) == pytest.approx(0.25)
    assert AUC(num_thresholds=3, summation_method="majoring")(t, p) == pytest.approx(0.75)
    # PR, majoring: (recall, precision) = (1, 0.5), (0.5, 0.5), (0, 0): 0.5 * 0.5 + 0.5 * 0.5
    assert AUC(num_thresholds=3, curve="PR", summation_method="majoring")(t, p) == \
        pytest.approx(0.5)


def test_auc_roc_equals_pair_count_when_thresholds_separate_scores():
    from fastrnn.metrics import AUC
    rng = np.random.default_rng(11)
    n = 40
    # scores in the middle of distinct threshold cells of a 401-threshold grid
    cells = rng.choice(399, size=n, replace=False)
    p = (cells + 0.5) / 400
    t = (rng.random(n) < 0.4).astype(int)
    t[:2] = [0, 1]
    auc = AUC(num_thresholds=401)
    assert auc(t, p) == pytest.approx(_pairs_auc(t, p), abs=1e-12)
    # accumulated over two batches = one pass
    auc.update_state(t[:15], p[:15])
    auc.update_state(t[15:], p[15:])
    assert auc.result() == pytest.approx(_pairs_auc(t, p), abs=1e-12)
    # logits: the same ranking after a sigmoid
    logits = np.log(p / (1 - p))
    assert AUC(num_thresholds=401, from_logits=True)(t, logits) == pytest.approx(auc.result())


def test_auc_pr_interpolation_perfect_and_by_name():
    from fastrnn import metrics
    t = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.3, 0.8, 0.9])
    assert metrics.AUC(curve="PR")(t, p) == pytest.approx(1.0, abs=1e-6)
    assert metrics.AUC()(t, p) == pytest.approx(1.0)
    for name, cls in (("auc", metrics.AUC), ("precision", metrics.Precision),
                      ("recall", metrics.Recall)):
        m = metrics.get(name)
        assert type(m) is cls and m.name == name and metrics.serialize(m) == name
    pr = metrics.AUC(curve="PR", num_thresholds=50)
    again = metrics.get(metrics.serialize(pr))
    assert type(again) is metrics.AUC and again.get_config() == pr.get_config()


@pytest.mark.parametrize("make", [
    lambda m: m.AUC(num_thresholds=1), lambda m: m.AUC(curve="XY"),
    lambda m: m.AUC(summation_method="simpson"), lambda m: m.Precision(thresholds="0.5"),
    lambda m: m.Recall(class_id=-1), lambda m: m.AUC(from_logits=1)])
def test_confusion_metric_bad_arguments(make):
    from fastrnn import metrics
    with pytest.raises((TypeError, ValueError)):
        make(metrics)


def test_confusion_metrics_bad_inputs():
    from fastrnn import metrics
    with pytest.raises(ValueError, match="NaN"):
        metrics.AUC()(np.array([0, 1]), np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="shape"):
        metrics.Precision()(np.zeros((3, 2)), np.zeros((3, 4)))
