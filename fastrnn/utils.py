"""Data utilities with Keras's semantics: :func:`pad_sequences`, :func:`to_categorical` and
:class:`Sequence`, the base class of batch sources that ``fit`` / ``evaluate`` / ``predict``
read one batch at a time (for data that does not fit in memory).
"""

import numbers

import numpy as np

__all__ = ["pad_sequences", "to_categorical", "Sequence", "PyDataset"]


def _is_str_dtype(dtype):
    return np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.object_)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (and truncate) a list of sequences to one length (``keras.utils.pad_sequences``).

    Parameters
    ----------
    sequences : list of sequences
        Each a list or array of length ``L_i``; elements may themselves be arrays (all of the
        same shape).
    maxlen : int, optional
        Output length (default: the longest sequence).  ``maxlen=0`` gives ``(n, 0)``.
    dtype : str or dtype, default "int32"
        Output dtype; a string dtype needs a string ``value``.
    padding : {"pre", "post"}, default "pre"
        Pad before (Keras's default) or after each sequence.
    truncating : {"pre", "post"}, default "pre"
        Drop values from the start (keep the last ``maxlen``; Keras's default) or the end.
    value : float or str, default 0.0
        The padding value.

    Returns
    -------
    ndarray
        Shape ``(len(sequences), maxlen) + element_shape``.

    Example
    -------
    >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
    array([[0, 0, 1],
           [0, 2, 3],
           [4, 5, 6]], dtype=int32)
    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2, padding="post", truncating="post")
    array([[1, 0],
           [2, 3],
           [4, 5]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"sequences must be a list of sequences, got {type(sequences).__name__}")
    if padding not in ("pre", "post"):
        raise ValueError(f'padding must be "pre" or "post", got {padding!r}')
    if truncating not in ("pre", "post"):
        raise ValueError(f'truncating must be "pre" or "post", got {truncating!r}')
    if maxlen is not None:
        if isinstance(maxlen, (bool, np.bool_)) or not isinstance(maxlen, numbers.Integral) \
                or maxlen < 0:
            raise ValueError(f"maxlen must be an int >= 0 or None, got {maxlen!r}")
        maxlen = int(maxlen)
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype: not a NumPy dtype: {dtype!r}") from exc
    if _is_str_dtype(dtype) and not isinstance(value, str) and dtype != np.object_:
        raise ValueError(f"dtype {dtype} is not compatible with value's type "
                         f"{type(value).__name__}: pass a string value to pad text")
    lengths = []
    sample_shape = ()
    found_shape = False
    for i, s in enumerate(sequences):
        if not hasattr(s, "__len__"):
            raise ValueError(f"sequences must be a list of sequences; sequences[{i}] is "
                             f"{type(s).__name__}: {s!r:.50}")
        lengths.append(len(s))
        if not found_shape and len(s):
            sample_shape = np.asarray(s).shape[1:]
            found_shape = True
    n = len(lengths)
    if maxlen is None:
        maxlen = max(lengths, default=0)
    out = np.full((n, maxlen) + sample_shape, value, dtype=dtype)
    for i, s in enumerate(sequences):
        if not len(s) or maxlen == 0:
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"sequences[{i}] has elements of shape {trunc.shape[1:]}, expected "
                             f"{sample_shape} like the first non-empty sequence")
        try:
            if padding == "post":
                out[i, :len(trunc)] = trunc
            else:
                out[i, maxlen - len(trunc):] = trunc
        except (ValueError, TypeError) as exc:
            raise ValueError(f"sequences[{i}] cannot be stored as {dtype}: {exc}") from None
    return out


def to_categorical(x, num_classes=None, dtype="float32"):
    """One-hot encode integer class ids (``keras.utils.to_categorical``).

    Parameters
    ----------
    x : array-like of int
        Class ids in ``[0, num_classes)``; a trailing axis of size 1 is dropped (as Keras
        does), so ``(n, 1)`` gives ``(n, num_classes)``.
    num_classes : int, optional
        Default ``max(x) + 1``.
    dtype : str or dtype, default "float32"

    Returns
    -------
    ndarray
        Shape ``x.shape + (num_classes,)`` (after the trailing-1 drop).

    Example
    -------
    >>> to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"x must hold integer class ids, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError("x must hold integer class ids, got non-integral values")
    arr = arr.astype(np.int64)
    shape = arr.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = arr.reshape(-1)
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    elif isinstance(num_classes, (bool, np.bool_)) or \
            not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")
    num_classes = int(num_classes)
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        bad = flat[(flat < 0) | (flat >= num_classes)][0]
        raise ValueError(f"class id {int(bad)} out of range: expected 0 <= id < {num_classes}")
    out = np.zeros((flat.size, num_classes), dtype=dtype)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(shape + (num_classes,))


class Sequence:
    """Base class of a batch source (``keras.utils.Sequence`` / ``PyDataset``).

    Subclasses define ``__len__`` (number of batches per epoch) and ``__getitem__(index)``
    returning one batch: ``(x, y)``, ``(x, y, sample_weight)`` (training and evaluation) or
    ``x`` (prediction).  ``on_epoch_end()`` is called after every training epoch (shuffle
    there).  Pass an instance as ``x`` to ``fit``, ``evaluate`` or ``predict`` (without
    ``y``); batches may differ in size.

    Example
    -------
    >>> class Batches(Sequence):
    ...     def __init__(self, x, y, batch_size):
    ...         self.x, self.y, self.batch_size = x, y, batch_size
    ...     def __len__(self):
    ...         return -(-len(self.x) // self.batch_size)
    ...     def __getitem__(self, i):
    ...         s = slice(i * self.batch_size, (i + 1) * self.batch_size)
    ...         return self.x[s], self.y[s]
    """

    def __len__(self):
        raise NotImplementedError("a Sequence defines __len__ (the number of batches)")

    def __getitem__(self, index):
        raise NotImplementedError("a Sequence defines __getitem__(index) -> one batch")

    def on_epoch_end(self):
        """Called at the end of every training epoch (no-op by default)."""

    @property
    def num_batches(self):
        """Number of batches (``len(self)``), Keras 3's ``PyDataset`` spelling."""
        return len(self)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


PyDataset = Sequence
