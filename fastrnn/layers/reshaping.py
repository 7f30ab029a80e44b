"""Shape-only layers: RepeatVector and Flatten."""

import numpy as np

from .base import Layer
from .core import _float_input, _positive_int

__all__ = ["RepeatVector", "Flatten"]


class RepeatVector(Layer):
    """Repeat a vector ``n`` times: ``(B, F) -> (B, n, F)`` (the encoder-decoder bridge).

    Parameters
    ----------
    n : int
        Number of repetitions (the output's time axis).

    Example
    -------
    >>> RepeatVector(3)(np.ones((2, 4), dtype=np.float32)).shape
    (2, 3, 4)
    """

    def __init__(self, n, *, dtype="float32", name=None, trainable=True, input_shape=None):
        super().__init__(dtype=dtype, name=name, trainable=trainable, input_shape=input_shape)
        self.n = _positive_int(n, "n")
        self._shape = None
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n) + tuple(input_shape[1:])

    def forward(self, x, training=False, mask=None):
        x = _float_input(x, "RepeatVector", self.dtype)
        if x.ndim != 2:
            raise ValueError(f"RepeatVector: x must have 2 dimensions (batch, features), got "
                             f"shape {x.shape}")
        self._shape = x.shape
        return np.ascontiguousarray(np.broadcast_to(x[:, None, :], (x.shape[0], self.n,
                                                                     x.shape[1])))

    def backward(self, d_out):
        if self._shape is None:
            raise RuntimeError("RepeatVector.backward needs a preceding forward")
        d = np.asarray(d_out)
        B, F = self._shape
        if d.shape != (B, self.n, F):
            raise ValueError(f"RepeatVector: d_out must have shape {(B, self.n, F)}, got "
                             f"{d.shape}")
        return d.sum(axis=1)


class Flatten(Layer):
    """Flatten every axis but the batch: ``(B, d1, d2, ...) -> (B, d1*d2*...)``.

    Masks are dropped (a flat vector has no time axis), as in Keras.
    """

    def __init__(self, *, dtype="float32", name=None, trainable=True, input_shape=None):
        super().__init__(dtype=dtype, name=name, trainable=trainable, input_shape=input_shape)
        self._shape = None
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(s is None for s in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], n)

    def forward(self, x, training=False, mask=None):
        x = _float_input(x, "Flatten", self.dtype)
        if x.ndim < 2:
            raise ValueError(f"Flatten: x must have a batch axis and at least one more, got "
                             f"shape {x.shape}")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, d_out):
        if self._shape is None:
            raise RuntimeError("Flatten.backward needs a preceding forward")
        d = np.asarray(d_out)
        n = int(np.prod(self._shape[1:]))
        if d.shape != (self._shape[0], n):
            raise ValueError(f"Flatten: d_out must have shape {(self._shape[0], n)}, got "
                             f"{d.shape}")
        return d.reshape(self._shape)
