"""TimeDistributed: apply a layer to every time step of a sequence."""

import numpy as np

from .base import Layer

__all__ = ["TimeDistributed"]


class TimeDistributed(Layer):
    """Apply ``layer`` to every time step: ``(B, T, ...) -> (B, T, ...)``.

    The batch and time axes are merged, the wrapped layer runs once on ``(B*T, ...)`` and the
    result is split again, so one set of weights serves every step (Keras's TimeDistributed).
    ``params`` / ``grads`` are the wrapped layer's own dicts (same names). A mask passes
    through to the output; the wrapped layer does not see it.

    Parameters
    ----------
    layer : Layer
        Typically ``Dense`` (sequence tagging), also ``Dropout``, ``Activation``, ...

    Example
    -------
    >>> td = TimeDistributed(Dense(5))
    >>> td(np.zeros((2, 7, 3), dtype=np.float32)).shape
    (2, 7, 5)
    """

    supports_masking = True

    def __init__(self, layer, *, name=None, trainable=True, input_shape=None):
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed: layer must be a fastrnn Layer, got "
                            f"{type(layer).__name__}")
        if isinstance(layer, TimeDistributed) or getattr(layer, "return_state", False):
            raise ValueError("TimeDistributed: the wrapped layer must return a single array")
        super().__init__(dtype=layer.dtype.name, seed=layer.seed,
                         name=name or "time_distributed", trainable=trainable,
                         input_shape=input_shape)
        self.layer = layer
        self.params = layer.params
        self.grads = layer.grads
        self._shape = None
        self.built = layer.built

    @property
    def input_size(self):
        return getattr(self.layer, "input_size", None)

    @property
    def activation(self):
        return getattr(self.layer, "activation", None)

    @property
    def last_logits(self):
        """The wrapped Dense's pre-activation, reshaped to (B, T, units) (for fused losses)."""
        z = getattr(self.layer, "last_logits", None)
        if z is None or self._shape is None:
            return None
        return z.reshape(self._shape[:2] + z.shape[1:])

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"TimeDistributed: input must have at least 3 dimensions (batch, "
                             f"time, ...), got shape {tuple(input_shape)}")
        if not self.layer.built:
            if self.layer.seed is None and self.seed is not None:
                self.layer.seed = self.seed
            self.layer.build((None,) + tuple(input_shape[2:]))
        self.params = self.layer.params
        self.grads = self.layer.grads
        self.built = True

    def get_config(self):
        from . import serialize
        cfg = {"layer": serialize(self.layer), "name": self.name}
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        config = dict(config)
        if "layer" not in config:
            raise ValueError("TimeDistributed config needs a 'layer' entry")
        config["layer"] = deserialize(config["layer"])
        return cls(**config)

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def compute_mask(self, x, mask=None):
        return mask

    def count_params(self):
        return self.layer.count_params()

    def forward(self, x, training=False, mask=None):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"TimeDistributed: x must have at least 3 dimensions (batch, time, "
                             f"...), got shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        B, T = x.shape[:2]
        flat = x.reshape((B * T,) + x.shape[2:])
        out = self.layer.forward(flat, training=training)
        self._shape = (B, T)
        self.grads = self.layer.grads
        return out.reshape((B, T) + out.shape[1:])

    def backward(self, d_out, from_logits=False):
        if self._shape is None:
            raise RuntimeError("TimeDistributed.backward needs a preceding forward")
        B, T = self._shape
        d = np.asarray(d_out)
        if d.shape[:2] != (B, T):
            raise ValueError(f"TimeDistributed: d_out must start with (batch, time) = {(B, T)}, "
                             f"got shape {d.shape}")
        flat = d.reshape((B * T,) + d.shape[2:])
        if from_logits:
            dx = self.layer.backward(flat, from_logits=True)
        else:
            dx = self.layer.backward(flat)
        self.grads = self.layer.grads
        if dx is None:
            return None
        return dx.reshape((B, T) + dx.shape[1:])
