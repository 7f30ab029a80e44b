"""LayerNormalization over the last axis (Keras's defaults, torch.nn.LayerNorm's names)."""

import numbers

import numpy as np

from .. import initializers
from .base import Layer
from .core import _float_input, _positive_int

__all__ = ["LayerNormalization"]


class LayerNormalization(Layer):
    """``y = (x - mean) / sqrt(var + epsilon) * weight + bias`` over the last axis.

    Parameters
    ----------
    axis : -1
        Only the last axis is supported (Keras's default).
    epsilon : float, default 1e-3
        Keras's default (torch.nn.LayerNorm uses 1e-5: pass ``epsilon=1e-5`` to match it).
    center, scale : bool
        Learn ``bias`` (beta, zeros) / ``weight`` (gamma, ones) of shape ``(features,)``.
    beta_initializer, gamma_initializer : name, Initializer or callable

    The variance is the biased one (divided by the feature count), as in Keras and PyTorch.
    Masks pass through.
    """

    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", *, input_size=None, dtype="float32", seed=None,
                 name=None, trainable=True, input_shape=None):
        super().__init__(dtype=dtype, seed=seed, name=name, trainable=trainable,
                         input_shape=input_shape)
        if axis not in (-1, [-1], (-1,)):
            raise ValueError(f"LayerNormalization: only axis=-1 is supported, got {axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0:
            raise ValueError(f"LayerNormalization: epsilon must be a number > 0, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        if input_size is None and self.batch_input_shape is not None:
            input_size = self.batch_input_shape[-1]
        self.input_size = None if input_size is None else _positive_int(input_size, "input_size")
        self._cache = None
        if self.input_size is not None:
            self.build((None, self.input_size))
        elif not (self.center or self.scale):
            self.built = True

    def build(self, input_shape):
        n = _positive_int(input_shape[-1], "input feature size")
        self.input_size = n
        rng = self._rng()
        if self.scale:
            self.params["weight"] = initializers.draw(
                initializers.get(self.gamma_initializer), (n,), self.dtype, rng,
                "LayerNormalization gamma_initializer")
        if self.center:
            self.params["bias"] = initializers.draw(
                initializers.get(self.beta_initializer), (n,), self.dtype, rng,
                "LayerNormalization beta_initializer")
        self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(epsilon=self.epsilon, center=self.center, scale=self.scale,
                   input_size=self.input_size)
        for key, v in (("beta_initializer", self.beta_initializer),
                       ("gamma_initializer", self.gamma_initializer)):
            ser = initializers.serialize(v)
            if ser is not None:
                cfg[key] = ser
        return cfg

    def forward(self, x, training=False, mask=None):
        x = _float_input(x, "LayerNormalization", self.dtype)
        if x.ndim < 1:
            raise ValueError("LayerNormalization: x must have at least one axis")
        if not self.built or self.input_size is None:
            self.build(x.shape)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"LayerNormalization: x.shape[-1] must be {self.input_size}, got "
                             f"{x.shape[-1]}")
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + self.epsilon)
        xhat = xc * rstd
        y = xhat * self.params["weight"] if self.scale else xhat.copy()
        if self.center:
            y += self.params["bias"]
        self._cache = (xhat, rstd) if training else None
        return y.astype(self.dtype, copy=False)

    def backward(self, d_out):
        if self._cache is None:
            raise RuntimeError("LayerNormalization.backward needs a preceding "
                               "forward(..., training=True)")
        xhat, rstd = self._cache
        d = np.asarray(d_out)
        if d.shape != xhat.shape:
            raise ValueError(f"LayerNormalization: d_out must have shape {xhat.shape}, got "
                             f"{d.shape}")
        lead = tuple(range(d.ndim - 1))
        if self.scale:
            self.grads["weight"] = (d * xhat).sum(axis=lead).astype(self.dtype)
            dxhat = d * self.params["weight"]
        else:
            dxhat = d
        if self.center:
            self.grads["bias"] = d.sum(axis=lead).astype(self.dtype)
        # d xhat -> d x: subtract the mean and the projection on xhat (both removed by the
        # normalisation), then scale by 1/std
        dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                     - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
        return dx.astype(self.dtype, copy=False)
