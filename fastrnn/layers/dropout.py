"""Dropout (inverted: scaled at training time, identity at inference)."""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .base import Layer

__all__ = ["Dropout"]


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
    >>> sorted(set(drop.forward(x, training=True).ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """

    supports_masking = True

    def __init__(self, rate: float, seed: Optional[int] = None, *, dtype: str = "float32",
                 name: Optional[str] = None) -> None:
        super().__init__(dtype=dtype, seed=seed, name=name)
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
