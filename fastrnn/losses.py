"""Loss functions for :class:`fastrnn.Sequential`.

Every loss is an object with

* ``loss(y_true, y_pred, mask=None) -> float`` (also ``__call__``),
* ``gradient(y_true, y_pred, mask=None) -> ndarray`` (d loss / d y_pred, same shape as y_pred),
* ``loss_and_gradient(y_true, y_pred, mask=None) -> (float, ndarray)``.

Reduction: the per-element loss is first reduced over the last (feature/class) axis -- a mean for
MSE, MAE and binary cross-entropy, a sum over classes for the categorical cross-entropies -- and
then averaged over every remaining position (batch, and time for sequence outputs).

Sample weights (Keras behaviour, ``sample_weight=`` of every loss method, and what ``fit``'s
``class_weight`` / ``sample_weight`` become): the loss of position ``i`` is multiplied by its
weight ``w_i`` and the result is averaged with the *unweighted* count,
``sum_i w_i * loss_i / n`` (``n`` = number of positions, or of valid steps under a mask), as
Keras's "sum_over_batch_size" reduction does.

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
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "Huber", "KLDivergence", "get",
    "serialize", "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "huber", "kl_divergence",
    "check_sample_weight", "class_weight_to_sample_weight",
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


def check_sample_weight(sample_weight, shape, name="sample_weight"):
    """``sample_weight`` as a float64 array broadcastable to the per-position shape ``shape``
    (``y_pred.shape[:-1]``): ``(B,)`` (one weight per sample, repeated over time steps) or
    ``shape`` itself (one weight per position, Keras's temporal weights); ``(B, 1)`` is read as
    ``(B,)``.  Weights must be finite and >= 0.  None stays None."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.dtype == object or sw.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {sw.dtype}")
    sw = sw.astype(np.float64)
    shape = tuple(shape)
    if sw.ndim == 2 and sw.shape[1] == 1 and sw.shape != shape:
        sw = sw[:, 0]
    if sw.shape != shape and sw.shape != shape[:1]:
        raise ValueError(f"{name} must have shape {shape[:1]} (one weight per sample)"
                         + (f" or {shape} (one per time step)" if len(shape) > 1 else "")
                         + f", got {sw.shape}")
    if sw.size and not (np.all(np.isfinite(sw)) and sw.min() >= 0):
        raise ValueError(f"{name} must hold finite values >= 0")
    return sw.reshape(sw.shape + (1,) * (len(shape) - sw.ndim))


def _apply_sample_weight(w, sample_weight):
    """Keras's weighting: each position's share of the mean times its sample weight (the mean
    is not renormalised by the weights' sum)."""
    sw = check_sample_weight(sample_weight, w.shape)
    if sw is None:
        return w
    return (w * sw).astype(w.dtype, copy=False)


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

    def loss_and_gradient(self, y_true, y_pred, mask=None, sample_weight=None):
        """Return (loss as a Python float, d loss / d y_pred with y_pred's shape and dtype).

        ``sample_weight`` (optional, shape ``(B,)`` or ``y_pred.shape[:-1]``, finite, >= 0)
        multiplies each position's loss before the mean (see the module docstring)."""
        orig_shape = np.shape(y_pred)
        y_true, y_pred = self._prepare(y_true, y_pred)
        mask = _prepare_mask(mask, y_pred)
        with np.errstate(over="ignore", invalid="ignore"):
            per_pos, d = self._elementwise(y_true, y_pred)
        w = _weights(per_pos.shape, mask, y_pred.dtype)
        w = _apply_sample_weight(w, sample_weight)
        with np.errstate(invalid="ignore"):
            if mask is not None:
                loss = float(np.sum(np.where(mask, per_pos, 0) * w))
            else:
                loss = float(np.sum(per_pos * w))
            grad = d * w[..., None]
        if mask is not None:
            grad = np.where(mask[..., None], grad, 0).astype(y_pred.dtype, copy=False)
        return loss, grad.reshape(orig_shape)

    def loss(self, y_true, y_pred, mask=None, sample_weight=None):
        """The loss as a Python float."""
        return self.loss_and_gradient(y_true, y_pred, mask, sample_weight)[0]

    __call__ = loss

    def gradient(self, y_true, y_pred, mask=None, sample_weight=None):
        """d loss / d y_pred (shape and dtype of y_pred)."""
        return self.loss_and_gradient(y_true, y_pred, mask, sample_weight)[1]


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


class Huber(Loss):
    """Huber loss (Keras ``Huber``), mean over the last axis.

    With ``x = y_pred - y_true``: ``0.5 * x**2`` where ``|x| <= delta``, else
    ``delta * |x| - 0.5 * delta**2``.

    Parameters
    ----------
    delta : float, default 1.0
        > 0: where the loss turns from quadratic to linear.

    Example
    -------
    >>> Huber()([[0.0, 0.0]], [[0.5, 3.0]])            # (0.125 + 2.5) / 2
    1.3125
    """

    name = "huber"

    def __init__(self, delta=1.0):
        if isinstance(delta, (bool, np.bool_)) or not isinstance(delta, (int, float, np.floating,
                                                                         np.integer)):
            raise TypeError(f"delta must be a positive number, got {delta!r}")
        if not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
        self.delta = float(delta)

    def get_config(self):
        return {"delta": self.delta}

    def _elementwise(self, y_true, y_pred):
        x = y_pred - y_true
        c = y_pred.shape[-1]
        d = y_pred.dtype.type(self.delta)
        ax = np.abs(x)
        quad = ax <= d
        per = np.where(quad, 0.5 * x * x, d * ax - 0.5 * d * d)
        grad = np.where(quad, x, d * np.sign(x)) / c
        return np.mean(per, axis=-1), grad.astype(y_pred.dtype, copy=False)


class KLDivergence(Loss):
    """Kullback-Leibler divergence (Keras ``KLDivergence``), summed over the last axis.

    ``sum(y_true * log(y_true / y_pred))`` with both clipped to ``[1e-7, 1]`` first (as
    Keras does); clipped entries of ``y_pred`` get zero gradient.

    Example
    -------
    >>> round(KLDivergence()([[0.5, 0.5]], [[0.25, 0.75]]), 6)
    0.143841
    """

    name = "kl_divergence"

    def _elementwise(self, y_true, y_pred):
        t = np.clip(y_true, EPSILON, 1)
        p = np.clip(y_pred, EPSILON, 1)
        per = np.sum(t * np.log(t / p), axis=-1)
        d = np.where((y_pred >= EPSILON) & (y_pred <= 1), -t / p, 0)
        return per, d.astype(y_pred.dtype, copy=False)


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

    def loss_and_gradient(self, y_true, y_pred, mask=None, sample_weight=None):
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
        w = _apply_sample_weight(w, sample_weight)
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
    "huber": Huber,
    "huber_loss": Huber,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "kldivergence": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
}

LOSS_REGISTRY = {
    "MeanSquaredError": MeanSquaredError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "BinaryCrossentropy": BinaryCrossentropy,
    "CategoricalCrossentropy": CategoricalCrossentropy,
    "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy,
    "Huber": Huber,
    "KLDivergence": KLDivergence,
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


def huber(y_true, y_pred, delta=1.0, mask=None):
    return Huber(delta)(y_true, y_pred, mask)


def kl_divergence(y_true, y_pred, mask=None):
    return KLDivergence()(y_true, y_pred, mask)


def class_weight_to_sample_weight(class_weight, y, loss=None):
    """Per-position weights from ``fit``'s ``class_weight`` (Keras semantics).

    Parameters
    ----------
    class_weight : dict
        ``{class_id: weight}``; classes not listed get weight 1, as in Keras.
    y : ndarray
        Targets: integer class ids (sparse losses: shape ``(B,)``, ``(B, 1)`` or ``(B, T)``),
        one-hot / probability rows (``(..., C)`` with C > 1: the class is the argmax), or
        binary targets ``(B,)`` / ``(B, 1)`` (the class is ``round(y)``).
    loss : Loss, optional
        The compiled loss: with a sparse categorical loss ``y`` holds class ids whatever its
        shape.

    Returns
    -------
    ndarray
        float64 weights of shape ``(B,)`` or ``(B, T)`` (one per position of the loss).

    Example
    -------
    >>> class_weight_to_sample_weight({0: 1.0, 1: 5.0}, np.array([0, 1, 1]))
    array([1., 5., 5.])
    """
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class_id: weight}}, got "
                        f"{type(class_weight).__name__}")
    table = {}
    for k, v in class_weight.items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"class_weight keys must be class ids (ints >= 0), got {k!r}")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                                  np.floating)) \
                or not np.isfinite(v) or v < 0:
            raise ValueError(f"class_weight[{k}] must be a finite number >= 0, got {v!r}")
        table[int(k)] = float(v)
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind not in "biuf":
        raise TypeError(f"class_weight needs numeric targets, got dtype {y.dtype}")
    if isinstance(loss, SparseCategoricalCrossentropy):
        ids = y[..., 0] if (y.ndim >= 2 and y.shape[-1] == 1) else y
    elif y.ndim >= 2 and y.shape[-1] > 1:
        ids = np.argmax(y, axis=-1)
    else:
        ids = y[..., 0] if (y.ndim >= 2 and y.shape[-1] == 1) else y
    if ids.dtype.kind == "f":
        if ids.size and not np.all(np.isfinite(ids)):
            raise ValueError("class_weight: targets contain NaN or Inf")
        ids = np.round(ids)
    ids = ids.astype(np.int64)
    out = np.ones(ids.shape, dtype=np.float64)
    for k, v in table.items():
        out[ids == k] = v
    return out
