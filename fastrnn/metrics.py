"""Metrics for :class:`fastrnn.Sequential`.

A metric is a small stateful object: ``update_state(y_true, y_pred, mask=None)`` accumulates
over batches, ``result()`` gives the running value over everything seen since
``reset_state()``.  Values are averaged per position (per sample, and per valid time step for
sequence outputs with a (B, T) mask), so the epoch value does not depend on the batch size.

Names accepted by ``compile(metrics=[...])``: "accuracy"/"acc" (resolved from the loss and the
shapes like Keras: binary for binary cross-entropy or a single output unit, sparse when the
targets are class ids, categorical otherwise), "binary_accuracy", "categorical_accuracy",
"sparse_categorical_accuracy", "mae"/"mean_absolute_error", "mse"/"mean_squared_error".
The history key is the name the user gave (e.g. "acc" stays "acc").
"""

import numpy as np

__all__ = [
    "Metric", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "MeanAbsoluteError", "MeanSquaredError", "get",
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
}


METRIC_REGISTRY = {c.__name__: c for c in (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    MeanAbsoluteError, MeanSquaredError)}


def serialize(metric):
    """A metric compiled from a name serializes to that name; others to a class/config dict."""
    if type(metric) in (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                        MeanAbsoluteError, MeanSquaredError) and metric.name in _NAMES and \
            _NAMES[metric.name] is type(metric) and metric.get_config().keys() == {"name"}:
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
