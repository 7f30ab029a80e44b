"""Activation: an elementwise (or, for softmax, last-axis) function as a layer."""

import math

import numpy as np
from scipy.special import erf, expit

from .base import Layer
from .core import _float_input

__all__ = ["Activation", "ACTIVATION_FUNCTIONS"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> (forward f(z), backward g(z, a, da) giving d loss / d z). Each derivative is written
# out (not taken numerically) and checked against finite differences in the tests.
ACTIVATION_FUNCTIONS = {
    "linear": (lambda z: z, lambda z, a, da: da),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a, da: da * (z > 0)),
    "relu6": (lambda z: np.clip(z, 0, 6), lambda z, a, da: da * ((z > 0) & (z < 6))),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.2 * z),          # Keras 3: slope 0.2
                   lambda z, a, da: da * np.where(z > 0, 1.0, 0.2).astype(z.dtype)),
    "tanh": (np.tanh, lambda z, a, da: da * (1 - a * a)),
    "sigmoid": (expit, lambda z, a, da: da * a * (1 - a)),
    "hard_sigmoid": (lambda z: np.clip(z / 6 + 0.5, 0, 1),         # Keras 3: relu6(x + 3) / 6
                     lambda z, a, da: da * ((z > -3) & (z < 3)) / 6),
    "softplus": (lambda z: np.logaddexp(0, z), lambda z, a, da: da * expit(z)),
    "softsign": (lambda z: z / (1 + np.abs(z)), lambda z, a, da: da / (1 + np.abs(z)) ** 2),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
            lambda z, a, da: da * np.where(z > 0, 1.0, a + 1)),
    "selu": (lambda z: _SELU_SCALE * np.where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0))),
             lambda z, a, da: da * _SELU_SCALE * np.where(
                 z > 0, 1.0, _SELU_ALPHA * np.exp(np.minimum(z, 0)))),
    "swish": (lambda z: z * expit(z),
              lambda z, a, da: da * (expit(z) * (1 + z * (1 - expit(z))))),
    "gelu": (lambda z: 0.5 * z * (1 + erf(z / math.sqrt(2))),       # exact (erf) form
             lambda z, a, da: da * (0.5 * (1 + erf(z / math.sqrt(2)))
                                    + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))),
    "exponential": (np.exp, lambda z, a, da: da * a),
    "softmax": (_softmax, lambda z, a, da: a * (da - np.sum(da * a, axis=-1, keepdims=True))),
    "log_softmax": (lambda z: z - z.max(axis=-1, keepdims=True) - np.log(
        np.exp(z - z.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)),
        lambda z, a, da: da - np.exp(a) * da.sum(axis=-1, keepdims=True)),
}
ACTIVATION_FUNCTIONS["silu"] = ACTIVATION_FUNCTIONS["swish"]


class Activation(Layer):
    """Apply an activation function (Keras's ``layers.Activation``).

    Parameters
    ----------
    activation : str or None
        One of ``ACTIVATION_FUNCTIONS`` (linear, relu, relu6, leaky_relu, tanh, sigmoid,
        hard_sigmoid, softplus, softsign, elu, selu, swish/silu, gelu, exponential, softmax,
        log_softmax); None is linear. softmax / log_softmax act on the last axis.

    Shapes: any input, same output shape. Masks pass through.

    Example
    -------
    >>> Activation("relu")(np.array([[-1.0, 2.0]], dtype=np.float32))
    array([[0., 2.]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, activation, *, dtype="float32", name=None, trainable=True,
                 input_shape=None):
        super().__init__(dtype=dtype, name=name, trainable=trainable, input_shape=input_shape)
        if activation is None:
            activation = "linear"
        if not isinstance(activation, str) or activation not in ACTIVATION_FUNCTIONS:
            raise ValueError(f"Activation: activation must be None or one of "
                             f"{sorted(ACTIVATION_FUNCTIONS)}, got {activation!r}")
        self.activation = activation
        self._cache = None
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg

    def forward(self, x, training=False, mask=None):
        z = _float_input(x, "Activation", self.dtype)
        with np.errstate(over="ignore"):
            a = ACTIVATION_FUNCTIONS[self.activation][0](z).astype(z.dtype, copy=False)
        self._cache = (z, a) if training else None
        return a

    def backward(self, d_out):
        if self._cache is None:
            raise RuntimeError("Activation.backward needs a preceding forward(..., training=True)")
        z, a = self._cache
        d = np.asarray(d_out)
        if d.shape != z.shape:
            raise ValueError(f"Activation: d_out must have shape {z.shape}, got {d.shape}")
        with np.errstate(over="ignore"):
            return ACTIVATION_FUNCTIONS[self.activation][1](z, a, d).astype(z.dtype, copy=False)
