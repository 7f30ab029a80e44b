"""Recurrent layers: SimpleRNN (Elman), LSTM and GRU.

Keras-shaped on the outside (batch-first ``(B, T, I)`` input, ``return_sequences``,
``return_state``, ``go_backwards``, ``initial_state``, masks), PyTorch-shaped on the inside:
``params`` holds ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih``, ``bias_hh``
(G*H,) in PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n), so a ``torch.nn.LSTM``'s
``weight_ih_l0`` etc. copy straight in and give PyTorch's numbers.

The sequence is transposed to time-major once, here, and handed to one validated engine call
(:mod:`fastrnn.functional`). After ``backward`` the gradient with respect to the initial state
is in ``layer.d_initial_state`` (``dh0``, or ``(dh0, dc0)`` for LSTM).
"""

import numpy as np

from .. import functional as F
from .base import Layer

__all__ = ["SimpleRNN", "LSTM", "GRU", "RecurrentLayer"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class RecurrentLayer(Layer):
    """Shared machinery of the three cells. Subclasses set ``cell``, ``gates``, ``n_states``."""

    cell = None
    gates = 1
    n_states = 1
    supports_masking = True

    def __init__(self, units, *, input_size=None, return_sequences=False, return_state=False,
                 go_backwards=False, use_bias=True, dtype="float32", seed=None, name=None,
                 backend=None):
        super().__init__(dtype=dtype, seed=seed, name=name)
        self.units = _positive_int(units, "units")
        self.input_size = None if input_size is None else _positive_int(input_size, "input_size")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.use_bias = bool(use_bias)
        if backend not in (None, "cython", "numpy"):
            raise ValueError(f"backend must be None, 'cython' or 'numpy', got {backend!r}")
        self.backend = backend
        self._cache = None
        self.d_initial_state = None
        if self.input_size is not None:
            self.build((None, None, self.input_size))

    # -- parameters -----------------------------------------------------------------------
    def build(self, input_shape):
        I = _positive_int(input_shape[-1], "input feature size")
        H, GH = self.units, self.gates * self.units
        k = 1.0 / np.sqrt(H)          # PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter
        rng = self._rng()
        uni = lambda shape: rng.uniform(-k, k, shape).astype(self.dtype)
        self.input_size = I
        self.params["weight_ih"] = uni((GH, I))
        self.params["weight_hh"] = uni((GH, H))
        if self.use_bias:
            self.params["bias_ih"] = uni((GH,))
            self.params["bias_hh"] = uni((GH,))
        self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, input_size=self.input_size,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, use_bias=self.use_bias)
        return cfg

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        out = (B, T, self.units) if self.return_sequences else (B, self.units)
        if self.return_state:
            return [out] + [(B, self.units)] * self.n_states
        return out

    def compute_mask(self, x, mask=None):
        if mask is None or not self.return_sequences:
            return None
        return mask[:, ::-1] if self.go_backwards else mask

    # -- engine glue (per cell) -----------------------------------------------------------
    def _engine_forward(self, xt, states, mask, training, check_finite=True):
        raise NotImplementedError

    def _engine_backward(self, cache, dy, dstates):
        raise NotImplementedError

    def _bias(self):
        p = self.params
        return (p["bias_ih"], p["bias_hh"]) if self.use_bias else (None, None)

    # -- input checks ---------------------------------------------------------------------
    def _check_x(self, x):
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception:
                raise TypeError(f"x must be an array, got {type(x).__name__}") from None
        if x.dtype.kind != "f" or x.dtype.itemsize < 4:
            raise TypeError(f"x must be float32 or float64, got dtype {x.dtype}")
        if x.ndim != 3:
            raise ValueError(f"x must have 3 dimensions (batch, time, features), got "
                             f"{x.ndim} dimensions with shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        if x.shape[2] != self.input_size:
            raise ValueError(f"x.shape[2] (features) must be {self.input_size} for this layer, "
                             f"got {x.shape[2]}")
        return x

    def _split_state(self, initial_state, B):
        if initial_state is None:
            return [None] * self.n_states
        if self.n_states == 1:
            if isinstance(initial_state, (list, tuple)):
                if len(initial_state) != 1:
                    raise ValueError(f"initial_state must be h0 (B, {self.units}) for "
                                     f"{type(self).__name__}, got a sequence of "
                                     f"{len(initial_state)} arrays")
                initial_state = initial_state[0]
            return [initial_state]
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
            raise ValueError(f"initial_state must be (h0, c0), each (B, {self.units}), for LSTM, "
                             f"got {type(initial_state).__name__}")
        return list(initial_state)

    def _time_major_mask(self, mask, B, T):
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != (B, T):
            raise ValueError(f"mask must have shape (batch, time) = {(B, T)}, got {m.shape}")
        if m.dtype != np.bool_:
            if m.dtype.kind not in "iu" or not np.isin(m, (0, 1)).all():
                raise TypeError(f"mask must be a bool array (True = real step), got dtype "
                                f"{m.dtype}")
            m = m.astype(bool)
        mt = m.T
        return mt[::-1] if self.go_backwards else mt

    # -- public API -----------------------------------------------------------------------
    def forward(self, x, initial_state=None, training=False, mask=None):
        x = self._check_x(x)
        B, T, _ = x.shape
        states = self._split_state(initial_state, B)
        mt = self._time_major_mask(mask, B, T)
        xt = x.transpose(1, 0, 2)
        if self.go_backwards:
            xt = xt[::-1]
        y, finals, cache = self._engine_forward(xt, states, mt, bool(training))
        self._cache = (cache, B, T) if training else None
        if self.return_sequences:
            out = np.ascontiguousarray(y.transpose(1, 0, 2))
        else:
            out = y[-1].copy()
        if self.return_state:
            return (out, *finals)
        return out

    def backward(self, d_output, d_state=None):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a preceding "
                               "forward(..., training=True)")
        cache, B, T = self._cache
        H = self.units
        d_output = np.asarray(d_output)
        dstates = [None] * self.n_states
        if self.return_sequences:
            if d_output.shape != (B, T, H):
                raise ValueError(f"d_output must have shape {(B, T, H)}, got {d_output.shape}")
            dy = d_output.transpose(1, 0, 2)
        else:
            if d_output.shape != (B, H):
                raise ValueError(f"d_output must have shape {(B, H)}, got {d_output.shape}")
            dy = None
            dstates[0] = d_output     # the last output is the final hidden state
        if d_state is not None:
            ds = self._split_state(d_state, B)
            for k, d in enumerate(ds):
                if d is None:
                    continue
                d = np.asarray(d)
                if d.shape != (B, H):
                    raise ValueError(f"d_state[{k}] must have shape {(B, H)}, got {d.shape}")
                dstates[k] = d if dstates[k] is None else dstates[k] + d
        g = self._engine_backward(cache, dy, dstates)
        dx = g["x"]
        if self.go_backwards:
            dx = dx[::-1]
        for name in self.params:
            self.grads[name] = g[name]
        if self.n_states == 1:
            self.d_initial_state = g["h0"]
        else:
            self.d_initial_state = (g["h0"], g["c0"])
        return np.ascontiguousarray(dx.transpose(1, 0, 2))

    def step(self, x_t, state=None):
        """Advance one time step: ``x_t (B, I)`` -> ``(h_t, new_state)``.

        ``state`` is ``h`` (or ``(h, c)`` for LSTM), or None for zeros; ``new_state`` has the
        same form, ready for the next call. Running a sequence step by step gives the same
        numbers as one ``forward`` over it.
        """
        x_t = np.asarray(x_t)
        if x_t.ndim != 2:
            raise ValueError(f"x_t must have 2 dimensions (batch, features), got shape "
                             f"{x_t.shape}")
        if not self.built:
            self.build(x_t.shape)
        states = self._split_state(state, x_t.shape[0])
        finals = self._fast_step(x_t, states)
        if finals is None:      # anything unusual: the fully validated path (and its errors)
            _, finals, _ = self._engine_forward(x_t[None], states, None, False)
        h = finals[0]
        return h, (tuple(finals) if self.n_states > 1 else h)

    def _fast_step(self, x_t, states):
        """One engine call without the general validation, for the common streaming case.

        Taken only when every argument is already what the engine needs: C-contiguous arrays
        of the layer's dtype with the right shapes and finite values (the parameters keep
        their shapes and dtype by construction, see ParamDict). Otherwise returns None and
        the caller takes the validated path, which raises the proper error. This halves the
        per-step cost of streaming, where validation cost as much as the kernel.
        """
        dt, B, H = self.dtype, x_t.shape[0], self.units
        if (x_t.dtype != dt or not x_t.flags.c_contiguous or B == 0
                or x_t.shape[1] != self.input_size or not np.isfinite(x_t).all()):
            return None
        full = []
        for s in states:
            if s is None:
                s = np.zeros((B, H), dtype=dt)
            elif not (isinstance(s, np.ndarray) and s.dtype == dt and s.shape == (B, H)
                      and s.flags.c_contiguous and np.isfinite(s).all()):
                return None
            full.append(s)
        p = self.params
        if self.use_bias:
            b_ih, b_hh = p["bias_ih"], p["bias_hh"]
        else:
            b_ih = b_hh = self._zero_bias()
        eng = F._backend_module(self.backend)
        make = getattr(eng, "make_stepper", None)
        if make is not None:
            # compiled stepper: weights bound once, no per-call engine validation
            act = getattr(self, "activation", "tanh")
            st = self.__dict__.get("_stepper")
            if st is None or not st.matches(p["weight_ih"], p["weight_hh"], b_ih, b_hh, act):
                st = self._stepper = make(self.cell, p["weight_ih"], p["weight_hh"], b_ih,
                                          b_hh, act)
            return list(st.step(x_t, full))
        out = self._fast_engine_call(eng, x_t[None], full, p["weight_ih"], p["weight_hh"],
                                     b_ih, b_hh)
        return list(out)

    def _zero_bias(self):
        zb = getattr(self, "_zeros_b", None)
        if zb is None or zb.dtype != self.dtype:
            zb = self._zeros_b = np.zeros(self.gates * self.units, dtype=self.dtype)
        return zb

    def reset_grads(self):
        for k, v in self.grads.items():
            v[...] = 0


class SimpleRNN(RecurrentLayer):
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh | relu."""

    cell = "rnn"
    gates = 1

    def __init__(self, units, *, activation="tanh", **kw):
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self.activation = activation
        super().__init__(units, **kw)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg

    def _engine_forward(self, xt, states, mask, training, check_finite=True):
        b_ih, b_hh = self._bias()
        y, h, cache = F.rnn_forward(xt, states[0], self.params["weight_ih"],
                                    self.params["weight_hh"], b_ih, b_hh,
                                    activation=self.activation, mask=mask, training=training,
                                    backend=self.backend, check_finite=check_finite)
        return y, [h], cache

    def _engine_backward(self, cache, dy, dstates):
        return F.rnn_backward(cache, dy, dstates[0])

    def _fast_engine_call(self, eng, x, states, w_ih, w_hh, b_ih, b_hh):
        _, h, _ = eng.rnn_forward(x, states[0], w_ih, w_hh, b_ih, b_hh,
                                  activation=self.activation, mask=None, training=False)
        return (h,)


class LSTM(RecurrentLayer):
    """LSTM with PyTorch's gates i, f, g, o: ``c_t = f*c + i*g``, ``h_t = o*tanh(c_t)``."""

    cell = "lstm"
    gates = 4
    n_states = 2

    def _engine_forward(self, xt, states, mask, training, check_finite=True):
        b_ih, b_hh = self._bias()
        y, h, c, cache = F.lstm_forward(xt, states[0], states[1], self.params["weight_ih"],
                                        self.params["weight_hh"], b_ih, b_hh, mask=mask,
                                        training=training, backend=self.backend,
                                        check_finite=check_finite)
        return y, [h, c], cache

    def _engine_backward(self, cache, dy, dstates):
        return F.lstm_backward(cache, dy, dstates[0], dstates[1])

    def _fast_engine_call(self, eng, x, states, w_ih, w_hh, b_ih, b_hh):
        _, h, c, _ = eng.lstm_forward(x, states[0], states[1], w_ih, w_hh, b_ih, b_hh,
                                      mask=None, training=False)
        return (h, c)


class GRU(RecurrentLayer):
    """GRU in PyTorch's form (reset applied after the recurrent product; Keras reset_after)."""

    cell = "gru"
    gates = 3

    def _engine_forward(self, xt, states, mask, training, check_finite=True):
        b_ih, b_hh = self._bias()
        y, h, cache = F.gru_forward(xt, states[0], self.params["weight_ih"],
                                    self.params["weight_hh"], b_ih, b_hh, mask=mask,
                                    training=training, backend=self.backend,
                                    check_finite=check_finite)
        return y, [h], cache

    def _engine_backward(self, cache, dy, dstates):
        return F.gru_backward(cache, dy, dstates[0])

    def _fast_engine_call(self, eng, x, states, w_ih, w_hh, b_ih, b_hh):
        _, h, _ = eng.gru_forward(x, states[0], w_ih, w_hh, b_ih, b_hh, mask=None,
                                  training=False)
        return (h,)
