"""Loss functions for :class:`fastrnn.Sequential`.

Every loss is an object with

* ``loss(y_true, y_pred, mask=None) -> float`` (also ``__call__``),
* ``gradient(y_true, y_pred, mask=None) -> ndarray`` (d loss / d y_pred, same shape as y_pred),
* ``loss_and_gradient(y_true, y_pred, mask=None) -> (float, ndarray)``.

Reduction: the per-element loss is first reduced over the last (feature/class) axis -- a mean for
MSE, MAE and binary cross-entropy, a sum over classes for the categorical cross-entropies -- and
then averaged over every remaining position (batch, and time for sequence outputs).

Masking (Keras behaviour): for a sequence output ``y_pred`` of shape (B, T, C) a boolean ``mask``
of shape (B, T) (True = valid step) excludes the padded steps: the loss is the mean over the valid
steps only and padded steps get exactly zero gradient.  A mask with no valid step gives loss 0.

Cross-entropies on probabilities clip them to [1e-7, 1 - 1e-7] like Keras (the clipped entries
get zero gradient).  With ``from_logits=True`` they are computed from logits with log-sum-exp /
log-sigmoid, which is exact for any finite logit.  :class:`fastrnn.Sequential` uses the logits
path automatically when the last layer is ``Dense(activation="softmax")`` (or ``"sigmoid"``) and
the loss is the matching cross-entropy on probabilities.
"""

import numpy as np
from scipy.special import expit, log_expit, log_softmax

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "get", "serialize",
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
]

EPSILON = 1e-7


def _as_float(a, name, dtype=None):
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like, got {type(a).__name__}") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype.kind == "f" and arr.dtype.itemsize >= 4 else np.float64
    return arr.astype(dtype, copy=False)


def _weights(shape, mask, dtype):
    """Per-position weights (shape = y_pred.shape[:-1]) that sum to one over the valid positions."""
    dtype = np.dtype(dtype)
    if mask is None:
        n = int(np.prod(shape)) if len(shape) else 1
        return np.full(shape, 1.0 / max(n, 1), dtype=dtype)
    valid = int(mask.sum())
    if valid == 0:
        return np.zeros(shape, dtype=dtype)
    return mask.astype(dtype) / dtype.type(valid)


def _prepare_mask(mask, y_pred):
    """Masks only apply to sequence outputs: y_pred (B, T, C) with mask (B, T)."""
    if mask is None or y_pred.ndim < 3:
        return None
    m = np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"mask must be a boolean array, got dtype {m.dtype}")
    if m.shape != y_pred.shape[:-1]:
        raise ValueError(f"mask must have shape {y_pred.shape[:-1]} (y_pred.shape[:-1]), got {m.shape}")
    return m


class Loss:
    """Base class. Subclasses implement ``_elementwise(y_true, y_pred) -> (per_pos, d_per_pos)``,
    where ``per_pos`` has shape ``y_pred.shape[:-1]`` and ``d_per_pos`` is d per_pos / d y_pred."""

    name = "loss"
    from_logits = False

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _prepare(self, y_true, y_pred):
        y_pred = _as_float(y_pred, "y_pred")
        if y_pred.ndim == 0:
            raise ValueError("y_pred must have at least 1 dimension, got a scalar")
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        y_true = _as_float(y_true, "y_true", y_pred.dtype)
        if y_true.shape != y_pred.shape:
            if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1 and y_true.shape == y_pred.shape[:-1]:
                y_true = y_true[..., None]
            else:
                hint = (" (integer class ids need sparse_categorical_crossentropy)"
                        if isinstance(self, CategoricalCrossentropy)
                        and y_true.shape == y_pred.shape[:-1] else "")
                raise ValueError(
                    f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}{hint}")
        return y_true, y_pred

    def loss_and_gradient(self, y_true, y_pred, mask=None):
        """Return (loss as a Python float, d loss / d y_pred with y_pred's shape and dtype)."""
        orig_shape = np.shape(y_pred)
        y_true, y_pred = self._prepare(y_true, y_pred)
        mask = _prepare_mask(mask, y_pred)
        with np.errstate(over="ignore", invalid="ignore"):
            per_pos, d = self._elementwise(y_true, y_pred)
        w = _weights(per_pos.shape, mask, y_pred.dtype)
        with np.errstate(invalid="ignore"):
            if mask is not None:
                loss = float(np.sum(np.where(mask, per_pos, 0) * w))
            else:
                loss = float(np.sum(per_pos * w))
            grad = d * w[..., None]
        if mask is not None:
            grad = np.where(mask[..., None], grad, 0).astype(y_pred.dtype, copy=False)
        return loss, grad.reshape(orig_shape)

    def loss(self, y_true, y_pred, mask=None):
        return self.loss_and_gradient(y_true, y_pred, mask)[0]

    __call__ = loss

    def gradient(self, y_true, y_pred, mask=None):
        return self.loss_and_gradient(y_true, y_pred, mask)[1]


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def _elementwise(self, y_true, y_pred):
        diff = y_pred - y_true
        c = y_pred.shape[-1]
        return np.mean(diff * diff, axis=-1), (2.0 / c) * diff


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def _elementwise(self, y_true, y_pred):
        diff = y_pred - y_true
        c = y_pred.shape[-1]
        return np.mean(np.abs(diff), axis=-1), np.sign(diff) / c


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, mean over the last axis. ``from_logits=True`` takes raw scores."""

    name = "binary_crossentropy"

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def _elementwise(self, y_true, y_pred):
        c = y_pred.shape[-1]
        if self.from_logits:
            z = y_pred
            # -[y log s(z) + (1-y) log s(-z)], exact for any finite z
            per = -(y_true * log_expit(z) + (1 - y_true) * log_expit(-z))
            return np.mean(per, axis=-1), (expit(z) - y_true) / c
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        per = -(y_true * np.log(p) + (1 - y_true) * np.log1p(-p))
        d = (-(y_true / p) + (1 - y_true) / (1 - p)) / c
        d = np.where((y_pred >= EPSILON) & (y_pred <= 1 - EPSILON), d, 0)
        return np.mean(per, axis=-1), d.astype(y_pred.dtype, copy=False)


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or soft) targets over the last axis."""

    name = "categorical_crossentropy"

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def _elementwise(self, y_true, y_pred):
        if self.from_logits:
            logp = log_softmax(y_pred, axis=-1)
            per = -np.sum(y_true * logp, axis=-1)
            d = np.exp(logp) * np.sum(y_true, axis=-1, keepdims=True) - y_true
            return per, d.astype(y_pred.dtype, copy=False)
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        per = -np.sum(y_true * np.log(p), axis=-1)
        d = np.where((y_pred >= EPSILON) & (y_pred <= 1 - EPSILON), -y_true / p, 0)
        return per, d.astype(y_pred.dtype, copy=False)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer class targets: y_true has shape y_pred.shape[:-1] (a trailing
    axis of size 1 is also accepted)."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def loss_and_gradient(self, y_true, y_pred, mask=None):
        orig_shape = np.shape(y_pred)
        y_pred = _as_float(y_pred, "y_pred")
        if y_pred.ndim < 2:
            raise ValueError(
                f"y_pred for sparse_categorical_crossentropy must have a class axis (ndim >= 2), "
                f"got shape {y_pred.shape}")
        labels = np.asarray(y_true)
        if labels.shape == y_pred.shape[:-1] + (1,) and labels.shape != y_pred.shape[:-1]:
            labels = labels[..., 0]
        if labels.shape != y_pred.shape[:-1]:
            hint = (" (one-hot targets need categorical_crossentropy)"
                    if labels.shape == y_pred.shape else "")
            raise ValueError(
                f"y_true for sparse_categorical_crossentropy must have shape {y_pred.shape[:-1]} "
                f"(y_pred.shape[:-1]), got {labels.shape}{hint}")
        if labels.dtype.kind == "f":
            if labels.size and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
                raise ValueError("y_true for sparse_categorical_crossentropy must hold integer class ids")
            labels = labels.astype(np.int64)
        elif labels.dtype.kind not in "iub":
            raise TypeError(f"y_true must hold integer class ids, got dtype {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        mask = _prepare_mask(mask, y_pred)
        c = y_pred.shape[-1]
        check = labels if mask is None else labels[mask]
        if check.size and (check.min() < 0 or check.max() >= c):
            bad = check[(check < 0) | (check >= c)][0]
            raise ValueError(f"y_true class id out of range: got {int(bad)}, expected 0 <= id < {c}")
        safe = np.clip(labels, 0, c - 1)
        flat_pred = y_pred.reshape(-1, c)
        idx = safe.reshape(-1)
        rows = np.arange(idx.size)
        if self.from_logits:
            logp = log_softmax(flat_pred, axis=-1)
            per = -logp[rows, idx]
            d = np.exp(logp)                 # softmax, from the same stable pass
            d[rows, idx] -= 1
        else:
            p = flat_pred[rows, idx]
            pc = np.clip(p, EPSILON, 1 - EPSILON)
            per = -np.log(pc)
            d = np.zeros_like(flat_pred)
            d[rows, idx] = np.where((p >= EPSILON) & (p <= 1 - EPSILON), -1.0 / pc, 0)
        per = per.reshape(labels.shape)
        d = d.reshape(y_pred.shape).astype(y_pred.dtype, copy=False)
        w = _weights(per.shape, mask, y_pred.dtype)
        with np.errstate(invalid="ignore"):
            if mask is not None:
                loss = float(np.sum(np.where(mask, per, 0) * w))
                grad = np.where(mask[..., None], d * w[..., None], 0).astype(y_pred.dtype, copy=False)
            else:
                loss = float(np.sum(per * w))
                grad = d * w[..., None]
        return loss, grad.reshape(orig_shape)


_ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "meansquarederror": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "meanabsoluteerror": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "binarycrossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "categoricalcrossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "sparsecategoricalcrossentropy": SparseCategoricalCrossentropy,
}

LOSS_REGISTRY = {
    "MeanSquaredError": MeanSquaredError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "BinaryCrossentropy": BinaryCrossentropy,
    "CategoricalCrossentropy": CategoricalCrossentropy,
    "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy,
}


def get(identifier):
    """Return a loss object from a name ("mse", "sparse_categorical_crossentropy", ...), a loss
    instance (returned as is), a loss class, or a serialized dict {"class_name", "config"}."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _ALIASES:
            return _ALIASES[key]()
        raise ValueError(
            f"loss: unknown loss name {identifier!r}; expected one of {sorted(set(_ALIASES) - {'bce'})}")
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        if name not in LOSS_REGISTRY:
            raise ValueError(f"loss: unknown class_name {name!r}; expected one of {sorted(LOSS_REGISTRY)}")
        cfg = identifier.get("config", {}) or {}
        if not isinstance(cfg, dict):
            raise ValueError(f"loss: config must be a dict, got {type(cfg).__name__}")
        return LOSS_REGISTRY[name](**cfg)
    raise TypeError(
        f"loss must be a loss name (str) or a fastrnn.losses.Loss instance, got {type(identifier).__name__}")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


# functional forms: float loss values
def mean_squared_error(y_true, y_pred, mask=None):
    return MeanSquaredError()(y_true, y_pred, mask)


def mean_absolute_error(y_true, y_pred, mask=None):
    return MeanAbsoluteError()(y_true, y_pred, mask)


def binary_crossentropy(y_true, y_pred, from_logits=False, mask=None):
    return BinaryCrossentropy(from_logits)(y_true, y_pred, mask)


def categorical_crossentropy(y_true, y_pred, from_logits=False, mask=None):
    return CategoricalCrossentropy(from_logits)(y_true, y_pred, mask)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, mask=None):
    return SparseCategoricalCrossentropy(from_logits)(y_true, y_pred, mask)
