"""Compiled engine: the same contract as :mod:`fastrnn.reference`, run by the Cython kernels.

Python validates, Cython trusts: :mod:`fastrnn.functional` checks shapes, dtypes and
finiteness; this module only makes the arrays C-contiguous, allocates outputs and the
per-call workspaces, and makes one kernel call per forward / backward. The cache is a
dict private to this module (what the backward kernels need, see the design notes at the
top of ``_elman.pyx``, ``_lstm.pyx`` and ``_gru.pyx``).
"""
import sys
import threading

import numpy as np

from . import elman as _elman, gru as _gru, lstm as _lstm, stepper as _stepper
from . import dense as _dense
from . import config as _config
from .config import _blas_local_address, get_num_threads

__all__ = ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward", "make_stepper"]

_empty = np.empty
_zeros = np.zeros
_contig = np.ascontiguousarray
_ACT = {"tanh": 0, "relu": 1}


_tls = threading.local()

# kernel path (AVX-512 / AVX2 / baseline) chosen once per process, in every module
_config.init_isa((_elman, _lstm, _gru, _stepper, _dense))



def _set_fuse_input(mode):
    """Test hook: -1 (the default) lets the engine's measured rule decide where the fused
    recurrent steps compute the input projection themselves (common.pxd: fuse_input);
    0 / 1 force that off / on wherever the fused steps run with a batch split, so that
    tests reach both paths on any shape and A/B timings compare them."""
    if mode not in (-1, 0, 1):
        raise ValueError(f"mode must be -1, 0 or 1, got {mode!r}")
    for m in (_elman, _lstm, _gru):
        m._set_fuse_input(mode)


# Scratch policy: a buffer is kept for reuse only up to this many bytes (per slot, per
# thread; at most 5 slots: "g", "dg", "dgh" sequence-sized, "gh", "rd" one batch of states).
# Larger requests get a fresh array that is freed when the call returns: at that size the
# GEMMs dwarf the page faults reuse would save, and a pool that only grows would hold
# hundreds of MiB for the life of the process after one big call.
SCRATCH_KEEP_BYTES = 32 * 1024 * 1024


def _scratch(slot, shape, dt):
    """Per-thread reusable scratch array (never returned, never cached by a forward):
    large temporaries such as the inference gate buffer and the backward dgates would
    otherwise be fresh mmaps whose page faults cost as much as a GEMM. One buffer per
    (slot, dtype), grown on demand up to SCRATCH_KEEP_BYTES; threading.local so concurrent
    calls from several Python threads (the kernels release the GIL) never share one, and a
    thread's buffers are freed when the thread ends."""
    n = 1
    for d in shape:
        n *= d
    if n < 4096 or n * dt.itemsize > SCRATCH_KEEP_BYTES:    # tiny, or too big to keep
        return _empty(shape, dt)
    pool = getattr(_tls, "pool", None)
    if pool is None:
        pool = _tls.pool = {}
    key = (slot, dt.char)
    buf = pool.get(key)
    if buf is None or buf.size < n:
        buf = pool[key] = _empty(n, dt)
    return buf[:n].reshape(shape)


# Work-buffer pool for the arrays that outlive a call: the training caches (gates, states),
# the outputs and the gradients. Why: a training step allocates tens of MiB of them and frees
# them a step later; glibc hands such blocks back to the kernel and every next step faults
# the pages in again, zeroed (LSTM (32, 100, 128, 256) training, 2 threads: 5% of the
# samples in page clearing, more in the faults; the step took 10-20% less with the pages
# kept). A buffer is
# handed out again only when nothing refers to it any more: every NumPy view, Cython
# memoryview or cache dict entry made from it holds a reference to it, so its reference
# count says whether it is idle. Buffers of POOL_MIN_BYTES .. SCRATCH_KEEP_BYTES are kept,
# up to POOL_KEEP_BYTES per thread in all (idle ones are freed, oldest first, to make room);
# release_scratch() frees them.
POOL_MIN_BYTES = 256 * 1024
POOL_KEEP_BYTES = 192 * 1024 * 1024
_getrefcount = sys.getrefcount


def _refs_when_idle(bufs):
    """The reference count a pooled buffer shows in _pooled's scan when nothing else holds
    it (the list, the loop name, getrefcount's argument): measured, not assumed, because
    it is an interpreter detail."""
    for raw in bufs:
        return _getrefcount(raw)


_IDLE_REFS = _refs_when_idle([np.empty(1)])


def _pooled(shape, dt):
    """np.empty(shape, dt), from the calling thread's pool of idle buffers when one of the
    same dtype and size is free (see POOL_KEEP_BYTES). Never returns memory that any live
    array still uses."""
    n = 1
    for d in shape:
        n *= d
    nbytes = n * dt.itemsize
    if nbytes < POOL_MIN_BYTES or nbytes > SCRATCH_KEEP_BYTES:
        return _empty(shape, dt)
    bufs = getattr(_tls, "bufs", None)
    if bufs is None:
        bufs = _tls.bufs = []
    total = nbytes
    for raw in bufs:
        if raw.size == n and raw.dtype == dt and _getrefcount(raw) <= _IDLE_REFS:
            return raw.reshape(shape)
        total += raw.nbytes
    i = 0
    while total > POOL_KEEP_BYTES and i < len(bufs):     # evict idle buffers, oldest first
        raw = bufs[i]
        if _getrefcount(raw) <= _IDLE_REFS:
            total -= raw.nbytes
            del bufs[i]
        else:
            i += 1
        raw = None
    if total > POOL_KEEP_BYTES:                           # the pool is full of live buffers
        return _empty(shape, dt)
    raw = _empty(n, dt)
    bufs.append(raw)
    return raw.reshape(shape)


def _pooled_copy(a):
    """A pooled C-contiguous copy of a."""
    out = _pooled(a.shape, a.dtype)
    np.copyto(out, a)
    return out


def kept_bytes():
    """Bytes of scratch and pooled buffers the calling thread keeps."""
    pool = getattr(_tls, "pool", None) or {}
    bufs = getattr(_tls, "bufs", None) or []
    return sum(b.nbytes for b in pool.values()) + sum(b.nbytes for b in bufs)


def release_scratch():
    """Free the calling thread's kept scratch and pooled buffers (re-created on demand;
    pooled buffers still in use stay valid and are freed when their last user drops them)."""
    _tls.pool = {}
    _tls.bufs = []



def _mask_u8(mask):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        m = m != 0
    return _contig(m).view(np.uint8)


def _grad_in(a, dt):
    return None if a is None else _contig(a, dtype=dt)


def _rdrop(recurrent_mask, dt, B, H):
    """(rmask, hm) for a forward: the (B, H) recurrent-dropout mask made contiguous and
    the (B, H) workspace where each step's product input h_{t-1} * rmask is formed, or
    (None, None). Only the mask is cached: the backward re-forms the masked states."""
    if recurrent_mask is None:
        return None, None
    return _contig(recurrent_mask, dtype=dt), _scratch("rd", (B, H), dt)


def _rdrop_backward(cache, dt, T, B, H):
    """Keyword arguments of a backward kernel call for the cache's recurrent mask: the
    mask, a (T, B, H) workspace for hs[:T] * mask (dW_hh) and a (B, H) one for each step's
    dG W_hh. The (T, B, H) one takes the "g" slot, which only the inference forward
    uses: a pooled buffer, so no fresh pages are faulted in per call."""
    rm = cache.get("rmask")
    if rm is None:
        return {}
    return dict(rmask=rm, hm=_scratch("g", (T, B, H), dt), rbuf=_scratch("rd", (B, H), dt))


# ------------------------------------------------------------------------------ Elman
def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, activation="tanh", mask=None,
                training=False, recurrent_mask=None):
    x = _contig(x)
    dt = x.dtype
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    act = _ACT[activation]
    h0 = _contig(h0, dtype=dt)
    w_ih, w_hh = _contig(weight_ih, dtype=dt), _contig(weight_hh, dtype=dt)
    bias = _contig(bias_ih + bias_hh, dtype=dt)
    m = _mask_u8(mask)
    if not training and recurrent_mask is None:
        A = _scratch("g", (T, B, H), dt)
        y = _pooled((T, B, H), dt)
        _elman.rnn_forward(x, h0, w_ih, w_hh, bias, A, y, m, act, get_num_threads())
        h_n = y[T - 1].copy() if T else h0.copy()
        return y, h_n, None
    rm, hm = _rdrop(recurrent_mask, dt, B, H)
    A = _pooled((T, B, H), dt)
    hs = _pooled((T + 1, B, H), dt)
    hs[0] = h0
    _elman.rnn_forward(x, hs[0], w_ih, w_hh, bias, A, hs[1:], m, act, get_num_threads(), rm,
                       hm)
    cache = None
    if training:
        cache = dict(x=x, hs=hs, w_ih=w_ih, w_hh=w_hh, mask=m, act=act, rmask=rm)
    return _pooled_copy(hs[1:]), hs[T].copy(), cache


def _backward_start(cache, cell, dy, dh_n):
    """What every cell's backward starts from: the cached x, hs and weights, the sizes, dy
    made contiguous in the cache's dtype and the (2, B, H) dh ping-pong buffer whose first
    slot holds dh_n (zeros when None)."""
    if cache is None:
        raise ValueError(f"{cell}_backward needs the cache of a forward call made with "
                         "training=True")
    x, hs, w_ih, w_hh = cache["x"], cache["hs"], cache["w_ih"], cache["w_hh"]
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dhbuf = _empty((2, B, H), dt)
    if dh_n is None:
        dhbuf[0] = 0
    else:
        dhbuf[0] = dh_n
    return x, hs, w_ih, w_hh, dt, T, B, H, _grad_in(dy, dt), dhbuf


def rnn_backward(cache, dy, dh_n):
    x, hs, w_ih, w_hh, dt, T, B, H, dy, dhbuf = _backward_start(cache, "rnn", dy, dh_n)
    if T == 0:
        db = _zeros(H, dt)
        return dict(x=_zeros(x.shape, dt), h0=dhbuf[0].copy(), weight_ih=_zeros(w_ih.shape, dt),
                    weight_hh=_zeros(w_hh.shape, dt), bias_ih=db, bias_hh=db.copy())
    dG = _scratch("dg", (T, B, H), dt)
    dh0 = _empty((B, H), dt)
    dx = _pooled(x.shape, dt)
    dw_ih = _pooled(w_ih.shape, dt)
    dw_hh = _pooled(w_hh.shape, dt)
    db = _zeros(H, dt)
    _elman.rnn_backward(x, hs, w_ih, w_hh, dy, dG, dhbuf, dh0, dx, dw_ih, dw_hh, db,
                        cache["mask"], cache["act"], get_num_threads(), _blas_local_address(),
                        **_rdrop_backward(cache, dt, T, B, H))
    return dict(x=dx, h0=dh0, weight_ih=dw_ih, weight_hh=dw_hh, bias_ih=db, bias_hh=db.copy())


# ------------------------------------------------------------------------------- LSTM
def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask=None, training=False,
                 recurrent_mask=None):
    x = _contig(x)
    dt = x.dtype
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    h0, c0 = _contig(h0, dtype=dt), _contig(c0, dtype=dt)
    w_ih, w_hh = _contig(weight_ih, dtype=dt), _contig(weight_hh, dtype=dt)
    bias = _contig(bias_ih + bias_hh, dtype=dt)
    m = _mask_u8(mask)
    if T == 0:
        y = _empty((0, B, H), dt)
        cache = None
        if training:
            rm = _contig(recurrent_mask, dtype=dt) if recurrent_mask is not None else None
            cache = dict(x=x, hs=h0[None].copy(), gates=_empty((0, B, 4 * H), dt),
                         cs=_empty((0, B, H), dt), c0=c0, w_ih=w_ih, w_hh=w_hh, mask=m,
                         rmask=rm)
        return y, h0.copy(), c0.copy(), cache
    if not training and recurrent_mask is None:
        G = _scratch("g", (T, B, 4 * H), dt)
        y = _pooled((T, B, H), dt)
        c_n = _empty((B, H), dt)
        cbuf = _empty((2, B, H), dt) if T > 1 else None
        _lstm.lstm_forward(x, h0, c0, w_ih, w_hh, bias, G, y, None, cbuf, c_n, m, False,
                           get_num_threads())
        return y, y[T - 1].copy(), c_n, None
    rm, hm = _rdrop(recurrent_mask, dt, B, H)
    G = _pooled((T, B, 4 * H), dt)
    hs = _pooled((T + 1, B, H), dt)
    hs[0] = h0
    cs = _pooled((T, B, H), dt)
    _lstm.lstm_forward(x, hs[0], c0, w_ih, w_hh, bias, G, hs[1:], cs, None, cs[T - 1], m,
                       True, get_num_threads(), rm, hm)
    cache = None
    if training:
        cache = dict(x=x, hs=hs, gates=G, cs=cs, c0=c0, w_ih=w_ih, w_hh=w_hh, mask=m, rmask=rm)
    return _pooled_copy(hs[1:]), hs[T].copy(), cs[T - 1].copy(), cache


def lstm_backward(cache, dy, dh_n, dc_n):
    x, hs, w_ih, w_hh, dt, T, B, H, dy, dhbuf = _backward_start(cache, "lstm", dy, dh_n)
    dc = _zeros((B, H), dt) if dc_n is None else np.array(dc_n, dtype=dt, order="C")
    if T == 0:
        db = _zeros(4 * H, dt)
        return dict(x=_zeros(x.shape, dt), h0=dhbuf[0].copy(), c0=dc,
                    weight_ih=_zeros(w_ih.shape, dt), weight_hh=_zeros(w_hh.shape, dt),
                    bias_ih=db, bias_hh=db.copy())
    dG = _scratch("dg", (T, B, 4 * H), dt)
    dh0 = _empty((B, H), dt)
    dx = _pooled(x.shape, dt)
    dw_ih = _pooled(w_ih.shape, dt)
    dw_hh = _pooled(w_hh.shape, dt)
    db = _zeros(4 * H, dt)
    _lstm.lstm_backward(x, hs, cache["gates"], cache["cs"], cache["c0"], w_ih, w_hh, dy, dG,
                        dhbuf, dc, dh0, dx, dw_ih, dw_hh, db, cache["mask"], get_num_threads(),
                        _blas_local_address(), **_rdrop_backward(cache, dt, T, B, H))
    return dict(x=dx, h0=dh0, c0=dc, weight_ih=dw_ih, weight_hh=dw_hh, bias_ih=db,
                bias_hh=db.copy())


# -------------------------------------------------------------------------------- GRU
def gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask=None, training=False,
                recurrent_mask=None):
    x = _contig(x)
    dt = x.dtype
    T, B, _ = x.shape
    H = weight_hh.shape[1]
    h0 = _contig(h0, dtype=dt)
    w_ih, w_hh = _contig(weight_ih, dtype=dt), _contig(weight_hh, dtype=dt)
    b_ih, b_hh = _contig(bias_ih, dtype=dt), _contig(bias_hh, dtype=dt)
    bias_rz = b_ih[:2 * H] + b_hh[:2 * H]
    m = _mask_u8(mask)
    gh = _scratch("gh", (B, 3 * H), dt)
    if not training and recurrent_mask is None:
        Gi = _scratch("g", (T, B, 3 * H), dt)
        y = _pooled((T, B, H), dt)
        _gru.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, bias_rz, Gi, gh, y, None, m, False,
                         get_num_threads())
        return y, (y[T - 1].copy() if T else h0.copy()), None
    # a recurrent mask takes this path even for inference: the kernel redoes the carry
    # term z * h_{t-1} from the gates it stores
    rm, hm = _rdrop(recurrent_mask, dt, B, H)
    Gi = _pooled((T, B, 3 * H), dt)
    hs = _pooled((T + 1, B, H), dt)
    hs[0] = h0
    hn = _pooled((T, B, H), dt)
    _gru.gru_forward(x, hs[0], w_ih, w_hh, b_ih, b_hh, bias_rz, Gi, gh, hs[1:], hn, m, True,
                     get_num_threads(), rm, hm)
    cache = None
    if training:
        cache = dict(x=x, hs=hs, gates=Gi, hn=hn, w_ih=w_ih, w_hh=w_hh, mask=m, rmask=rm)
    return _pooled_copy(hs[1:]), hs[T].copy(), cache


def gru_backward(cache, dy, dh_n):
    x, hs, w_ih, w_hh, dt, T, B, H, dy, dhbuf = _backward_start(cache, "gru", dy, dh_n)
    db_ih = _zeros(3 * H, dt)
    db_hh = _zeros(3 * H, dt)
    if T == 0:
        return dict(x=_zeros(x.shape, dt), h0=dhbuf[0].copy(), weight_ih=_zeros(w_ih.shape, dt),
                    weight_hh=_zeros(w_hh.shape, dt), bias_ih=db_ih, bias_hh=db_hh)
    dGi = _scratch("dg", (T, B, 3 * H), dt)
    dGh = _scratch("dgh", (T, B, 3 * H), dt)
    dh0 = _empty((B, H), dt)
    dx = _pooled(x.shape, dt)
    dw_ih = _pooled(w_ih.shape, dt)
    dw_hh = _pooled(w_hh.shape, dt)
    _gru.gru_backward(x, hs, cache["gates"], cache["hn"], w_ih, w_hh, dy, dGi, dGh, dhbuf, dh0,
                      dx, dw_ih, dw_hh, db_ih, db_hh, cache["mask"], get_num_threads(),
                      _blas_local_address(), **_rdrop_backward(cache, dt, T, B, H))
    return dict(x=dx, h0=dh0, weight_ih=dw_ih, weight_hh=dw_hh, bias_ih=db_ih, bias_hh=db_hh)


# --------------------------------------------------------------------------- stepper
def make_stepper(cell, weight_ih, weight_hh, bias_ih, bias_hh, activation="tanh"):
    """Compiled one-step runner for streaming (see the notes in ``stepper.pyx``).

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    weight_ih, weight_hh, bias_ih, bias_hh : ndarray
        C-contiguous arrays of one float dtype in PyTorch layout, validated by the
        caller. They are held by reference: in-place updates are seen; replacing an
        array needs a new stepper (``stepper.matches(...)`` says whether it is current).
    activation : {"tanh", "relu"}
        Elman only.

    Returns
    -------
    Stepper
        ``stepper.step(x_t, states)`` with ``x_t (B, I)`` and ``states`` ``[h]`` or
        ``[h, c]`` (``(B, H)`` each) returns the tuple of new states.

    Example
    -------
    >>> st = make_stepper("gru", w_ih, w_hh, b_ih, b_hh)    # doctest: +SKIP
    >>> (h,) = st.step(x_t, [h])                             # doctest: +SKIP
    """
    return _stepper.Stepper(cell, weight_ih, weight_hh, bias_ih, bias_hh, activation)
