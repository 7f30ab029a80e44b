"""Dropout (inverted: scaled at training time, identity at inference)."""

import numbers

import numpy as np

from .base import Layer

__all__ = ["Dropout", "SpatialDropout1D"]


class Dropout(Layer):
    """Zero each input element with probability ``rate`` during training and scale the rest by
    ``1 / (1 - rate)``, so inference is the identity. A fixed ``seed`` gives the same sequence of
    masks on every run (the generator is created on first use). Masks pass through unchanged.

    Parameters
    ----------
    rate : float
        Drop probability, in ``[0, 1)``.
    seed : int, optional
        Seed of the mask generator.
    dtype : {"float32", "float64"}, default "float32"
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional

    Notes
    -----
    Shapes: output = input, any shape.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> drop = fr.Dropout(0.5, seed=0)
    >>> x = np.ones((2, 3), dtype="float32")
    >>> bool((drop.forward(x) == x).all())               # inference: the identity
    True
    >>> set(drop.forward(x, training=True).ravel().tolist()) <= {0.0, 2.0}
    True
    """

    supports_masking = True

    def __init__(self, rate, seed=None, *, dtype="float32", name=None, trainable=True,
                 input_shape=None):
        super().__init__(dtype=dtype, seed=seed, name=name, trainable=trainable,
                         input_shape=input_shape)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (0 <= rate < 1):
            raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self._gen = None
        self._scale_mask = None
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        return cfg

    def reset_rng(self):
        """Restart the random stream from ``seed``."""
        self._gen = None

    def forward(self, x, training=False, mask=None):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"Dropout: x must be a float array, got dtype {x.dtype}")
        if not training or self.rate == 0:
            self._scale_mask = None
            return x
        if self._gen is None:
            self._gen = self._rng()
        keep = self._gen.random(x.shape) >= self.rate
        self._scale_mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._scale_mask

    def backward(self, d_out):
        d_out = np.asarray(d_out)
        if self._scale_mask is None:
            return d_out
        if d_out.shape != self._scale_mask.shape:
            raise ValueError(f"Dropout: d_out must have shape {self._scale_mask.shape}, got "
                             f"{d_out.shape}")
        return d_out * self._scale_mask


class SpatialDropout1D(Dropout):
    """Drop whole channels: one keep/drop decision per (sample, channel), shared by every time
    step of ``(batch, time, channels)`` inputs (Keras's SpatialDropout1D), scaled by
    ``1 / (1 - rate)`` at training time; identity at inference. Masks pass through.

    Example
    -------
    >>> d = SpatialDropout1D(0.5, seed=0)
    >>> y = d.forward(np.ones((2, 4, 6), dtype=np.float32), training=True)
    >>> bool((y == y[:, :1]).all())          # the same channels are dropped at every step
    True
    """

    def forward(self, x, training=False, mask=None):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"SpatialDropout1D: x must be a float array, got dtype {x.dtype}")
        if x.ndim != 3:
            raise ValueError(f"SpatialDropout1D: x must have 3 dimensions (batch, time, "
                             f"channels), got shape {x.shape}")
        if not training or self.rate == 0:
            self._scale_mask = None
            return x
        if self._gen is None:
            self._gen = self._rng()
        keep = self._gen.random((x.shape[0], 1, x.shape[2])) >= self.rate
        self._scale_mask = np.broadcast_to(
            keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate)), x.shape)
        return x * self._scale_mask
