"""Dense (a torch.nn.Linear over the last axis, plus an activation) and Input."""

import numpy as np
from scipy.special import expit

from .. import initializers
from ..linalg import matmul
from .base import Layer

__all__ = ["Dense", "Masking", "Input", "InputLayer", "ACTIVATIONS"]

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _float_input(x, layer, dtype):
    """Array-like -> float array of the layer dtype (ints and float16 are cast; bool, complex,
    object and strings are a TypeError)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception:
            raise TypeError(f"{layer}: x must be an array, got {type(x).__name__}") from None
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{layer}: x must be a real numeric array, got dtype {x.dtype}")
    return x.astype(dtype, copy=False)


def apply_activation(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return expit(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(name)  # pragma: no cover - validated in __init__


def activation_backward(name, a, z, da):
    """d loss / d z from d loss / d a, using the output a (and z for relu)."""
    if name == "linear":
        return da
    if name == "relu":
        return da * (z > 0)
    if name == "tanh":
        return da * (1 - a * a)
    if name == "sigmoid":
        return da * a * (1 - a)
    if name == "softmax":
        return a * (da - np.sum(da * a, axis=-1, keepdims=True))
    raise ValueError(name)  # pragma: no cover


class Dense(Layer):
    """Fully connected layer over the last axis: ``y = act(x @ weight.T + bias)``.

    Works on ``(B, in)`` and ``(B, T, in)`` (any leading axes). Parameters are torch.nn.Linear's:
    ``weight`` (units, in) and ``bias`` (units,), initialised like Keras (``kernel_initializer=
    "glorot_uniform"``, ``bias_initializer="zeros"``; initializers see Keras's kernel shape
    (in, units)), or like torch with ``init="torch"`` (U(-1/sqrt(in), 1/sqrt(in)) for both).
    ``activation``: None/"linear", "relu", "tanh", "sigmoid", "softmax" (softmax over the last
    axis). Masks pass through unchanged.

    Parameters
    ----------
    units : int
        Output features.
    activation : {None, "linear", "relu", "tanh", "sigmoid", "softmax"}, optional
        Applied after the affine map; None means linear.
    use_bias : bool, default True
        Learn ``bias``.
    kernel_initializer, bias_initializer : str or callable, optional
        Keras names or objects (default: glorot_uniform, zeros).
    input_size : int, optional
        Input features; given, the weights are built at once (else on the first call).
    init : {None, "keras", "torch"}, optional
        "torch": torch.nn.Linear's initialisation.
    dtype : {"float32", "float64"}, default "float32"
    seed : int, optional
        Seed of the initial weights.
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional
        Keras's input shape without the batch axis.

    Notes
    -----
    Shapes: input ``(..., in)`` -> output ``(..., units)``.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> dense = fr.Dense(3, activation="softmax", seed=0)
    >>> y = dense.forward(np.ones((2, 5, 4), dtype="float32"))
    >>> y.shape, np.allclose(y.sum(axis=-1), 1)
    ((2, 5, 3), True)
    """

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer=None,
                 bias_initializer=None, *, input_size=None, init=None, dtype="float32",
                 seed=None, name=None, trainable=True, input_shape=None):
        super().__init__(dtype=dtype, seed=seed, name=name, trainable=trainable,
                         input_shape=input_shape)
        if input_size is None and self.batch_input_shape is not None:
            input_size = self.batch_input_shape[-1]
        if init not in (None, "keras", "torch"):
            raise ValueError(f"init must be None, 'keras' or 'torch', got {init!r}")
        self.init = init
        self._init_args = {"kernel": kernel_initializer, "bias": bias_initializer}
        self.units = _positive_int(units, "units")
        if activation is None:
            activation = "linear"
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be None or one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.input_size = None if input_size is None else _positive_int(input_size, "input_size")
        self._cache = None
        self.last_logits = None
        if self.input_size is not None:
            self.build((None, self.input_size))

    _KERAS_DEFAULTS = {"kernel": "glorot_uniform", "bias": "zeros"}

    def build(self, input_shape):
        n_in = _positive_int(input_shape[-1], "input feature size")
        rng = self._rng()
        self.input_size = n_in
        torch = initializers.TorchUniform(n_in)
        inits = {}
        for k, v in self._init_args.items():
            if v is None:      # the scheme's default
                inits[k] = torch if self.init == "torch" else initializers.get(
                    self._KERAS_DEFAULTS[k])
            else:
                inits[k] = initializers.get(v, torch_default=torch)
        w = initializers.draw(inits["kernel"], (n_in, self.units), self.dtype, rng,
                              "Dense kernel_initializer")
        self.params["weight"] = np.ascontiguousarray(w.T)
        if self.use_bias:
            self.params["bias"] = initializers.draw(inits["bias"], (self.units,), self.dtype,
                                                    rng, "Dense bias_initializer")
        self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                   input_size=self.input_size)
        for k, v in self._init_args.items():
            ser = initializers.serialize(v)
            if ser is not None:
                cfg[f"{k}_initializer"] = ser
        if self.init is not None:
            cfg["init"] = self.init
        return cfg

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _check(self, x):
        x = _float_input(x, "Dense", self.dtype)
        if x.ndim < 2:
            raise ValueError(f"Dense: x must have at least 2 dimensions (batch, features), got "
                             f"shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"Dense: x.shape[-1] (features) must be {self.input_size}, got "
                             f"{x.shape[-1]}")
        return x

    def forward(self, x, training=False, mask=None):
        x = self._check(x)
        x2 = x.reshape(-1, self.input_size)
        # the products run on the engine's threads (fastrnn.linalg): no second thread pool
        z = matmul(x2, self.params["weight"], transpose_b=True)
        if self.use_bias:
            z += self.params["bias"]
        with np.errstate(over="ignore"):
            a = apply_activation(self.activation, z)
        out_shape = x.shape[:-1] + (self.units,)
        self.last_logits = z.reshape(out_shape)      # pre-activation, for fused losses
        self._cache = (x2, z, a, out_shape) if training else None
        return a.reshape(out_shape)

    def backward(self, d_out, from_logits=False):
        """Gradient of the input. ``from_logits=True`` means ``d_out`` is the gradient with
        respect to the pre-activation (``last_logits``), as the fused softmax/sigmoid +
        cross-entropy path of Sequential gives it."""
        if self._cache is None:
            raise RuntimeError("Dense.backward needs a preceding forward(..., training=True)")
        x2, z, a, out_shape = self._cache
        d_out = np.asarray(d_out)
        if d_out.shape != out_shape:
            raise ValueError(f"Dense: d_out must have shape {out_shape}, got {d_out.shape}")
        da = d_out.reshape(-1, self.units).astype(self.dtype, copy=False)
        dz = da if from_logits else activation_backward(self.activation, a, z, da)
        self.grads["weight"] = matmul(dz, x2, transpose_a=True)
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=0)
        dx = matmul(dz, self.params["weight"])
        return dx.reshape(out_shape[:-1] + (self.input_size,))


class Masking(Layer):
    """Mark time steps whose features all equal ``mask_value`` as padding (Keras semantics).

    Input (B, T, F) floats; the output mask is ``any(x != mask_value, axis=-1)`` (combined with
    an incoming mask) and masked steps are zeroed in the output. For float sequences padded on
    the right, put it first: ``Sequential([Masking(), LSTM(32), Dense(1)])``.

    Parameters
    ----------
    mask_value : float, default 0.0
        A step whose features all equal it is padding.
    dtype : {"float32", "float64"}, default "float32"
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional
        Keras's input shape without the batch axis.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> x = np.array([[[1.0, 2.0], [0.0, 0.0]]], dtype="float32")     # (B=1, T=2, F=2)
    >>> fr.Masking().compute_mask(x)
    array([[ True, False]])
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, *, dtype="float32", name=None, trainable=True,
                 input_shape=None):
        super().__init__(dtype=dtype, name=name, trainable=trainable, input_shape=input_shape)
        try:
            self.mask_value = float(mask_value)
        except (TypeError, ValueError):
            raise TypeError(f"mask_value must be a number, got {mask_value!r}") from None
        self._keep = None
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg

    def _step_mask(self, x):
        return np.any(x != self.mask_value, axis=-1)

    def forward(self, x, training=False, mask=None):
        x = _float_input(x, "Masking", self.dtype)
        if x.ndim != 3:
            raise ValueError(f"Masking: x must have 3 dimensions (batch, time, features), got "
                             f"shape {x.shape}")
        keep = self._step_mask(x)
        if mask is not None:
            keep = keep & np.asarray(mask, dtype=bool)
        self._keep = keep
        return x * keep[..., None].astype(x.dtype)

    def backward(self, d_out):
        if self._keep is None:
            raise RuntimeError("Masking.backward needs a preceding forward(..., training=True)")
        return np.asarray(d_out) * self._keep[..., None]

    def compute_mask(self, x, mask=None):
        keep = self._step_mask(np.asarray(x))
        if mask is not None:
            keep = keep & np.asarray(mask, dtype=bool)
        return keep


class InputLayer(Layer):
    """Declares the per-sample input shape of a Sequential model, e.g. ``Input((T, F))`` or
    ``Input((None, F))`` for any length; ``Input((T,), dtype="int64")`` before an Embedding.
    Sequential takes the shape from it (it is not one of ``model.layers``)."""

    def __init__(self, shape, dtype="float32", name=None):
        super().__init__(dtype="float32", name=name)
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or not shape:
            raise ValueError(f"Input: shape must be a non-empty tuple of ints/None, got {shape!r}")
        for s in shape:
            if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0):
                raise ValueError(f"Input: shape entries must be positive ints or None, got {shape!r}")
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.input_dtype = np.dtype(dtype).name
        self.built = True

    def forward(self, x, training=False, mask=None):
        return x

    def backward(self, d_out):
        return d_out

    def get_config(self):
        return {"shape": list(self.shape), "dtype": self.input_dtype, "name": self.name}


def Input(shape, dtype="float32", name=None):
    """Keras-style ``Input(shape)`` (the batch axis excluded) for ``Sequential([Input(...), ...])``."""
    return InputLayer(shape, dtype=dtype, name=name)
