"""Conv1D over the time axis of ``(batch, time, channels)`` inputs (Keras's channels_last).

Parameters are torch.nn.Conv1d's: ``weight (filters, in_channels, kernel_size)``, ``bias
(filters,)``; the initializers see Keras's kernel shape ``(kernel_size, in_channels, filters)``
(glorot_uniform by default, so the fans include the kernel size as in Keras). The computation is
one GEMM over all windows (im2col), forward and backward.
"""

import numpy as np

from .. import initializers
from .activation import ACTIVATION_FUNCTIONS
from .base import Layer
from ..linalg import matmul
from .core import _float_input, _positive_int

__all__ = ["Conv1D"]

PADDINGS = ("valid", "same", "causal")


class Conv1D(Layer):
    """1-D convolution: ``(B, T, C_in) -> (B, T', filters)``.

    Parameters
    ----------
    filters : int
    kernel_size : int
    strides : int, default 1
    padding : {"valid", "same", "causal"}
        "valid": no padding, ``T' = (T - d*(k-1) - 1) // strides + 1``; "same": zeros on both
        sides, ``T' = ceil(T / strides)``; "causal": zeros on the left only (output t sees
        inputs <= t), ``T' = ceil(T / strides)``.
    dilation_rate : int, default 1
    activation : str or None
        Any name of :data:`fastrnn.layers.activation.ACTIVATION_FUNCTIONS`.
    use_bias : bool
    kernel_initializer, bias_initializer : name, Initializer or callable
        Keras's glorot_uniform / zeros by default; ``init="torch"`` gives torch.nn.Conv1d's
        U(-1/sqrt(C_in*k), 1/sqrt(C_in*k)) for both.

    Masks are dropped, as Keras's Conv1D does.

    Example
    -------
    >>> conv = Conv1D(8, 3, padding="same", activation="relu", input_size=4)
    >>> conv(np.zeros((2, 10, 4), dtype=np.float32)).shape
    (2, 10, 8)
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 activation=None, use_bias=True, kernel_initializer=None, bias_initializer=None,
                 *, input_size=None, init=None, dtype="float32", seed=None, name=None,
                 trainable=True, input_shape=None):
        super().__init__(dtype=dtype, seed=seed, name=name, trainable=trainable,
                         input_shape=input_shape)
        self.filters = _positive_int(filters, "filters")
        if isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 1:
            kernel_size = kernel_size[0]
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        if isinstance(strides, (tuple, list)) and len(strides) == 1:
            strides = strides[0]
        self.strides = _positive_int(strides, "strides")
        if padding not in PADDINGS:
            raise ValueError(f"Conv1D: padding must be one of {PADDINGS}, got {padding!r}")
        self.padding = padding
        self.dilation_rate = _positive_int(dilation_rate, "dilation_rate")
        if activation is None:
            activation = "linear"
        if not isinstance(activation, str) or activation not in ACTIVATION_FUNCTIONS:
            raise ValueError(f"Conv1D: activation must be None or one of "
                             f"{sorted(ACTIVATION_FUNCTIONS)}, got {activation!r}")
        self.activation = activation
        self.use_bias = bool(use_bias)
        if init not in (None, "keras", "torch"):
            raise ValueError(f"init must be None, 'keras' or 'torch', got {init!r}")
        self.init = init
        self._init_args = {"kernel": kernel_initializer, "bias": bias_initializer}
        if input_size is None and self.batch_input_shape is not None:
            input_size = self.batch_input_shape[-1]
        self.input_size = None if input_size is None else _positive_int(input_size, "input_size")
        self._cache = None
        if self.input_size is not None:
            self.build((None, None, self.input_size))

    # -- parameters -------------------------------------------------------------------------
    def build(self, input_shape):
        C = _positive_int(input_shape[-1], "input channels")
        k, F = self.kernel_size, self.filters
        self.input_size = C
        torch = initializers.TorchUniform(C * k)
        defaults = {"kernel": "glorot_uniform", "bias": "zeros"}
        rng = self._rng()
        inits = {}
        for key, v in self._init_args.items():
            if v is None:
                v = torch if self.init == "torch" else defaults[key]
            inits[key] = initializers.get(v, torch_default=torch)
        kern = initializers.draw(inits["kernel"], (k, C, F), self.dtype, rng,
                                 "Conv1D kernel_initializer")
        self.params["weight"] = np.ascontiguousarray(kern.transpose(2, 1, 0))   # (F, C, k)
        if self.use_bias:
            self.params["bias"] = initializers.draw(inits["bias"], (F,), self.dtype, rng,
                                                    "Conv1D bias_initializer")
        self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                   padding=self.padding, dilation_rate=self.dilation_rate,
                   activation=self.activation, use_bias=self.use_bias,
                   input_size=self.input_size)
        for key, v in self._init_args.items():
            ser = initializers.serialize(v)
            if ser is not None:
                cfg[f"{key}_initializer"] = ser
        if self.init is not None:
            cfg["init"] = self.init
        return cfg

    # -- geometry ---------------------------------------------------------------------------
    def _geometry(self, T):
        """(output length, left pad, right pad)."""
        span = self.dilation_rate * (self.kernel_size - 1) + 1
        if self.padding == "valid":
            return (T - span) // self.strides + 1, 0, 0
        out = -(-T // self.strides)
        total = max((out - 1) * self.strides + span - T, 0)
        if self.padding == "causal":
            return out, span - 1, max(total - (span - 1), 0)
        return out, total // 2, total - total // 2

    def compute_output_shape(self, input_shape):
        T = input_shape[1]
        out = None if T is None else self._geometry(T)[0]
        return (input_shape[0], out, self.filters)

    # -- running ----------------------------------------------------------------------------
    def forward(self, x, training=False):
        x = _float_input(x, "Conv1D", self.dtype)
        if x.ndim != 3:
            raise ValueError(f"Conv1D: x must have 3 dimensions (batch, time, channels), got "
                             f"shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        B, T, C = x.shape
        if C != self.input_size:
            raise ValueError(f"Conv1D: x.shape[2] (channels) must be {self.input_size}, got {C}")
        out_len, left, right = self._geometry(T)
        if out_len < 1:
            raise ValueError(f"Conv1D: {T} time steps are too few for kernel_size="
                             f"{self.kernel_size}, dilation_rate={self.dilation_rate} with "
                             f"padding='valid'")
        xp = np.pad(x, ((0, 0), (left, right), (0, 0))) if (left or right) else x
        # window taps: (out_len, k) indices into the padded time axis
        pos = (np.arange(out_len)[:, None] * self.strides
               + np.arange(self.kernel_size)[None, :] * self.dilation_rate)
        cols = xp[:, pos, :].reshape(B * out_len, self.kernel_size * C)   # im2col
        w2 = self.params["weight"].transpose(2, 1, 0).reshape(self.kernel_size * C, self.filters)
        z = matmul(cols, w2)         # on the engine's threads (fastrnn.linalg)
        if self.use_bias:
            z += self.params["bias"]
        with np.errstate(over="ignore"):
            a = ACTIVATION_FUNCTIONS[self.activation][0](z).astype(z.dtype, copy=False)
        self._cache = (cols, z, a, pos, xp.shape, left, x.shape) if training else None
        return a.reshape(B, out_len, self.filters)

    def backward(self, d_out):
        if self._cache is None:
            raise RuntimeError("Conv1D.backward needs a preceding forward(..., training=True)")
        cols, z, a, pos, padded_shape, left, shape = self._cache
        B, T, C = shape
        out_len = pos.shape[0]
        d = np.asarray(d_out)
        if d.shape != (B, out_len, self.filters):
            raise ValueError(f"Conv1D: d_out must have shape {(B, out_len, self.filters)}, got "
                             f"{d.shape}")
        dz = ACTIVATION_FUNCTIONS[self.activation][1](
            z, a, d.reshape(-1, self.filters).astype(self.dtype, copy=False))
        k = self.kernel_size
        dw2 = matmul(cols, dz, transpose_a=True)               # (k*C, F)
        self.grads["weight"] = np.ascontiguousarray(dw2.reshape(k, C, self.filters)
                                                    .transpose(2, 1, 0))
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=0)
        w2 = self.params["weight"].transpose(2, 1, 0).reshape(k * C, self.filters)
        dcols = matmul(dz, w2, transpose_b=True).reshape(B, out_len, k, C)
        dxp = np.zeros(padded_shape, dtype=self.dtype)
        for j in range(k):      # col2im: one add per kernel tap (indices unique within a tap)
            dxp[:, pos[:, j], :] += dcols[:, :, j, :]
        return dxp[:, left:left + T, :]
