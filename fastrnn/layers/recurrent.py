"""Recurrent layers: SimpleRNN (Elman), LSTM and GRU.

Keras-shaped on the outside (batch-first ``(B, T, I)`` input, ``return_sequences``,
``return_state``, ``go_backwards``, ``initial_state``, masks), PyTorch-shaped on the inside:
``params`` holds ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih``, ``bias_hh``
(G*H,) in PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n), so a ``torch.nn.LSTM``'s
``weight_ih_l0`` etc. copy straight in and give PyTorch's numbers.

Keras's options: initial values are Keras's (``kernel_initializer="glorot_uniform"``,
``recurrent_initializer="orthogonal"``, ``bias_initializer="zeros"``, LSTM ``unit_forget_bias``;
``init="torch"`` for PyTorch's U(-1/sqrt(H), 1/sqrt(H)); see :mod:`fastrnn.initializers`),
``dropout`` (one input mask per sequence, applied before the kernels), ``recurrent_dropout``
(one mask per sequence on ``h_{t-1}`` in the recurrent product, applied inside the compiled
kernels, see :mod:`fastrnn.functional`), ``stateful`` (the final state of each sample
starts the next batch; ``reset_states()``), ``use_bias="single"`` (Keras's one trainable bias
for SimpleRNN/LSTM), ``activation`` / ``recurrent_activation`` / ``reset_after`` for what the
kernels fuse (anything else is a ValueError naming what is supported), ``trainable``,
``input_shape``; ``unroll`` and ``use_cudnn`` are accepted and ignored.

The sequence is transposed to time-major once, here, and handed to one validated engine call
(:mod:`fastrnn.functional`). After ``backward`` the gradient with respect to the initial state
is in ``layer.d_initial_state`` (``dh0``, or ``(dh0, dc0)`` for LSTM).
"""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .. import functional as F
from .. import initializers
from .base import Layer

__all__ = ["SimpleRNN", "LSTM", "GRU", "RecurrentLayer"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _rate(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_activation(layer, name, value, supported):
    """The kernels fuse fixed activations; anything else is an error naming what works."""
    if value not in supported:
        raise ValueError(f"{layer}: {name}={value!r} is not supported; the compiled kernels "
                         f"implement {name} in {supported}")
    return value


def _finite_batch_first(a, what, axes):
    """NonFiniteError naming ``what`` and the first bad index, axis by axis (batch first)."""
    if np.isfinite(a).all():
        return
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    where = ", ".join(f"{n} {i}" for n, i in zip(axes, bad))
    raise F.NonFiniteError(f"{what} must be finite, got {a[bad]} at index {bad} ({where})")


class RecurrentLayer(Layer):
    """Shared machinery of the three cells. Subclasses set ``cell``, ``gates``, ``n_states``."""

    cell = None
    gates = 1
    n_states = 1
    supports_masking = True

    def __init__(self, units, *, input_size=None, return_sequences=False, return_state=False,
                 go_backwards=False, use_bias=True, dtype="float32", seed=None, name=None,
                 backend=None, kernel_initializer=None, recurrent_initializer=None,
                 bias_initializer=None, init=None,
                 dropout=0.0, recurrent_dropout=0.0, stateful=False, trainable=True,
                 input_shape=None, unroll=False, use_cudnn="auto"):
        # unroll / use_cudnn are Keras's performance hints; accepted so Keras scripts run
        # unchanged, and ignored: fastrnn always runs its compiled CPU kernels
        if unroll not in (True, False) or use_cudnn not in ("auto", True, False):
            raise ValueError(f"unroll must be a bool and use_cudnn 'auto' or a bool, got "
                             f"unroll={unroll!r}, use_cudnn={use_cudnn!r}")
        super().__init__(dtype=dtype, seed=seed, name=name, trainable=trainable,
                         input_shape=input_shape)
        self.units = _positive_int(units, "units")
        if input_size is None and self.batch_input_shape is not None:
            input_size = self.batch_input_shape[-1]
        self.input_size = None if input_size is None else _positive_int(input_size, "input_size")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        if use_bias == "single":
            if self.cell == "gru":
                raise ValueError("use_bias='single' is for SimpleRNN and LSTM; a GRU already "
                                 "has Keras's two bias rows (reset_after=True), use use_bias=True")
            self.single_bias = True
        elif isinstance(use_bias, (bool, np.bool_)):
            self.single_bias = False
        else:
            raise ValueError(f"use_bias must be True, False or 'single', got {use_bias!r}")
        self.use_bias = bool(use_bias)
        if backend not in (None, "cython", "numpy"):
            raise ValueError(f"backend must be None, 'cython' or 'numpy', got {backend!r}")
        self.backend = backend
        if init not in (None, "keras", "torch"):
            raise ValueError(f"init must be None, 'keras' or 'torch', got {init!r}")
        self.init = init
        self._init_args = dict(kernel=kernel_initializer, recurrent=recurrent_initializer,
                               bias=bias_initializer)
        self._initializers = {k: self._resolve_init(v, k) for k, v in self._init_args.items()}
        self.dropout = _rate(dropout, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout")
        self._drop_gen = None
        self.stateful = bool(stateful)
        self.states = None
        self._cache = None
        self._drop = None
        self.d_initial_state = None
        if self.input_size is not None:
            self.build((None, None, self.input_size))

    # -- initialisation -------------------------------------------------------------------
    _KERAS_DEFAULTS = {"kernel": "glorot_uniform", "recurrent": "orthogonal", "bias": "zeros"}

    def _resolve_init(self, value, which):
        """An initializer for ``which`` in {kernel, recurrent, bias}. None is the scheme's
        default: Keras's (glorot_uniform / orthogonal / zeros), or PyTorch's U(-1/sqrt(H),
        1/sqrt(H)) with ``init="torch"``; an explicit argument always wins."""
        torch = initializers.TorchUniform(self.units)
        if value is None:
            value = torch if self.init == "torch" else self._KERAS_DEFAULTS[which]
        try:
            return initializers.get(value, torch_default=torch)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{which}_initializer: {exc}") from None

    def _draw(self, which, keras_shape, rng, transpose):
        w = initializers.draw(self._initializers[which], keras_shape, self.dtype, rng,
                              f"{type(self).__name__} {which}_initializer")
        return np.ascontiguousarray(w.T) if transpose else w

    def _init_bias(self, rng):
        """(bias_ih, bias_hh). Keras keeps one bias (GRU: an input row and a recurrent row);
        its initial value goes into bias_ih and bias_hh starts at zero, so the summed bias the
        cell sees is Keras's. GRU draws both rows, as Keras does."""
        GH = self.gates * self.units
        torch = isinstance(self._initializers["bias"], initializers.TorchUniform)
        b_ih = self._draw("bias", (GH,), rng, False)
        if self.cell == "gru" or torch:
            b_hh = self._draw("bias", (GH,), rng, False)
        else:
            b_hh = np.zeros(GH, dtype=self.dtype)
        return b_ih, b_hh

    # -- parameters -----------------------------------------------------------------------
    def build(self, input_shape):
        I = _positive_int(input_shape[-1], "input feature size")
        H, GH = self.units, self.gates * self.units
        rng = self._rng()
        self.input_size = I
        # initializers see Keras's (in, out) shapes; the parameters are their transposes
        self.params["weight_ih"] = self._draw("kernel", (I, GH), rng, True)
        self.params["weight_hh"] = self._draw("recurrent", (H, GH), rng, True)
        if self.use_bias:
            b_ih, b_hh = self._init_bias(rng)
            if self.single_bias:
                self.params["bias_ih"] = b_ih + b_hh
            else:
                self.params["bias_ih"] = b_ih
                self.params["bias_hh"] = b_hh
        self._finish_build()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, input_size=self.input_size,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards,
                   use_bias="single" if self.single_bias else self.use_bias)
        for k, v in self._init_args.items():
            ser = initializers.serialize(v)
            if ser is not None:
                cfg[f"{k}_initializer"] = ser
        if self.init is not None:
            cfg["init"] = self.init
        if self.dropout:
            cfg["dropout"] = self.dropout
        if self.recurrent_dropout:
            cfg["recurrent_dropout"] = self.recurrent_dropout
        if self.stateful:
            cfg["stateful"] = True
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
    def _engine_forward(self, xt, states, mask, training, check_finite=True, rec_mask=None):
        raise NotImplementedError

    def _engine_backward(self, cache, dy, dstates):
        raise NotImplementedError

    def _bias(self):
        p = self.params
        if not self.use_bias:
            return None, None
        if self.single_bias:             # Keras's one bias: the engine adds a zero bias_hh
            return p["bias_ih"], self._zero_bias()
        return p["bias_ih"], p["bias_hh"]

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
        if x.shape[0] == 0:
            raise ValueError(f"{self.name}: x must have a batch of at least one sequence, got "
                             f"shape {x.shape} (batch, time, features)")
        if x.shape[1] == 0:
            raise ValueError(f"{self.name}: x must have at least one time step, got shape "
                             f"{x.shape} (batch, time, features)")
        return x

    def _split_state(self, initial_state, B, what="initial_state"):
        # ``what``: the caller's argument (initial_state of forward, state of step, d_state)
        h, c = {"state": ("h", "c"), "d_state": ("dh", "dc")}.get(what, ("h0", "c0"))
        if initial_state is None:
            return [None] * self.n_states
        if self.n_states == 1:
            if isinstance(initial_state, (list, tuple)):
                if len(initial_state) != 1:
                    raise ValueError(f"{what} must be {h} (batch, {self.units}) for "
                                     f"{type(self).__name__}, got a sequence of "
                                     f"{len(initial_state)} arrays")
                initial_state = initial_state[0]
            return [initial_state]
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
            got = (f"a sequence of {len(initial_state)} arrays"
                   if isinstance(initial_state, (list, tuple)) else type(initial_state).__name__)
            raise ValueError(f"{what} must be ({h}, {c}), each (batch, {self.units}), for LSTM, "
                             f"got {got}")
        return list(initial_state)

    def _check_public(self, x, states, x_name, state_name, axes):
        """The checks whose messages must speak the caller's language: the argument names
        of forward/step, batch-first indices, and this layer's name (inside a model the
        input of a layer is another layer's output). Raises before any engine call."""
        B, H = x.shape[0], self.units
        names = ("h0", "c0") if state_name == "initial_state" else ("h", "c")
        for k, s in enumerate(states):
            if s is None:
                continue
            what = (f"{state_name}[{k}]: {names[k]}" if self.n_states > 1
                    else f"{state_name}: {names[0]}")
            a = s if isinstance(s, np.ndarray) else np.asarray(s)
            if a.dtype.kind != "f" or a.dtype.itemsize < 4:
                raise TypeError(f"{self.name}: {what} must be float32 or float64, got dtype "
                                f"{a.dtype}")
            if a.shape != (B, H):
                raise ValueError(f"{self.name}: {what} must have shape {(B, H)}, got "
                                 f"{a.shape} (expected (batch, units))")
            _finite_batch_first(a, f"{self.name}: {what}", ("batch", "unit"))
        _finite_batch_first(x, f"{self.name}: {x_name}", axes)

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

    # -- dropout --------------------------------------------------------------------------
    def _dropout_gen(self):
        if self._drop_gen is None:      # its own stream: dropout never shifts the init draws
            self._drop_gen = np.random.default_rng(
                None if self.seed is None else np.random.SeedSequence([int(self.seed), 0xD12]))
        return self._drop_gen

    def _mask_for(self, rate, shape):
        """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
        keep = self._dropout_gen().random(shape) >= rate
        return keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - rate))

    def reset_dropout(self):
        """Restart the dropout masks' random stream from ``seed``."""
        self._drop_gen = None

    # -- stateful -------------------------------------------------------------------------
    def reset_states(self, states=None):
        """Forget the carried state of a ``stateful=True`` layer (or set it to ``states``).

        Parameters
        ----------
        states : None, array (B, units), or (h, c) for LSTM
            None: the next batch starts from zeros.
        """
        if states is None:
            self.states = None
            return
        parts = self._split_state(states, None)
        arrs = [np.array(p, dtype=self.dtype, copy=True) for p in parts]
        for a in arrs:
            if a.ndim != 2 or a.shape[1] != self.units or a.shape[0] != arrs[0].shape[0]:
                raise ValueError(f"reset_states: each state must have shape (batch, "
                                 f"{self.units}), got {[x.shape for x in arrs]}")
        self.states = arrs

    reset_state = reset_states          # Keras 3's name

    def _stateful_initial(self, initial_state, B):
        if not self.stateful or initial_state is not None or self.states is None:
            return initial_state
        if self.states[0].shape[0] != B:
            raise ValueError(f"{type(self).__name__}(stateful=True) carries the state of "
                             f"{self.states[0].shape[0]} sequences but got a batch of {B}: "
                             f"every batch must have the same size (choose a batch_size that "
                             f"divides the data, or call reset_states() first)")
        return list(self.states) if self.n_states > 1 else self.states[0]

    # -- public API -----------------------------------------------------------------------
    def forward(self, x: np.ndarray, initial_state=None, training: bool = False,
                mask: Optional[np.ndarray] = None):
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        x : array_like, shape (B, T, I)
            Batch-first input.
        initial_state : ndarray or sequence of ndarray, optional
            ``h0`` (B, H), or ``(h0, c0)`` for LSTM; None for zeros (or the carried state of a
            stateful layer).
        training : bool, default False
            Keep what :meth:`backward` needs; apply dropout.
        mask : ndarray of bool, shape (B, T), optional
            True where a step is real; masked steps carry the state unchanged.

        Returns
        -------
        ndarray or tuple
            ``(B, T, H)`` with ``return_sequences`` else ``(B, H)``; with ``return_state`` a
            tuple ``(output, h)`` or ``(output, h, c)`` (LSTM), states ``(B, H)``.
        """
        x = self._check_x(x)
        B, T, _ = x.shape
        initial_state = self._stateful_initial(initial_state, B)
        states = self._split_state(initial_state, B)
        mt = self._time_major_mask(mask, B, T)
        training = bool(training)
        in_mask = rec_mask = None
        if training and self.dropout > 0:
            in_mask = self._mask_for(self.dropout, (B, self.input_size))
            x = x * in_mask[:, None, :]          # one mask per sequence, as in Keras
        if training and self.recurrent_dropout > 0:
            rec_mask = self._mask_for(self.recurrent_dropout, (B, self.units))
        # sizes first: the finiteness pass below would read a huge (zero-stride) x in full
        F.check_engine_sizes(T, B, self.input_size, self.units, self.gates)
        self._check_public(x, states, "x", "initial_state", ("batch", "time", "feature"))
        xt = x.transpose(1, 0, 2)
        if self.go_backwards:
            xt = xt[::-1]
        y, finals, cache = self._engine_forward(xt, states, mt, training, check_finite=False,
                                                rec_mask=rec_mask)
        self._cache = (cache, B, T) if training else None
        self._drop = in_mask
        if self.stateful:
            self.states = [np.array(f, copy=True) for f in finals]
        if self.return_sequences:
            out = np.ascontiguousarray(y.transpose(1, 0, 2))
        else:
            out = y[-1].copy()
        if self.return_state:
            return (out, *finals)
        return out

    def backward(self, d_output: np.ndarray, d_state=None) -> np.ndarray:
        """Backpropagation through time after ``forward(..., training=True)``.

        Parameters
        ----------
        d_output : ndarray
            Gradient of the loss with respect to the output: ``(B, T, H)`` with
            ``return_sequences``, else ``(B, H)``.
        d_state : ndarray or sequence of ndarray, optional
            Gradient with respect to the returned final state(s), each ``(B, H)``.

        Returns
        -------
        ndarray, shape (B, T, I)
            Gradient with respect to the input; ``grads`` and ``d_initial_state`` are filled.
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a preceding "
                               "forward(..., training=True)")
        cache, B, T = self._cache
        H = self.units
        d_output = np.asarray(d_output)
        if d_output.dtype.kind != "f" or d_output.dtype.itemsize < 4:
            raise TypeError(f"{self.name}: d_output must be float32 or float64, got dtype "
                            f"{d_output.dtype}")
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
            ds = self._split_state(d_state, B, "d_state")
            for k, d in enumerate(ds):
                if d is None:
                    continue
                d = np.asarray(d)
                if d.dtype.kind != "f" or d.dtype.itemsize < 4:
                    raise TypeError(f"{self.name}: d_state[{k}] must be float32 or float64, "
                                    f"got dtype {d.dtype}")
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
        dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        if self._drop is not None:
            dx *= self._drop[:, None, :]
        return dx

    def step(self, x_t: np.ndarray, state=None):
        """Advance one time step: ``x_t (B, I)`` -> ``(h_t, new_state)``.

        ``state`` is ``h`` (or ``(h, c)`` for LSTM), or None for zeros; ``new_state`` has the
        same form, ready for the next call. Running a sequence step by step gives the same
        numbers as one ``forward`` over it.

        Parameters
        ----------
        x_t : ndarray, shape (B, I)
            The input of one time step.
        state : ndarray or tuple of ndarray, optional
            ``h`` (B, H), or ``(h, c)`` for LSTM; None for zeros.

        Returns
        -------
        h_t : ndarray, shape (B, H)
        new_state : ndarray or tuple of ndarray
            The state to pass to the next call.
        """
        x_t = np.asarray(x_t)
        if x_t.ndim != 2:
            raise ValueError(f"x_t must have 2 dimensions (batch, features), got shape "
                             f"{x_t.shape}")
        if not self.built:
            self.build(x_t.shape)
        states = self._split_state(state, x_t.shape[0], "state")
        finals = self._fast_step(x_t, states)
        if finals is None:      # anything unusual: the fully validated path (and its errors)
            if x_t.dtype.kind != "f" or x_t.dtype.itemsize < 4:
                raise TypeError(f"{self.name}: x_t must be float32 or float64, got dtype "
                                f"{x_t.dtype}")
            if x_t.shape[1] != self.input_size:
                raise ValueError(f"{self.name}: x_t must have shape (batch, features) = "
                                 f"({x_t.shape[0]}, {self.input_size}), got {x_t.shape}")
            self._check_public(x_t, states, "x_t", "state", ("batch", "feature"))
            _, finals, _ = self._engine_forward(x_t[None], states, None, False,
                                                check_finite=False)
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
            b_ih, b_hh = self._bias()      # use_bias="single": a zero bias_hh
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
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh | relu.

    Parameters
    ----------
    units : int
        Hidden size H (features of the output and of each state).
    activation : {"tanh", "relu"}, default "tanh"
        The nonlinearity (PyTorch's ``nonlinearity``).
    input_size : int, optional
        Features I of the input; given, the weights are built at once (else on the first call).
    return_sequences : bool, default False
        Return the output of every step ``(B, T, H)`` instead of the last one ``(B, H)``.
    return_state : bool, default False
        Also return the final state: ``(output, h)``.
    go_backwards : bool, default False
        Process the sequence in reverse (Keras semantics: the returned sequence is in reversed
        time order).
    use_bias : bool or "single", default True
        Learn ``bias_ih`` and ``bias_hh`` ("single": one Keras-style bias).
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable, optional
        Keras names or objects (default: glorot_uniform, orthogonal, zeros).
    init : {None, "keras", "torch"}, optional
        "torch": PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter unless an initializer is
        given.
    dropout, recurrent_dropout : float, default 0
        Keras's input and recurrent dropout rates (training only).
    stateful : bool, default False
        Carry the final state of a batch into the next call (``reset_states()`` clears it).
    dtype : {"float32", "float64"}, default "float32"
        Parameter and computation dtype.
    seed : int, optional
        Seed of the initial weights and dropout masks.
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional
        Keras's ``(T, I)`` without the batch axis.
    backend : {None, "cython", "numpy"}, optional
        None: the compiled kernels when built; "numpy": the NumPy reference.
    unroll, use_cudnn : optional
        Keras's performance hints, accepted so Keras scripts run unchanged, and ignored.

    Attributes
    ----------
    params : dict of ndarray
        ``weight_ih (H, I)``, ``weight_hh (H, H)``, ``bias_ih (H,)``,
        ``bias_hh (H,)``: PyTorch's names, shapes and gate order.
    grads : dict of ndarray
        Gradients with the same keys, filled by :meth:`backward`.
    d_initial_state : ndarray (B, H)
        Gradient with respect to the initial state after :meth:`backward`.

    Notes
    -----
    Shapes: input ``x`` ``(B, T, I)`` batch-first; ``mask`` ``(B, T)`` bool, True where a step
    is real (a masked step carries the state unchanged); ``initial_state`` ``h0`` (or None for zeros), each
    ``(B, H)``; output ``(B, T, H)`` with ``return_sequences``, else ``(B, H)``.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> x = np.random.default_rng(0).standard_normal((4, 10, 3)).astype("float32")
    >>> layer = fr.SimpleRNN(8, activation="relu", return_sequences=True, seed=0)
    >>> layer.forward(x).shape
    (4, 10, 8)
    """

    cell = "rnn"
    gates = 1

    def __init__(self, units: int, activation: str = "tanh", **kw) -> None:
        self.activation = _check_activation("SimpleRNN", "activation", activation,
                                            ("tanh", "relu"))
        super().__init__(units, **kw)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg

    def _engine_forward(self, xt, states, mask, training, check_finite=True, rec_mask=None):
        b_ih, b_hh = self._bias()
        y, h, cache = F.rnn_forward(xt, states[0], self.params["weight_ih"],
                                    self.params["weight_hh"], b_ih, b_hh,
                                    activation=self.activation, mask=mask, training=training,
                                    backend=self.backend, check_finite=check_finite,
                                    recurrent_mask=rec_mask)
        return y, [h], cache

    def _engine_backward(self, cache, dy, dstates):
        return F.rnn_backward(cache, dy, dstates[0])

    def _fast_engine_call(self, eng, x, states, w_ih, w_hh, b_ih, b_hh):
        _, h, _ = eng.rnn_forward(x, states[0], w_ih, w_hh, b_ih, b_hh,
                                  activation=self.activation, mask=None, training=False)
        return (h,)


class LSTM(RecurrentLayer):
    """LSTM with PyTorch's gates i, f, g, o: ``c_t = f*c + i*g``, ``h_t = o*tanh(c_t)``.

    ``i, f, g, o = sigmoid, sigmoid, tanh, sigmoid(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Parameters
    ----------
    units : int
        Hidden size H (features of the output and of each state).
    activation : {"tanh"}, default "tanh"
        Accepted for Keras compatibility (the kernels implement tanh).
    recurrent_activation : {"sigmoid"}, default "sigmoid"
        Accepted for Keras compatibility.
    unit_forget_bias : bool, optional
        Forget-gate bias starts at 1 (default: True, False with ``init="torch"``).
    input_size : int, optional
        Features I of the input; given, the weights are built at once (else on the first call).
    return_sequences : bool, default False
        Return the output of every step ``(B, T, H)`` instead of the last one ``(B, H)``.
    return_state : bool, default False
        Also return the final states: ``(output, h, c)``.
    go_backwards : bool, default False
        Process the sequence in reverse (Keras semantics: the returned sequence is in reversed
        time order).
    use_bias : bool or "single", default True
        Learn ``bias_ih`` and ``bias_hh`` ("single": one Keras-style bias).
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable, optional
        Keras names or objects (default: glorot_uniform, orthogonal, zeros).
    init : {None, "keras", "torch"}, optional
        "torch": PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter unless an initializer is
        given.
    dropout, recurrent_dropout : float, default 0
        Keras's input and recurrent dropout rates (training only).
    stateful : bool, default False
        Carry the final state of a batch into the next call (``reset_states()`` clears it).
    dtype : {"float32", "float64"}, default "float32"
        Parameter and computation dtype.
    seed : int, optional
        Seed of the initial weights and dropout masks.
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional
        Keras's ``(T, I)`` without the batch axis.
    backend : {None, "cython", "numpy"}, optional
        None: the compiled kernels when built; "numpy": the NumPy reference.
    unroll, use_cudnn : optional
        Keras's performance hints, accepted so Keras scripts run unchanged, and ignored.

    Attributes
    ----------
    params : dict of ndarray
        ``weight_ih (4H, I)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``,
        ``bias_hh (4H,)``: PyTorch's names, shapes and gate order (i, f, g, o).
    grads : dict of ndarray
        Gradients with the same keys, filled by :meth:`backward`.
    d_initial_state : ndarray pair (dh0, dc0)
        Gradient with respect to the initial state after :meth:`backward`.

    Notes
    -----
    Shapes: input ``x`` ``(B, T, I)`` batch-first; ``mask`` ``(B, T)`` bool, True where a step
    is real (a masked step carries the state unchanged); ``initial_state`` ``(h0, c0)`` (or None for zeros), each
    ``(B, H)``; output ``(B, T, H)`` with ``return_sequences``, else ``(B, H)``.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> x = np.random.default_rng(0).standard_normal((4, 10, 3)).astype("float32")
    >>> lstm = fr.LSTM(16, return_sequences=True, return_state=True, seed=0)
    >>> out, h, c = lstm.forward(x, training=True)
    >>> out.shape, h.shape, c.shape
    ((4, 10, 16), (4, 16), (4, 16))
    >>> dx = lstm.backward(np.ones_like(out))        # fills lstm.grads
    >>> dx.shape, lstm.grads["weight_hh"].shape
    ((4, 10, 3), (64, 16))
    """

    cell = "lstm"
    gates = 4
    n_states = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=None, **kw):
        self.activation = _check_activation("LSTM", "activation", activation, ("tanh",))
        self.recurrent_activation = _check_activation(
            "LSTM", "recurrent_activation", recurrent_activation, ("sigmoid",))
        if unit_forget_bias is not None and not isinstance(unit_forget_bias, (bool, np.bool_)):
            raise TypeError(f"unit_forget_bias must be True, False or None, got "
                            f"{unit_forget_bias!r}")
        # None: Keras's True with the default (Keras) init, PyTorch's False with init="torch"
        self.unit_forget_bias = (kw.get("init") != "torch" if unit_forget_bias is None
                                 else bool(unit_forget_bias))
        super().__init__(units, **kw)

    def _init_bias(self, rng):
        b_ih, b_hh = super()._init_bias(rng)
        if self.unit_forget_bias:      # Keras: forget-gate bias 1 (in the summed bias)
            H = self.units
            b_ih[H:2 * H] = 1
            b_hh[H:2 * H] = 0
        return b_ih, b_hh

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg

    def _engine_forward(self, xt, states, mask, training, check_finite=True, rec_mask=None):
        b_ih, b_hh = self._bias()
        y, h, c, cache = F.lstm_forward(xt, states[0], states[1], self.params["weight_ih"],
                                        self.params["weight_hh"], b_ih, b_hh, mask=mask,
                                        training=training, backend=self.backend,
                                        check_finite=check_finite, recurrent_mask=rec_mask)
        return y, [h, c], cache

    def _engine_backward(self, cache, dy, dstates):
        return F.lstm_backward(cache, dy, dstates[0], dstates[1])

    def _fast_engine_call(self, eng, x, states, w_ih, w_hh, b_ih, b_hh):
        _, h, c, _ = eng.lstm_forward(x, states[0], states[1], w_ih, w_hh, b_ih, b_hh,
                                      mask=None, training=False)
        return (h, c)


class GRU(RecurrentLayer):
    """GRU in PyTorch's form (reset applied after the recurrent product; Keras reset_after).

    ``r, z = sigmoid(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})``,
    ``n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}`` (ONNX ``linear_before_reset=1``).

    Parameters
    ----------
    units : int
        Hidden size H (features of the output and of each state).
    activation : {"tanh"}, default "tanh"
        Accepted for Keras compatibility (the kernels implement tanh).
    recurrent_activation : {"sigmoid"}, default "sigmoid"
        Accepted for Keras compatibility.
    reset_after : True
        Keras's flag; only True (PyTorch's form) is supported.
    input_size : int, optional
        Features I of the input; given, the weights are built at once (else on the first call).
    return_sequences : bool, default False
        Return the output of every step ``(B, T, H)`` instead of the last one ``(B, H)``.
    return_state : bool, default False
        Also return the final state: ``(output, h)``.
    go_backwards : bool, default False
        Process the sequence in reverse (Keras semantics: the returned sequence is in reversed
        time order).
    use_bias : bool or "single", default True
        Learn ``bias_ih`` and ``bias_hh``.
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable, optional
        Keras names or objects (default: glorot_uniform, orthogonal, zeros).
    init : {None, "keras", "torch"}, optional
        "torch": PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter unless an initializer is
        given.
    dropout, recurrent_dropout : float, default 0
        Keras's input and recurrent dropout rates (training only).
    stateful : bool, default False
        Carry the final state of a batch into the next call (``reset_states()`` clears it).
    dtype : {"float32", "float64"}, default "float32"
        Parameter and computation dtype.
    seed : int, optional
        Seed of the initial weights and dropout masks.
    name : str, optional
    trainable : bool, default True
    input_shape : tuple, optional
        Keras's ``(T, I)`` without the batch axis.
    backend : {None, "cython", "numpy"}, optional
        None: the compiled kernels when built; "numpy": the NumPy reference.
    unroll, use_cudnn : optional
        Keras's performance hints, accepted so Keras scripts run unchanged, and ignored.

    Attributes
    ----------
    params : dict of ndarray
        ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``,
        ``bias_hh (3H,)``: PyTorch's names, shapes and gate order (r, z, n).
    grads : dict of ndarray
        Gradients with the same keys, filled by :meth:`backward`.
    d_initial_state : ndarray (B, H)
        Gradient with respect to the initial state after :meth:`backward`.

    Notes
    -----
    Shapes: input ``x`` ``(B, T, I)`` batch-first; ``mask`` ``(B, T)`` bool, True where a step
    is real (a masked step carries the state unchanged); ``initial_state`` ``h0`` (or None for zeros), each
    ``(B, H)``; output ``(B, T, H)`` with ``return_sequences``, else ``(B, H)``.

    Examples
    --------
    >>> import numpy as np, fastrnn as fr
    >>> x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    >>> gru = fr.GRU(8, seed=0)
    >>> h = None
    >>> for t in range(5):                           # streaming, one step at a time
    ...     y, h = gru.step(x[:, t], h)
    >>> np.allclose(y, gru.forward(x), atol=1e-6)    # the same as one call over the sequence
    True
    """

    cell = "gru"
    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, **kw):
        self.activation = _check_activation("GRU", "activation", activation, ("tanh",))
        self.recurrent_activation = _check_activation(
            "GRU", "recurrent_activation", recurrent_activation, ("sigmoid",))
        if reset_after is not True:
            raise ValueError(f"GRU: reset_after={reset_after!r} is not supported; fastrnn's GRU "
                             "applies the reset gate after the recurrent product (Keras's "
                             "reset_after=True, PyTorch's form). reset_after=False computes a "
                             "different function")
        self.reset_after = True
        super().__init__(units, **kw)

    def _engine_forward(self, xt, states, mask, training, check_finite=True, rec_mask=None):
        b_ih, b_hh = self._bias()
        y, h, cache = F.gru_forward(xt, states[0], self.params["weight_ih"],
                                    self.params["weight_hh"], b_ih, b_hh, mask=mask,
                                    training=training, backend=self.backend,
                                    check_finite=check_finite, recurrent_mask=rec_mask)
        return y, [h], cache

    def _engine_backward(self, cache, dy, dstates):
        return F.gru_backward(cache, dy, dstates[0])

    def _fast_engine_call(self, eng, x, states, w_ih, w_hh, b_ih, b_hh):
        _, h, _ = eng.gru_forward(x, states[0], w_ih, w_hh, b_ih, b_hh, mask=None,
                                  training=False)
        return (h,)
