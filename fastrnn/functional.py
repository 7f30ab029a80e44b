"""Validated entry points to the recurrent engines.

Python validates, Cython trusts: every function here checks each argument (type, dtype, ndim,
shape, finiteness of the data) and raises ``TypeError``/``ValueError`` naming the argument with
the expected and the actual value, converts the arrays to C-contiguous arrays of one dtype, and
only then makes a single call into the engine. ``backend="cython"`` runs the compiled kernels of
``fastrnn._engine``; ``backend="numpy"`` runs :mod:`fastrnn.reference`; the default (None) is
the compiled kernels, falling back to the reference with a warning only on a broken install.

All arrays are time-major: ``x`` is ``(T, B, I)``; ``h0``/``c0`` are ``(B, H)``; weights use
PyTorch's layout and gate order (see :mod:`fastrnn.reference`). ``h0``/``c0`` may be ``None``
(zeros); ``bias_ih``/``bias_hh`` may be ``None`` (no bias: no bias gradients are returned).
``mask`` is ``None`` or ``(T, B)`` with True for real steps.

``recurrent_mask`` (recurrent dropout) is ``None`` or ``(B, H)``, one mask per sequence already
scaled by ``1 / (1 - rate)``, multiplying ``h_{t-1}`` where it enters the recurrent product
(Keras / Gal semantics, see :mod:`fastrnn.reference`). Both backends take it: the compiled
kernels feed the masked state to their fused recurrent step and route the product's gradient
back through the same mask (an O(B*H) pass per step next to the O(B*G*H*H) product), so
training with ``recurrent_dropout > 0`` costs a few percent over training without it.
Inference never uses a recurrent mask.

The dtype of ``weight_ih`` (float32 or float64) decides the computation dtype; floating inputs
of the other precision are converted to it, anything else (int, bool, complex, object, float16)
is a ``TypeError``. Non-finite values in ``x`` or the initial states are a ``ValueError`` unless
``check_finite=False`` (then NaN propagates through the outputs, as in PyTorch).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from . import reference as _reference

__all__ = [
    "rnn_forward", "rnn_backward",
    "lstm_forward", "lstm_backward",
    "gru_forward", "gru_backward",
    "ForwardCache", "default_backend", "NonFiniteError",
]

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_engine = None


def _backend_module(backend):
    global _engine
    if backend is None:
        backend = default_backend()
    if backend == "numpy":
        return _reference
    if backend == "cython":
        if _engine is None:
            try:
                from ._engine import kernels as eng
            except ImportError as exc:       # pragma: no cover - only on a broken install
                from ._install_check import build_hint
                raise ImportError(build_hint() + ", or pass backend='numpy' to run the NumPy "
                                  "reference: " + str(exc)) from exc
            _engine = eng
        return _engine
    raise ValueError(f"backend must be 'cython' or 'numpy', got {backend!r}")


_default = None


def default_backend():
    """'cython' when the compiled kernels import, else 'numpy' (with a one-time warning)."""
    global _default
    if _default is None:
        try:
            _backend_module("cython")
            _default = "cython"
        except ImportError as exc:
            import warnings
            warnings.warn(f"{exc}; falling back to the slow NumPy reference", RuntimeWarning,
                          stacklevel=3)
            _default = "numpy"
    return _default


class ForwardCache:
    """What a ``training=True`` forward keeps for its backward; opaque to users.

    Its attributes are read-only, and the backward never trusts them: before the compiled
    backward runs, the sizes are re-derived from the arrays the cache holds and every array
    is checked against them (a cache tampered with raises ``ValueError``, never crashes).
    """

    __slots__ = ("_cell", "_backend", "_inner", "_has_bias", "_dtype")

    def __init__(self, cell, backend, inner, has_bias, dtype):
        object.__setattr__(self, "_cell", cell)
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_has_bias", has_bias)
        object.__setattr__(self, "_dtype", dtype)

    def __setattr__(self, name, value):
        raise AttributeError("ForwardCache is read-only")

    cell = property(lambda self: self._cell)
    backend = property(lambda self: self._backend)
    inner = property(lambda self: self._inner)
    has_bias = property(lambda self: self._has_bias)
    dtype = property(lambda self: self._dtype)

    @property
    def shape(self):
        """(T, B, H) of the forward, derived from the cached arrays."""
        return _cache_sizes(self)


# Sizes the compiled engine passes as 32-bit ints (row counts of its GEMMs, leading dimensions
# and BLAS arguments with an LP64 SciPy): anything at or above this is refused up front.
MAX_ENGINE_DIM = 2 ** 31 - 1


def check_engine_sizes(T, B, I, H, gates):
    """Raise ``ValueError`` when a problem is too large for the engine's 32-bit sizes.

    The kernels hand ``T*B`` (rows of the hoisted input projection, and the inner dimension
    of the weight-gradient products), ``gates*H``, ``I`` and ``H`` to BLAS and to their own
    loops as 32-bit ints. Python ints are exact, so the check itself cannot overflow; it runs
    before any array is converted or allocated.

    Parameters
    ----------
    T, B, I, H : int
        Time steps, batch size, input features and hidden units.
    gates : int
        1 (Elman), 3 (GRU) or 4 (LSTM).
    """
    checks = (("time steps x batch (T*B)", int(T) * int(B)), ("gates x hidden units (G*H)",
              int(gates) * int(H)), ("input features (I)", int(I)))
    for what, n in checks:
        if n > MAX_ENGINE_DIM:
            raise ValueError(f"{what} = {n} is too large: the engine supports at most "
                             f"{MAX_ENGINE_DIM} (2**31 - 1); split the batch or the sequence "
                             "into smaller calls")


# ------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------

def _describe(a):
    return f"dtype {a.dtype}" if isinstance(a, np.ndarray) else f"type {type(a).__name__}"


def _as_float_array(value, name, dtype, copy=True):
    """Return ``value`` as a C-contiguous array of ``dtype``; reject non-floating data.
    With ``copy=False`` the (checked) array is returned as given, not converted."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of floats, got {type(value).__name__}"
                            f" ({exc})") from None
    kind = arr.dtype.kind
    if kind != "f" or arr.dtype.itemsize < 4:
        raise TypeError(f"{name} must be float32 or float64, got {_describe(arr)}")
    if not copy:
        return arr
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_shape(arr, name, expected):
    if arr.shape != tuple(expected):
        if arr.ndim != len(expected):
            raise ValueError(f"{name} must have {len(expected)} dimensions with shape "
                             f"{tuple(expected)}, got {arr.ndim} dimensions {arr.shape}")
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {arr.shape}")


class NonFiniteError(ValueError):
    """An input (or, inside a model, an activation reaching a layer) holds NaN or inf.

    Inside ``Model.fit`` such an activation means a layer overflowed: the step is skipped
    like a non-finite loss (see ``fastrnn.models.Model``)."""


def _check_finite(arr, name):
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise NonFiniteError(f"{name} must be finite, got {arr[bad]} at index {bad} "
                             "(pass check_finite=False to let NaN/inf propagate)")


def _weights(cell, weight_ih, weight_hh, bias_ih, bias_hh):
    if not isinstance(weight_ih, np.ndarray):
        weight_ih = np.asarray(weight_ih)
    dtype = weight_ih.dtype
    if dtype not in _FLOATS:
        raise TypeError(f"weight_ih must be float32 or float64, got {_describe(weight_ih)}")
    if weight_ih.ndim != 2:
        raise ValueError(f"weight_ih must have 2 dimensions (G*H, I), got shape {weight_ih.shape}")
    G = _GATES[cell]
    GH, I = weight_ih.shape
    if GH % G or GH == 0 or I == 0:
        raise ValueError(f"weight_ih must have shape ({G}*H, I) with H, I >= 1 for {cell}, "
                         f"got {weight_ih.shape}")
    H = GH // G
    weight_ih = np.ascontiguousarray(weight_ih)
    weight_hh = _as_float_array(weight_hh, "weight_hh", dtype)
    _check_shape(weight_hh, "weight_hh", (GH, H))
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError("bias_ih and bias_hh must both be arrays or both be None, got "
                         f"{type(bias_ih).__name__} and {type(bias_hh).__name__}")
    has_bias = bias_ih is not None
    if has_bias:
        bias_ih = _as_float_array(bias_ih, "bias_ih", dtype)
        bias_hh = _as_float_array(bias_hh, "bias_hh", dtype)
        _check_shape(bias_ih, "bias_ih", (GH,))
        _check_shape(bias_hh, "bias_hh", (GH,))
    else:
        bias_ih = np.zeros(GH, dtype=dtype)
        bias_hh = bias_ih
    return dtype, H, I, weight_ih, weight_hh, bias_ih, bias_hh, has_bias


def _inputs(x, dtype, I, check_finite, gates, H):
    # shape and size checks first, on the caller's array: a huge zero-stride view is refused
    # before np.ascontiguousarray would try to materialise it
    x = _as_float_array(x, "x", dtype, copy=False)
    if x.ndim != 3:
        raise ValueError(f"x must have 3 dimensions (T, B, I) (time-major), got {x.ndim} "
                         f"dimensions with shape {x.shape}")
    T, B, xi = x.shape
    if xi != I:
        raise ValueError(f"x.shape[2] (input features) must equal weight_ih.shape[1] = {I}, "
                         f"got {xi}")
    if T == 0:
        raise ValueError(f"x must have at least one time step, got shape {x.shape}")
    if B == 0:
        raise ValueError(f"x must have a batch of at least one sequence, got shape {x.shape}")
    check_engine_sizes(T, B, I, H, gates)
    x = np.ascontiguousarray(x, dtype=dtype)
    if check_finite:
        _check_finite(x, "x")
    return x, T, B


def _state(value, name, dtype, B, H, check_finite):
    if value is None:
        return np.zeros((B, H), dtype=dtype)
    arr = _as_float_array(value, name, dtype)
    _check_shape(arr, name, (B, H))
    if check_finite:
        _check_finite(arr, name)
    return arr


def _mask(mask, T, B):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu" or not np.isin(m, (0, 1)).all():
            raise TypeError(f"mask must be a bool array (True = real step), got {_describe(m)}")
        m = m.astype(bool)
    _check_shape(m, "mask", (T, B))
    return np.ascontiguousarray(m)


class _numpy_blas_one_thread:
    """Context manager: NumPy's OpenBLAS runs single-threaded in this thread.

    The reference path of recurrent dropout makes two small products per time step; OpenBLAS
    wakes its whole pool for each of them, which on a busy machine is ruinous: 10 LSTM(128)
    training batches (B=32, T=40) took 96 s wall / 13.5 s CPU with the default threads and
    8 s / 0.6 s with one thread on this 2-core machine under load. Uses OpenBLAS's
    thread-local setting (>= 0.3.27), so other threads and later calls are not affected; a
    no-op where it is unavailable.
    """

    _setter = None

    @classmethod
    def _find(cls):
        if cls._setter is None:
            cls._setter = False
            try:
                import ctypes
                with open("/proc/self/maps") as fh:
                    paths = sorted({ln.split()[-1] for ln in fh
                                    if "openblas" in ln.lower() and "/" in ln})
                for path in paths:
                    if "numpy" in path:
                        f = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
                        if f is not None:
                            f.restype, f.argtypes = ctypes.c_int, [ctypes.c_int]
                            cls._setter = f
                            break
            except Exception:   # pragma: no cover - no /proc or no OpenBLAS
                cls._setter = False
        return cls._setter

    def __enter__(self):
        f = self._find()
        self.prev = f(1) if f else None
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            self._find()(self.prev)
        return False


def _private(arr, given):
    """``arr`` itself unless it shares memory with the caller's ``given``; then a copy.

    A ``training=True`` cache keeps x and the initial states for the backward; they must be
    the values of the forward call even if the caller mutates its arrays in between.
    ``np.ascontiguousarray`` copies only when the layout or dtype changes, so without this
    the cache aliased the caller's x exactly when it was already contiguous (a layer's
    transposed input: only when B == 1 or T == 1)."""
    if isinstance(given, np.ndarray) and np.may_share_memory(arr, given):
        return arr.copy()
    return arr


def _recurrent_mask(rmask, dtype, B, H):
    """Validate a recurrent-dropout mask: a finite (B, H) float array of the call's dtype."""
    if rmask is None:
        return None
    arr = _as_float_array(rmask, "recurrent_mask", dtype)
    _check_shape(arr, "recurrent_mask", (B, H))
    _check_finite(arr, "recurrent_mask")
    return arr


class _null_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _blas_context(rmask, backend):
    """The reference's per-step NumPy products run single-threaded (see
    ``_numpy_blas_one_thread``); the compiled kernels manage their own threads."""
    if rmask is not None and backend == "numpy":
        return _numpy_blas_one_thread()
    return _null_context()


def _cached_rmask(cache):
    inner = cache.inner
    return inner.get("rmask") if isinstance(inner, dict) else None


def _check_backward(cache, cell):
    if not isinstance(cache, ForwardCache):
        raise TypeError(f"cache must be the cache returned by {cell}_forward(..., training=True),"
                        f" got {type(cache).__name__}")
    if cache.cell != cell:
        raise ValueError(f"cache comes from a {cache.cell} forward, not {cell}")
    return _cache_sizes(cache)


_CACHE_KEYS = {"rnn": {"x", "hs", "w_ih", "w_hh", "mask", "act", "rmask"},
               "lstm": {"x", "hs", "gates", "cs", "c0", "w_ih", "w_hh", "mask", "rmask"},
               "gru": {"x", "hs", "gates", "hn", "w_ih", "w_hh", "mask", "rmask"}}


def _cache_sizes(cache):
    """(T, B, H) re-derived from the arrays a cache holds, after checking each of them.

    The compiled backward indexes these arrays without bounds checks, so nothing about them
    is taken on trust: a cache whose arrays were replaced, reshaped or retyped after the
    forward raises ``ValueError`` here instead of reaching the kernel."""
    inner, cell, dt = cache.inner, cache.cell, cache.dtype
    if cache.backend != "cython":        # the NumPy reference: plain Python, cannot crash
        try:
            x, w_hh = inner["x"], inner["weight_hh"]
            return x.shape[0], x.shape[1], w_hh.shape[1]
        except (TypeError, KeyError, AttributeError, IndexError):
            raise ValueError("cache was modified after the forward call (its arrays are "
                             "missing)") from None

    def bad(what):
        return ValueError(f"cache was modified after the forward call: {what}; pass the cache "
                          f"{cell}_forward(..., training=True) returned, unchanged")

    if not isinstance(inner, dict) or set(inner) != _CACHE_KEYS[cell]:
        raise bad("its entries changed")
    arrays = {k: v for k, v in inner.items()
              if k not in ("mask", "act") and not (k == "rmask" and v is None)}
    for k, v in arrays.items():
        if not (isinstance(v, np.ndarray) and v.dtype == dt and v.flags.c_contiguous):
            raise bad(f"{k!r} is not a C-contiguous {dt} array")
    x, hs, w_ih, w_hh = inner["x"], inner["hs"], inner["w_ih"], inner["w_hh"]
    if x.ndim != 3 or w_ih.ndim != 2 or w_hh.ndim != 2 or hs.ndim != 3:
        raise bad("an array has the wrong number of dimensions")
    T, B, I = x.shape
    G = _GATES[cell]
    GH, H = w_hh.shape
    want = {"x": (T, B, I), "hs": (T + 1, B, H), "w_ih": (G * H, I), "w_hh": (G * H, H)}
    if cell == "lstm":
        want.update(gates=(T, B, 4 * H), cs=(T, B, H), c0=(B, H))
    elif cell == "gru":
        want.update(gates=(T, B, 3 * H), hn=(T, B, H))
    if inner["rmask"] is not None:            # recurrent dropout
        want.update(rmask=(B, H))
    for k, shape in want.items():
        if inner[k].shape != shape:
            raise bad(f"{k!r} has shape {inner[k].shape}, expected {shape}")
    if T < 1 or B < 1 or H < 1:
        raise bad(f"empty sizes T={T}, B={B}, H={H}")
    m = inner["mask"]
    if m is not None and not (isinstance(m, np.ndarray) and m.dtype == np.uint8
                              and m.shape == (T, B) and m.flags.c_contiguous):
        raise bad("'mask' is not a (T, B) uint8 array")
    if cell == "rnn" and inner["act"] not in (0, 1):
        raise bad("'act' is not 0 or 1")
    return T, B, H


def _grad_array(value, name, dtype, shape):
    if value is None:
        return None
    arr = _as_float_array(value, name, dtype)
    _check_shape(arr, name, shape)
    return arr


def _finish_grads(grads, has_bias):
    if not has_bias:
        grads.pop("bias_ih", None)
        grads.pop("bias_hh", None)
    return grads


# ------------------------------------------------------------------------------------------
# public entry points
# ------------------------------------------------------------------------------------------

def rnn_forward(x: np.ndarray, h0: Optional[np.ndarray], weight_ih: np.ndarray,
                weight_hh: np.ndarray, bias_ih: Optional[np.ndarray] = None,
                bias_hh: Optional[np.ndarray] = None, activation: str = "tanh",
                mask: Optional[np.ndarray] = None, training: bool = False,
                backend: Optional[str] = None, check_finite: bool = True,
                recurrent_mask: Optional[np.ndarray] = None):
    """Elman RNN over a sequence. Returns ``(y (T,B,H), h_n (B,H), cache)``.

    ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        Time-major input.
    h0 : ndarray, shape (B, H), or None
        Initial state (None: zeros).
    weight_ih : ndarray, shape (H, I)
        Input weights, PyTorch's layout; its dtype (float32 or float64) is the
        computation dtype.
    weight_hh : ndarray, shape (H, H)
        Recurrent weights.
    bias_ih, bias_hh : ndarray, shape (H,), optional
        Biases; None for none (then no bias gradients are returned).
    activation : {"tanh", "relu"}, default "tanh"
    mask : ndarray of bool, shape (T, B), optional
        True where a step is real; a masked step carries the state unchanged.
    training : bool, default False
        Keep what the backward pass needs and return it as ``cache``.
    backend : {None, "cython", "numpy"}, optional
        The compiled kernels (default) or the NumPy reference.
    check_finite : bool, default True
        Reject non-finite ``x`` and states with a ``ValueError`` (False: NaN propagates).
    recurrent_mask : ndarray, shape (B, H), optional
        Recurrent dropout: multiplies ``h_{t-1}`` where it enters the recurrent product (one
        mask per sequence, already scaled by ``1 / (1 - rate)``); the state carried to the
        next step and the GRU's ``z * h_{t-1}`` term stay unmasked.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The state after every step.
    h_n : ndarray, shape (B, H)
        The final state.
    cache : ForwardCache or None
        For :func:`rnn_backward` (None unless ``training``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn import functional as F
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((7, 2, 3)).astype("float32")        # (T, B, I)
    >>> w_ih = rng.standard_normal((5, 3)).astype("float32") * 0.3  # (H, I)
    >>> w_hh = rng.standard_normal((5, 5)).astype("float32") * 0.3  # (H, H)
    >>> y, h_n, cache = F.rnn_forward(x, None, w_ih, w_hh, training=True)
    >>> y.shape, h_n.shape, bool(np.all(y[-1] == h_n))
    ((7, 2, 5), (2, 5), True)
    >>> sorted(F.rnn_backward(cache, dy=np.ones_like(y)))
    ['h0', 'weight_hh', 'weight_ih', 'x']
    """
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    backend = backend or default_backend()
    _backend_module(backend)
    dtype, H, I, w_ih, w_hh, b_ih, b_hh, has_bias = _weights("rnn", weight_ih, weight_hh,
                                                             bias_ih, bias_hh)
    x_in, h0_in = x, h0
    x, T, B = _inputs(x, dtype, I, check_finite, _GATES["rnn"], H)
    h0 = _state(h0, "h0", dtype, B, H, check_finite)
    mask = _mask(mask, T, B)
    if training:
        x, h0 = _private(x, x_in), _private(h0, h0_in)
    rmask = _recurrent_mask(recurrent_mask, dtype, B, H)
    if training and rmask is not None:
        rmask = _private(rmask, recurrent_mask)     # the backward needs the forward's mask
    kw = {} if rmask is None else {"recurrent_mask": rmask}
    with _blas_context(rmask, backend):
        y, h_n, inner = _backend_module(backend).rnn_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, activation=activation, mask=mask,
            training=bool(training), **kw)
    cache = ForwardCache("rnn", backend, inner, has_bias, dtype) if training else None
    return y, h_n, cache


def rnn_backward(cache: "ForwardCache", dy: Optional[np.ndarray] = None,
                 dh_n: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Gradients of an Elman forward: dict with x, h0, weight_ih, weight_hh[, bias_ih, bias_hh].

    Parameters
    ----------
    cache : ForwardCache
        From the forward call with ``training=True`` (usable once).
    dy : ndarray, shape (T, B, H), optional
        Gradient with respect to ``y`` (None: zeros).
    dh_n : ndarray, shape (B, H), optional
        Gradient with respect to ``h_n`` (None: zeros).

    Returns
    -------
    dict of ndarray
        ``x`` (T, B, I), ``h0`` (B, H), ``weight_ih``, ``weight_hh`` and, with biases,
        ``bias_ih``, ``bias_hh``: each the shape of its forward argument.
    """
    T, B, H = _check_backward(cache, "rnn")
    dy = _grad_array(dy, "dy", cache.dtype, (T, B, H))
    dh_n = _grad_array(dh_n, "dh_n", cache.dtype, (B, H))
    with _blas_context(_cached_rmask(cache), cache.backend):
        grads = _backend_module(cache.backend).rnn_backward(cache.inner, dy, dh_n)
    return _finish_grads(grads, cache.has_bias)


def lstm_forward(x: np.ndarray, h0: Optional[np.ndarray], c0: Optional[np.ndarray],
                 weight_ih: np.ndarray, weight_hh: np.ndarray,
                 bias_ih: Optional[np.ndarray] = None, bias_hh: Optional[np.ndarray] = None,
                 mask: Optional[np.ndarray] = None, training: bool = False,
                 backend: Optional[str] = None, check_finite: bool = True,
                recurrent_mask: Optional[np.ndarray] = None):
    """LSTM over a sequence. Returns ``(y (T,B,H), h_n, c_n, cache)``.

    Gates i, f, g, o (PyTorch's order): ``c_t = f*c_{t-1} + i*g``, ``h_t = o*tanh(c_t)``.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        Time-major input.
    h0, c0 : ndarray, shape (B, H), or None
        Initial hidden and cell states (None: zeros).
    weight_ih : ndarray, shape (4H, I)
        Input weights, PyTorch's layout (gates i, f, g, o stacked); its dtype (float32 or float64) is the
        computation dtype.
    weight_hh : ndarray, shape (4H, H)
        Recurrent weights.
    bias_ih, bias_hh : ndarray, shape (4H,), optional
        Biases; None for none (then no bias gradients are returned).
    mask : ndarray of bool, shape (T, B), optional
        True where a step is real; a masked step carries the state unchanged.
    training : bool, default False
        Keep what the backward pass needs and return it as ``cache``.
    backend : {None, "cython", "numpy"}, optional
        The compiled kernels (default) or the NumPy reference.
    check_finite : bool, default True
        Reject non-finite ``x`` and states with a ``ValueError`` (False: NaN propagates).
    recurrent_mask : ndarray, shape (B, H), optional
        Recurrent dropout: multiplies ``h_{t-1}`` where it enters the recurrent product (one
        mask per sequence, already scaled by ``1 / (1 - rate)``); the state carried to the
        next step and the GRU's ``z * h_{t-1}`` term stay unmasked.

    Returns
    -------
    y : ndarray, shape (T, B, H)
    h_n, c_n : ndarray, shape (B, H)
    cache : ForwardCache or None
        For :func:`lstm_backward` (None unless ``training``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn import functional as F
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((6, 2, 3))                          # float64 works too
    >>> w_ih, w_hh = rng.standard_normal((16, 3)), rng.standard_normal((16, 4))
    >>> y, h, c, _ = F.lstm_forward(x, None, None, w_ih, w_hh)
    >>> y_ref, _, _, _ = F.lstm_forward(x, None, None, w_ih, w_hh, backend="numpy")
    >>> np.allclose(y, y_ref)
    True
    """
    backend = backend or default_backend()
    _backend_module(backend)
    dtype, H, I, w_ih, w_hh, b_ih, b_hh, has_bias = _weights("lstm", weight_ih, weight_hh,
                                                             bias_ih, bias_hh)
    x_in, h0_in, c0_in = x, h0, c0
    x, T, B = _inputs(x, dtype, I, check_finite, _GATES["lstm"], H)
    h0 = _state(h0, "h0", dtype, B, H, check_finite)
    c0 = _state(c0, "c0", dtype, B, H, check_finite)
    mask = _mask(mask, T, B)
    if training:
        x, h0, c0 = _private(x, x_in), _private(h0, h0_in), _private(c0, c0_in)
    rmask = _recurrent_mask(recurrent_mask, dtype, B, H)
    if training and rmask is not None:
        rmask = _private(rmask, recurrent_mask)     # the backward needs the forward's mask
    kw = {} if rmask is None else {"recurrent_mask": rmask}
    with _blas_context(rmask, backend):
        y, h_n, c_n, inner = _backend_module(backend).lstm_forward(
            x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask=mask, training=bool(training), **kw)
    cache = ForwardCache("lstm", backend, inner, has_bias, dtype) if training else None
    return y, h_n, c_n, cache


def lstm_backward(cache: "ForwardCache", dy: Optional[np.ndarray] = None,
                  dh_n: Optional[np.ndarray] = None,
                  dc_n: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Gradients of an LSTM forward: dict with x, h0, c0, weight_ih, weight_hh[, biases].

    Parameters
    ----------
    cache : ForwardCache
        From the forward call with ``training=True`` (usable once).
    dy : ndarray, shape (T, B, H), optional
        Gradient with respect to ``y`` (None: zeros).
    dh_n : ndarray, shape (B, H), optional
        Gradient with respect to ``h_n`` (None: zeros).
    dc_n : ndarray, shape (B, H), optional
        Gradient with respect to ``c_n`` (None: zeros).

    Returns
    -------
    dict of ndarray
        ``x`` (T, B, I), ``h0`` (B, H), ``c0`` (B, H), ``weight_ih``, ``weight_hh`` and, with biases,
        ``bias_ih``, ``bias_hh``: each the shape of its forward argument.
    """
    T, B, H = _check_backward(cache, "lstm")
    dy = _grad_array(dy, "dy", cache.dtype, (T, B, H))
    dh_n = _grad_array(dh_n, "dh_n", cache.dtype, (B, H))
    dc_n = _grad_array(dc_n, "dc_n", cache.dtype, (B, H))
    with _blas_context(_cached_rmask(cache), cache.backend):
        grads = _backend_module(cache.backend).lstm_backward(cache.inner, dy, dh_n, dc_n)
    return _finish_grads(grads, cache.has_bias)


def gru_forward(x: np.ndarray, h0: Optional[np.ndarray], weight_ih: np.ndarray,
                weight_hh: np.ndarray, bias_ih: Optional[np.ndarray] = None,
                bias_hh: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None,
                training: bool = False, backend: Optional[str] = None,
                check_finite: bool = True,
                recurrent_mask: Optional[np.ndarray] = None):
    """GRU (PyTorch's linear-before-reset form) over a sequence. Returns ``(y, h_n, cache)``.

    Gates r, z, n: ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``,
    ``h_t = (1-z)*n + z*h_{t-1}``.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        Time-major input.
    h0 : ndarray, shape (B, H), or None
        Initial state (None: zeros).
    weight_ih : ndarray, shape (3H, I)
        Input weights, PyTorch's layout (gates r, z, n stacked); its dtype (float32 or float64) is the
        computation dtype.
    weight_hh : ndarray, shape (3H, H)
        Recurrent weights.
    bias_ih, bias_hh : ndarray, shape (3H,), optional
        Biases; None for none (then no bias gradients are returned).
    mask : ndarray of bool, shape (T, B), optional
        True where a step is real; a masked step carries the state unchanged.
    training : bool, default False
        Keep what the backward pass needs and return it as ``cache``.
    backend : {None, "cython", "numpy"}, optional
        The compiled kernels (default) or the NumPy reference.
    check_finite : bool, default True
        Reject non-finite ``x`` and states with a ``ValueError`` (False: NaN propagates).
    recurrent_mask : ndarray, shape (B, H), optional
        Recurrent dropout: multiplies ``h_{t-1}`` where it enters the recurrent product (one
        mask per sequence, already scaled by ``1 / (1 - rate)``); the state carried to the
        next step and the GRU's ``z * h_{t-1}`` term stay unmasked.

    Returns
    -------
    y : ndarray, shape (T, B, H)
    h_n : ndarray, shape (B, H)
    cache : ForwardCache or None
        For :func:`gru_backward` (None unless ``training``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn import functional as F
    >>> rng = np.random.default_rng(1)
    >>> x = rng.standard_normal((4, 1, 2)).astype("float32")
    >>> w_ih = rng.standard_normal((9, 2)).astype("float32")
    >>> w_hh = rng.standard_normal((9, 3)).astype("float32")
    >>> mask = np.array([[True], [True], [False], [False]])         # (T, B): 2 real steps
    >>> y, h_n, _ = F.gru_forward(x, None, w_ih, w_hh, mask=mask)
    >>> bool(np.all(h_n == y[1]))                                   # carried over the padding
    True
    """
    backend = backend or default_backend()
    _backend_module(backend)
    dtype, H, I, w_ih, w_hh, b_ih, b_hh, has_bias = _weights("gru", weight_ih, weight_hh,
                                                             bias_ih, bias_hh)
    x_in, h0_in = x, h0
    x, T, B = _inputs(x, dtype, I, check_finite, _GATES["gru"], H)
    h0 = _state(h0, "h0", dtype, B, H, check_finite)
    mask = _mask(mask, T, B)
    if training:
        x, h0 = _private(x, x_in), _private(h0, h0_in)
    rmask = _recurrent_mask(recurrent_mask, dtype, B, H)
    if training and rmask is not None:
        rmask = _private(rmask, recurrent_mask)     # the backward needs the forward's mask
    kw = {} if rmask is None else {"recurrent_mask": rmask}
    with _blas_context(rmask, backend):
        y, h_n, inner = _backend_module(backend).gru_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, mask=mask, training=bool(training), **kw)
    cache = ForwardCache("gru", backend, inner, has_bias, dtype) if training else None
    return y, h_n, cache


def gru_backward(cache: "ForwardCache", dy: Optional[np.ndarray] = None,
                 dh_n: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Gradients of a GRU forward: dict with x, h0, weight_ih, weight_hh[, bias_ih, bias_hh].

    Parameters
    ----------
    cache : ForwardCache
        From the forward call with ``training=True`` (usable once).
    dy : ndarray, shape (T, B, H), optional
        Gradient with respect to ``y`` (None: zeros).
    dh_n : ndarray, shape (B, H), optional
        Gradient with respect to ``h_n`` (None: zeros).

    Returns
    -------
    dict of ndarray
        ``x`` (T, B, I), ``h0`` (B, H), ``weight_ih``, ``weight_hh`` and, with biases,
        ``bias_ih``, ``bias_hh``: each the shape of its forward argument.
    """
    T, B, H = _check_backward(cache, "gru")
    dy = _grad_array(dy, "dy", cache.dtype, (T, B, H))
    dh_n = _grad_array(dh_n, "dh_n", cache.dtype, (B, H))
    with _blas_context(_cached_rmask(cache), cache.backend):
        grads = _backend_module(cache.backend).gru_backward(cache.inner, dy, dh_n)
    return _finish_grads(grads, cache.has_bias)
