"""Metrics for :class:`fastrnn.Sequential`.

A metric is a small stateful object: ``update_state(y_true, y_pred, mask=None)`` accumulates
over batches, ``result()`` gives the running value over everything seen since
``reset_state()``.  Values are averaged per position (per sample, and per valid time step for
sequence outputs with a (B, T) mask), so the epoch value does not depend on the batch size.

Names accepted by ``compile(metrics=[...])``: "accuracy"/"acc" (resolved from the loss and the
shapes like Keras: binary for binary cross-entropy or a single output unit, sparse when the
targets are class ids, categorical otherwise), "binary_accuracy", "categorical_accuracy",
"sparse_categorical_accuracy", "mae"/"mean_absolute_error", "mse"/"mean_squared_error",
"precision", "recall", "auc" (these three accumulate confusion counts over the epoch, as
Keras's do, instead of averaging per-batch values).
The history key is the name the user gave (e.g. "acc" stays "acc").
"""

import numpy as np

__all__ = [
    "Metric", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "MeanAbsoluteError", "MeanSquaredError", "Precision", "Recall", "AUC", "get",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "mean_absolute_error", "mean_squared_error", "serialize", "METRIC_REGISTRY",
]


def _arr(a, name):
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _mask_for(mask, pos_shape):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != pos_shape or len(pos_shape) < 2:
        return None
    return m.astype(bool, copy=False)


# ---- per-position values (shape y_pred.shape[:-1]) ---------------------------------------------
def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_pred = _arr(y_pred, "y_pred")
    y_true = _arr(y_true, "y_true")
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape and y_true.shape == y_pred.shape[:-1]:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    hit = (y_pred > threshold) == (y_true > 0.5)
    return hit.mean(axis=-1)


def categorical_accuracy(y_true, y_pred):
    y_pred = _arr(y_pred, "y_pred")
    y_true = _arr(y_true, "y_true")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    y_pred = _arr(y_pred, "y_pred")
    y_true = _arr(y_true, "y_true")
    if y_true.shape == y_pred.shape[:-1] + (1,) and y_true.shape != y_pred.shape[:-1]:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"y_true must have shape {y_pred.shape[:-1]} (class ids), got {y_true.shape}")
    return (np.argmax(y_pred, axis=-1) == y_true).astype(np.float64)


def _reg_prep(y_true, y_pred):
    y_pred = _arr(y_pred, "y_pred")
    y_true = _arr(y_true, "y_true")
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape and y_true.shape == y_pred.shape[:-1]:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    return y_true.astype(np.float64), y_pred.astype(np.float64)


def mean_absolute_error(y_true, y_pred):
    t, p = _reg_prep(y_true, y_pred)
    return np.abs(p - t).mean(axis=-1)


def mean_squared_error(y_true, y_pred):
    t, p = _reg_prep(y_true, y_pred)
    return ((p - t) ** 2).mean(axis=-1)


# ---- stateful metric objects --------------------------------------------------------------------
class Metric:
    """Running mean of a per-position value."""

    def __init__(self, name=None):
        self.name = name or type(self)._default_name
        self.reset_state()

    _default_name = "metric"

    def reset_state(self):
        self._total = 0.0
        self._count = 0

    def _values(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, mask=None):
        vals = np.asarray(self._values(y_true, y_pred), dtype=np.float64)
        m = _mask_for(mask, vals.shape)
        if m is not None:
            vals = vals[m]
        self._total += float(vals.sum())
        self._count += int(vals.size)

    def result(self):
        return self._total / self._count if self._count else 0.0

    def __call__(self, y_true, y_pred, mask=None):
        """Stateless: the metric over this one batch."""
        vals = np.asarray(self._values(y_true, y_pred), dtype=np.float64)
        m = _mask_for(mask, vals.shape)
        if m is not None:
            vals = vals[m]
        return float(vals.mean()) if vals.size else 0.0

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class BinaryAccuracy(Metric):
    _default_name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name)

    def _values(self, y_true, y_pred):
        return binary_accuracy(y_true, y_pred, self.threshold)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    _default_name = "categorical_accuracy"

    def _values(self, y_true, y_pred):
        return categorical_accuracy(y_true, y_pred)


class SparseCategoricalAccuracy(Metric):
    _default_name = "sparse_categorical_accuracy"

    def _values(self, y_true, y_pred):
        return sparse_categorical_accuracy(y_true, y_pred)


class MeanAbsoluteError(Metric):
    _default_name = "mean_absolute_error"

    def _values(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)


class MeanSquaredError(Metric):
    _default_name = "mean_squared_error"

    def _values(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)


class Accuracy(Metric):
    """Keras-style "accuracy": picks binary / sparse / categorical accuracy from the loss and the
    shapes of the first batch it sees (then sticks to that choice)."""

    _default_name = "accuracy"

    def __init__(self, name=None, loss=None):
        self.loss = loss
        self._impl = None
        super().__init__(name)

    def _resolve(self, y_true, y_pred):
        from . import losses as _losses
        loss = self.loss
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred)
        if isinstance(loss, _losses.BinaryCrossentropy):
            # logits: the decision boundary is 0, not 0.5
            return BinaryAccuracy(threshold=0.0 if loss.from_logits else 0.5)
        if isinstance(loss, _losses.SparseCategoricalCrossentropy):
            return SparseCategoricalAccuracy()
        if isinstance(loss, _losses.CategoricalCrossentropy):
            return CategoricalAccuracy()
        if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
            return BinaryAccuracy()
        if y_true.ndim < y_pred.ndim or (y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1):
            return SparseCategoricalAccuracy()
        return CategoricalAccuracy()

    def _values(self, y_true, y_pred):
        if self._impl is None:
            self._impl = self._resolve(y_true, y_pred)
        return self._impl._values(y_true, y_pred)


# ---- confusion-matrix metrics (not means of per-position values) --------------------------------
def _binary_pair(y_true, y_pred, mask, class_id=None):
    """Flattened (labels as bool, scores as float64) over the valid positions."""
    y_pred = _arr(y_pred, "y_pred").astype(np.float64)
    y_true = _arr(y_true, "y_true")
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape and y_true.shape == y_pred.shape[:-1]:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    if class_id is not None:
        if not 0 <= class_id < y_pred.shape[-1]:
            raise ValueError(f"class_id {class_id} out of range for {y_pred.shape[-1]} classes")
        y_true, y_pred = y_true[..., class_id:class_id + 1], y_pred[..., class_id:class_id + 1]
    m = _mask_for(mask, y_pred.shape[:-1])
    if m is not None:
        y_true, y_pred = y_true[m], y_pred[m]
    if y_pred.size and not np.all(np.isfinite(y_pred)):
        raise ValueError("y_pred contains NaN or Inf")
    return y_true.reshape(-1) > 0.5, y_pred.reshape(-1)


def _check_threshold(t, name="thresholds"):
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {t!r}")
    if not np.isfinite(t):
        raise ValueError(f"{name} must be finite, got {t!r}")
    return float(t)


def _check_class_id(class_id):
    if class_id is None:
        return None
    if isinstance(class_id, (bool, np.bool_)) or not isinstance(class_id, (int, np.integer)) \
            or class_id < 0:
        raise ValueError(f"class_id must be an int >= 0 or None, got {class_id!r}")
    return int(class_id)


class _CountMetric(Metric):
    """Accumulates counts; ``result()`` is a function of the counts (not a mean)."""

    def _counts(self, y_true, y_pred, mask):
        raise NotImplementedError

    def _from_counts(self, counts):
        raise NotImplementedError

    def reset_state(self):
        self._acc = None

    def update_state(self, y_true, y_pred, mask=None):
        c = self._counts(y_true, y_pred, mask)
        self._acc = c if self._acc is None else self._acc + c

    def result(self):
        return self._from_counts(self._acc) if self._acc is not None else 0.0

    def __call__(self, y_true, y_pred, mask=None):
        """Stateless: the metric over this one batch."""
        return self._from_counts(self._counts(y_true, y_pred, mask))


class Precision(_CountMetric):
    """Precision ``TP / (TP + FP)`` of ``y_pred > thresholds`` (Keras ``Precision``); 0 when
    nothing is predicted positive.  Every output unit counts as one binary decision
    (multi-label); ``class_id`` restricts it to one column.

    Parameters
    ----------
    thresholds : float, default 0.5
    class_id : int, optional
    name : str, optional

    Example
    -------
    >>> Precision()([0, 1, 1, 0], [0.9, 0.8, 0.2, 0.1])      # TP 1, FP 1
    0.5
    """

    _default_name = "precision"

    def __init__(self, thresholds=0.5, class_id=None, name=None):
        self.thresholds = _check_threshold(thresholds)
        self.class_id = _check_class_id(class_id)
        super().__init__(name)

    def _counts(self, y_true, y_pred, mask):
        t, p = _binary_pair(y_true, y_pred, mask, self.class_id)
        pos = p > self.thresholds
        return np.array([np.sum(pos & t), np.sum(pos & ~t), np.sum(~pos & t)], dtype=np.int64)

    def _from_counts(self, c):
        tp, fp = int(c[0]), int(c[1])
        return tp / (tp + fp) if tp + fp else 0.0

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds, "class_id": self.class_id}


class Recall(Precision):
    """Recall ``TP / (TP + FN)`` of ``y_pred > thresholds`` (Keras ``Recall``); 0 when there
    are no positives.  Arguments as :class:`Precision`.

    Example
    -------
    >>> Recall()([0, 1, 1, 0], [0.9, 0.8, 0.2, 0.1])         # TP 1, FN 1
    0.5
    """

    _default_name = "recall"

    def _from_counts(self, c):
        tp, fn = int(c[0]), int(c[2])
        return tp / (tp + fn) if tp + fn else 0.0


def _div(a, b):
    """a / b with 0 where b == 0 (Keras's divide_no_nan)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


class AUC(_CountMetric):
    """Area under the ROC or precision-recall curve (Keras ``AUC``), from true/false
    positive counts at ``num_thresholds`` fixed thresholds.

    The thresholds are ``-1e-7, 1/(n-1), 2/(n-1), ..., (n-2)/(n-1), 1 + 1e-7``; a score
    counts as positive at threshold ``t`` when ``score > t``.  With ``x`` the false-positive
    rate (ROC) or the recall (PR) and ``y`` the recall (ROC) or the precision (PR) at each
    threshold, the area is ``sum_i (x_i - x_{i+1}) * h_i`` with ``h_i`` the mean
    (``"interpolation"``), the minimum (``"minoring"``) or the maximum (``"majoring"``) of
    ``y_i, y_{i+1}``; PR with ``"interpolation"`` uses Davis & Goadrich's interpolation of
    precision along the recall as Keras does.  Ratios with a zero denominator are 0.

    Parameters
    ----------
    num_thresholds : int, default 200
        > 1.
    curve : {"ROC", "PR"}, default "ROC"
    summation_method : {"interpolation", "minoring", "majoring"}, default "interpolation"
    from_logits : bool, default False
        Apply a sigmoid to the predictions first.
    name : str, optional

    Example
    -------
    >>> AUC(num_thresholds=3)([0, 1, 0, 1], [0.2, 0.7, 0.6, 0.4])
    0.5
    """

    _default_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 from_logits=False, name=None):
        if isinstance(num_thresholds, (bool, np.bool_)) or \
                not isinstance(num_thresholds, (int, np.integer)) or num_thresholds < 2:
            raise ValueError(f"num_thresholds must be an int > 1, got {num_thresholds!r}")
        curve = str(curve).upper()
        if curve not in ("ROC", "PR"):
            raise ValueError(f"curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError("summation_method must be 'interpolation', 'minoring' or "
                             f"'majoring', got {summation_method!r}")
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        self.num_thresholds = int(num_thresholds)
        self.curve = curve
        self.summation_method = summation_method
        self.from_logits = bool(from_logits)
        n = self.num_thresholds
        inner = [(i + 1) * 1.0 / (n - 1) for i in range(n - 2)]
        self.thresholds = np.array([0.0 - 1e-7] + inner + [1.0 + 1e-7])
        super().__init__(name)

    def _counts(self, y_true, y_pred, mask):
        t, p = _binary_pair(y_true, y_pred, mask)
        if self.from_logits:
            from scipy.special import expit
            p = expit(p)
        # positives/negatives with a score above each threshold: sort once, count by search
        pos_scores = np.sort(p[t])
        neg_scores = np.sort(p[~t])
        tp = pos_scores.size - np.searchsorted(pos_scores, self.thresholds, side="right")
        fp = neg_scores.size - np.searchsorted(neg_scores, self.thresholds, side="right")
        fn = pos_scores.size - tp
        tn = neg_scores.size - fp
        return np.stack([tp, fp, tn, fn]).astype(np.int64)

    def _from_counts(self, c):
        tp, fp, tn, fn = (c[i].astype(np.float64) for i in range(4))
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = _div(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _div(p[:-1], np.maximum(p[1:], 0)),
                             1.0)
            inc = _div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
            return float(np.sum(inc))
        recall = _div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div(fp, fp + tn), recall
        else:
            x, y = recall, _div(tp, tp + fp)
        if self.summation_method == "interpolation":
            h = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            h = np.minimum(y[:-1], y[1:])
        else:
            h = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * h))

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "from_logits": self.from_logits}



_NAMES = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
}


METRIC_REGISTRY = {c.__name__: c for c in (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    MeanAbsoluteError, MeanSquaredError, Precision, Recall, AUC)}


def serialize(metric):
    """A metric compiled from a name serializes to that name; others to a class/config dict."""
    if type(metric) in (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                        MeanAbsoluteError, MeanSquaredError) and metric.name in _NAMES and \
            _NAMES[metric.name] is type(metric) and metric.get_config().keys() == {"name"}:
        return metric.name
    if type(metric) in (Precision, Recall, AUC) and metric.name in _NAMES and \
            _NAMES[metric.name] is type(metric) and \
            metric.get_config() == type(metric)(name=metric.name).get_config():
        return metric.name
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def get(identifier, loss=None):
    """A metric object from a name (the name becomes its history key), a Metric instance, or a
    Metric class. ``loss`` (a fastrnn.losses.Loss) lets "accuracy" pick its variant."""
    if isinstance(identifier, Metric):
        if isinstance(identifier, Accuracy) and identifier.loss is None:
            identifier.loss = loss
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier(loss=loss) if identifier is Accuracy else identifier()
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"metrics: unknown metric {identifier!r}; expected one of {sorted(_NAMES)}")
        if cls is Accuracy:
            return Accuracy(name=identifier, loss=loss)
        return cls(name=identifier)
    if isinstance(identifier, dict):
        cname = identifier.get("class_name")
        if cname not in METRIC_REGISTRY:
            raise ValueError(f"metrics: unknown class_name {cname!r}; expected one of "
                             f"{sorted(METRIC_REGISTRY)}")
        cfg = identifier.get("config") or {}
        if not isinstance(cfg, dict):
            raise ValueError(f"metrics: config must be a dict, got {type(cfg).__name__}")
        cls = METRIC_REGISTRY[cname]
        return cls(loss=loss, **cfg) if cls is Accuracy else cls(**cfg)
    raise TypeError(
        f"metrics entries must be metric names (str) or fastrnn.metrics.Metric instances, "
        f"got {type(identifier).__name__}")
