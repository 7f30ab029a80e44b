"""Pooling over the time axis of ``(batch, time, channels)`` inputs (Keras's channels_last).

GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D.
"""

import numpy as np

from .base import Layer
from .core import _float_input, _positive_int

__all__ = ["GlobalAveragePooling1D", "GlobalMaxPooling1D", "MaxPooling1D"]


def _three_d(x, layer, dtype):
    x = _float_input(x, layer, dtype)
    if x.ndim != 3:
        raise ValueError(f"{layer}: x must have 3 dimensions (batch, time, channels), got shape "
                         f"{x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{layer}: x must have at least one time step, got shape {x.shape}")
    return x


class _NoParams(Layer):
    def __init__(self, *, dtype="float32", name=None, trainable=True, input_shape=None):
        super().__init__(dtype=dtype, name=name, trainable=trainable, input_shape=input_shape)
        self._cache = None
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def _need_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a preceding "
                               "forward(..., training=True)")
        return self._cache


class GlobalAveragePooling1D(_NoParams):
    """Mean over time: ``(B, T, C) -> (B, C)`` (``(B, 1, C)`` with ``keepdims=True``).

    With a mask (``Embedding(mask_zero=True)`` upstream), the mean is over the valid steps
    only, as in Keras; a row with no valid step gives zeros.
    """

    supports_masking = True

    def __init__(self, keepdims=False, **kw):
        super().__init__(**kw)
        self.keepdims = bool(keepdims)

    def get_config(self):
        cfg = super().get_config()
        if self.keepdims:
            cfg["keepdims"] = True
        return cfg

    def compute_output_shape(self, input_shape):
        return ((input_shape[0], 1, input_shape[2]) if self.keepdims
                else (input_shape[0], input_shape[2]))

    def compute_mask(self, x, mask=None):
        return None

    def forward(self, x, training=False, mask=None):
        x = _three_d(x, "GlobalAveragePooling1D", self.dtype)
        B, T, _ = x.shape
        if mask is None:
            w = np.full((B, T, 1), 1.0 / T, dtype=x.dtype)
        else:
            m = np.asarray(mask, dtype=bool)
            if m.shape != (B, T):
                raise ValueError(f"GlobalAveragePooling1D: mask must have shape {(B, T)}, got "
                                 f"{m.shape}")
            n = m.sum(axis=1, keepdims=True)
            w = (m / np.maximum(n, 1)).astype(x.dtype)[:, :, None]
        self._cache = (w, x.shape) if training else None
        out = (x * w).sum(axis=1, keepdims=self.keepdims)
        return out

    def backward(self, d_out):
        w, shape = self._need_cache()
        d = np.asarray(d_out)
        expected = (shape[0], 1, shape[2]) if self.keepdims else (shape[0], shape[2])
        if d.shape != expected:
            raise ValueError(f"GlobalAveragePooling1D: d_out must have shape {expected}, got "
                             f"{d.shape}")
        d = d.reshape(shape[0], 1, shape[2])
        return (d * w).astype(w.dtype, copy=False)


class GlobalMaxPooling1D(_NoParams):
    """Max over time: ``(B, T, C) -> (B, C)`` (``(B, 1, C)`` with ``keepdims=True``).

    Like Keras, it takes no mask (padded steps take part in the max; zero-padded embeddings
    rarely win). The gradient goes to the first maximal step.
    """

    def __init__(self, keepdims=False, **kw):
        super().__init__(**kw)
        self.keepdims = bool(keepdims)

    def get_config(self):
        cfg = super().get_config()
        if self.keepdims:
            cfg["keepdims"] = True
        return cfg

    def compute_output_shape(self, input_shape):
        return ((input_shape[0], 1, input_shape[2]) if self.keepdims
                else (input_shape[0], input_shape[2]))

    def forward(self, x, training=False):
        x = _three_d(x, "GlobalMaxPooling1D", self.dtype)
        idx = x.argmax(axis=1)
        self._cache = (idx, x.shape, x.dtype) if training else None
        return x.max(axis=1, keepdims=self.keepdims)

    def backward(self, d_out):
        idx, shape, dtype = self._need_cache()
        B, T, C = shape
        d = np.asarray(d_out)
        expected = (B, 1, C) if self.keepdims else (B, C)
        if d.shape != expected:
            raise ValueError(f"GlobalMaxPooling1D: d_out must have shape {expected}, got "
                             f"{d.shape}")
        dx = np.zeros(shape, dtype=dtype)
        b, c = np.meshgrid(np.arange(B), np.arange(C), indexing="ij")
        dx[b, idx, c] = d.reshape(B, C)
        return dx


def _pool_geometry(T, pool, stride, padding):
    """(output length, left padding, padded length) of a 1-D window sweep (TF's rules)."""
    if padding == "valid":
        out = (T - pool) // stride + 1
        return out, 0, T
    out = -(-T // stride)
    total = max((out - 1) * stride + pool - T, 0)
    return out, total // 2, T + total


class MaxPooling1D(_NoParams):
    """Max over windows of ``pool_size`` steps moved by ``strides``: ``(B, T, C) -> (B, T', C)``.

    Parameters
    ----------
    pool_size : int, default 2
    strides : int or None
        None means ``pool_size`` (Keras).
    padding : {"valid", "same"}
        "valid": ``T' = (T - pool_size) // strides + 1``; "same": ``T' = ceil(T / strides)``,
        the sequence padded with -inf (padding never wins the max).

    Masks are dropped (Keras's pooling layers take none). The gradient goes to the first
    maximal element of each window.
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", **kw):
        super().__init__(**kw)
        self.pool_size = _positive_int(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _positive_int(strides, "strides")
        if padding not in ("valid", "same"):
            raise ValueError(f"MaxPooling1D: padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding)
        return cfg

    def compute_output_shape(self, input_shape):
        T = input_shape[1]
        out = None if T is None else _pool_geometry(T, self.pool_size, self.strides,
                                                    self.padding)[0]
        return (input_shape[0], out, input_shape[2])

    def forward(self, x, training=False):
        x = _three_d(x, "MaxPooling1D", self.dtype)
        B, T, C = x.shape
        out_len, left, padded = _pool_geometry(T, self.pool_size, self.strides, self.padding)
        if out_len < 1:
            raise ValueError(f"MaxPooling1D: {T} time steps are fewer than pool_size="
                             f"{self.pool_size} with padding='valid'")
        if padded != T:
            xp = np.full((B, padded, C), -np.inf, dtype=x.dtype)
            xp[:, left:left + T] = x
        else:
            xp = x
        # window positions (out_len, pool) into the padded sequence
        pos = np.arange(out_len)[:, None] * self.strides + np.arange(self.pool_size)[None, :]
        win = xp[:, pos, :]                                  # (B, out_len, pool, C)
        arg = win.argmax(axis=2)                             # (B, out_len, C)
        out = np.take_along_axis(win, arg[:, :, None, :], axis=2)[:, :, 0, :]
        if training:
            src = pos[np.arange(out_len)[None, :, None], arg] - left   # index into x
            self._cache = (src, x.shape, x.dtype)
        else:
            self._cache = None
        return np.ascontiguousarray(out)

    def backward(self, d_out):
        src, shape, dtype = self._need_cache()
        B, T, C = shape
        d = np.asarray(d_out)
        if d.shape != src.shape:
            raise ValueError(f"MaxPooling1D: d_out must have shape {src.shape}, got {d.shape}")
        dx = np.zeros(shape, dtype=dtype)
        b = np.arange(B)[:, None, None]
        c = np.arange(C)[None, None, :]
        np.add.at(dx, (np.broadcast_to(b, src.shape), src, np.broadcast_to(c, src.shape)), d)
        return dx
