"""Validated dense matrix products on the engine's thread pool (one pool at a time).

The layers around the recurrent kernels (``Dense``, ``TimeDistributed(Dense)``, the
projections of ``MultiHeadAttention``, ``Conv1D``'s im2col product) make three kinds of
product: ``y = x @ W^T`` (forward), ``dx = dy @ W`` and ``dW = dy^T @ x`` (the weight
gradient, a reduction over the rows). :func:`matmul` runs them.

Why not NumPy's ``@``: NumPy's OpenBLAS has a thread pool of its own, and its workers keep
spinning (``sched_yield``) for a while after every threaded call. The recurrent kernels that
run next use the engine's OpenMP threads (:func:`fastrnn.set_num_threads`), so for that while
two pools compete for the cores: on a 2-core machine one training step of
``Embedding(5000, 128) -> LSTM(256, return_sequences=True) -> TimeDistributed(Dense(5000))``
(batch 32, 40 steps) took 231 ms with OpenBLAS's default threads and 126 ms with
``OPENBLAS_NUM_THREADS=1``. Here the large products run in ``fastrnn._engine.dense`` on the
engine's threads (its packed GEMM for ``x @ W^T`` and ``dy @ W``, per-thread single-threaded
BLAS calls over blocks of the output for ``dy^T @ x``), so NumPy's pool is never woken.

Which products go to the engine (the rule): a product runs there when the engine would split
it over two or more threads -- at least ``2**22`` multiply-adds (the engine's packed GEMM
gives each thread >= ~4 MFLOP), at least 16 output columns and 12 rows for ``x @ W^T`` /
``dy @ W`` (the register tile is 16-48 columns wide: a narrow output such as ``Dense(1)``
would waste most of it; (1280, 64) @ (64, 2): 90 µs vs NumPy's 26 µs), at least 32 rows or
columns of ``dW`` -- and the thread count is above 1. Everything smaller runs in NumPy with
NumPy's OpenBLAS held to the calling thread (its thread-local setting, when available).

Measured on the 2-core AVX-512 machine, float32, the engine on 1 and 2 threads vs NumPy's
``@`` held to one thread, fastest of 300 runs, µs (the median moves with other load):

=========================  ======  ========  ========  ============
product (R, K) @ (K, N)    MACs    engine 1  engine 2  NumPy 1 thr
=========================  ======  ========  ========  ============
(256, 64) @ (64, 64)       1.0 M   39        37        33
(1024, 64) @ (64, 64)      4.2 M   125       75        95
(1280, 128) @ (128, 128)   21 M    423       259       418
(1280, 128) @ (128, 512)   84 M    1565      836       1644
(1280, 256) @ (256, 5000)  1.6 G   37165     19031     35972
=========================  ======  ========  ========  ============

Below ``2**22`` the engine would run one thread, where NumPy's call is cheaper (no packing,
a few µs less overhead); from there on two threads win. On one thread the products are
even (the weight gradient 10-25% behind when it called SciPy's OpenBLAS build; it now runs
the engine's own A^T B kernel, 4-35% faster than that BLAS call on these shapes). The
weight gradient splits the longer side of ``dW`` over the threads, each running that kernel
on its block; a transposed copy of ``dy`` plus the packed GEMM was slower than either
(1 thread, ms: 49.2 vs 39.3 for (5000, 1280) @ (1280, 256) against the BLAS call). Held to one thread,
NumPy's OpenBLAS never wakes its workers; left alone on a busy 2-core machine one
(320, 128) @ (128, 64) product took 7.7 ms instead of 0.07 ms.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._engine.config import get_num_threads as _num_threads
from .functional import _numpy_blas_one_thread

__all__ = ["matmul", "bmm"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# smallest product (multiply-adds) worth the engine: the engine's packed GEMM splits rows
# over 2 threads from 2 * R * N * K >= 2 * 4e6 FLOP on (common.pxd, project()); below it
# would run on one thread, where NumPy's single-threaded call is as fast and cheaper to start
_ENGINE_MIN_MACS = 1 << 22
_ENGINE_MIN_COLS = 16      # x @ W^T, dy @ W: output columns (the register tile's width)
_ENGINE_MIN_ROWS = 12      # ... and rows (project() gives each thread >= 6 rows)
_ENGINE_MIN_SIDE = 32      # dW: the longer side of the output, split in blocks of 16
_ENGINE_MAX_DIM = 2**31 - 1   # the kernels (and an LP64 BLAS) count rows and columns in int

_dense = None
_blas_local = None


def _engine():
    """(fastrnn._engine.dense, BLAS thread-local setter address), or None (not compiled)."""
    global _dense, _blas_local
    if _dense is None:
        try:
            from ._engine import kernels  # noqa: F401  (selects the ISA path in every module)
            from ._engine import dense
            from ._engine.config import _blas_local_address
            _blas_local = _blas_local_address()
            _dense = dense
        except ImportError:
            _dense = False
    return (_dense, _blas_local) if _dense else None


def _describe(a):
    return f"array of shape {a.shape} and dtype {a.dtype}"


def _operand(value, name):
    """A float32/float64 ndarray (any layout: copied to C order only on the engine path)."""
    if type(value) is np.ndarray and value.dtype in _FLOATS and value.ndim:
        return value                                   # the layers' case: nothing to check
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception:
            raise TypeError(f"{name}: expected a float32 or float64 array, got "
                            f"{type(value).__name__}") from None
    if value.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {value.dtype}")
    if value.ndim < 1:
        raise ValueError(f"{name}: expected at least 1 dimension, got {_describe(value)}")
    return value


def _pick(backend, nthreads, big_enough, dims):
    """True: run in the engine. `dims`: the product's sizes (each must fit a C int)."""
    if backend == "numpy":
        return False
    fits = max(dims) <= _ENGINE_MAX_DIM
    if backend == "cython":
        if not fits:
            raise ValueError(f"backend='cython': sizes {dims} exceed the engine's limit of "
                             f"{_ENGINE_MAX_DIM} rows or columns; use backend=None or 'numpy'")
        if _engine() is None:
            from ._install_check import build_hint
            raise ImportError(build_hint() + ", or pass backend='numpy'")
        return True
    if backend is not None:
        raise ValueError(f"backend: expected None, 'cython' or 'numpy', got {backend!r}")
    return nthreads > 1 and big_enough and fits and _engine() is not None


# OpenBLAS runs a product on the calling thread by itself below these sizes (GEMM:
# M*N*K <= 65536 * 4, GEMV: M*N < 2304 * 4 in its interface); under the smaller of them
# holding it to one thread is skipped (that costs two foreign calls, ~1 us)
_BLAS_SERIAL_MACS = 2304 * 4


def _numpy_product(macs, a, b):
    """NumPy's ``a @ b`` with its OpenBLAS held to the calling thread (its thread-local
    setting; a no-op where unavailable), so NumPy's pool is never woken."""
    if macs < _BLAS_SERIAL_MACS:
        return np.matmul(a, b)
    setter = _numpy_blas_one_thread._find()
    if not setter:
        return np.matmul(a, b)
    prev = setter(1)
    try:
        return np.matmul(a, b)
    finally:
        setter(prev)


def matmul(a, b, *, transpose_a: bool = False, transpose_b: bool = False,
           backend: Optional[str] = None) -> np.ndarray:
    """Dense product on the engine's threads: ``a @ b``, ``a @ b.T`` or ``a^T @ b`` (flattened).

    Parameters
    ----------
    a : ndarray, float32 or float64
        ``(..., K)``; with ``transpose_a`` ``(..., M)``. Leading axes are flattened into rows.
    b : ndarray, float32 or float64
        ``(K, N)``; with ``transpose_b`` ``(N, K)``; with ``transpose_a`` ``(..., N)`` with
        the same leading axes as ``a``.
    transpose_a : bool, default False
        Return ``a2.T @ b2`` of shape ``(M, N)``, where ``a2``/``b2`` are ``a``/``b`` with
        their leading axes flattened into one row axis: the weight gradient
        ``dW = dy^T @ x`` of a dense layer, a sum over every row.
    transpose_b : bool, default False
        Use ``b.T`` (``b`` of shape ``(N, K)``, e.g. a torch-layout weight). Not together
        with ``transpose_a``.
    backend : {None, "cython", "numpy"}, optional
        None: the engine for products large enough to use two or more of its threads
        (module docstring), NumPy on the calling thread only otherwise. "cython": always
        the engine; "numpy": always NumPy (both for tests and measurements).

    Returns
    -------
    ndarray
        ``(..., N)`` (``a``'s leading axes), or ``(M, N)`` with ``transpose_a``; a new
        C-contiguous array of the operands' common dtype (float64 if either is).

    Raises
    ------
    TypeError
        An operand that is not a float32/float64 array.
    ValueError
        Mismatched inner or leading axes, too few dimensions, both transposes, a bad backend.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.linalg import matmul
    >>> x = np.ones((2, 3, 4), np.float32); w = np.ones((5, 4), np.float32)
    >>> matmul(x, w, transpose_b=True).shape          # x @ w.T over the last axis
    (2, 3, 5)
    >>> dy = np.ones((2, 3, 5), np.float32)
    >>> matmul(dy, x, transpose_a=True).shape         # sum over (2, 3) rows of dy^T x
    (5, 4)
    """
    a = _operand(a, "a")
    b = _operand(b, "b")
    if transpose_a and transpose_b:
        raise ValueError("transpose_a and transpose_b: expected at most one of them True, got "
                         "both")
    dt = a.dtype if a.dtype == b.dtype else np.result_type(a.dtype, b.dtype)
    if transpose_a:
        if a.shape[:-1] != b.shape[:-1]:
            raise ValueError(f"b: expected the leading axes of a {a.shape[:-1]} (rows of "
                             f"a^T @ b), got {_describe(b)}")
        M, N = a.shape[-1], b.shape[-1]
        R = math.prod(a.shape[:-1])
        macs = R * M * N
        big = macs >= _ENGINE_MIN_MACS and max(M, N) >= _ENGINE_MIN_SIDE
        nt = _num_threads()
        a2, b2 = a.reshape(R, M), b.reshape(R, N)
        if not _pick(backend, nt, big, (R, M, N)):
            return _numpy_product(macs, a2.T.astype(dt, copy=False), b2.astype(dt, copy=False))
        eng, blas_local = _engine()
        out = np.empty((M, N), dt)
        eng.matmul_tn(np.ascontiguousarray(a2, dtype=dt), np.ascontiguousarray(b2, dtype=dt),
                      out, nt, blas_local)
        return out
    if b.ndim != 2:
        raise ValueError(f"b: expected 2 dimensions, got {_describe(b)}")
    K = a.shape[-1]
    N, Kb = b.shape if transpose_b else b.shape[::-1]
    if Kb != K:
        side = "b.shape[1]" if transpose_b else "b.shape[0]"
        raise ValueError(f"b: expected {side} == a.shape[-1] == {K}, got {_describe(b)}")
    lead = a.shape[:-1]
    R = math.prod(lead)
    macs = R * N * K
    big = macs >= _ENGINE_MIN_MACS and N >= _ENGINE_MIN_COLS and R >= _ENGINE_MIN_ROWS
    nt = _num_threads()
    a2 = a.reshape(R, K)
    if not _pick(backend, nt, big, (R, N, K)):
        bb = b.T if transpose_b else b
        out = _numpy_product(macs, a2.astype(dt, copy=False), bb.astype(dt, copy=False))
        return out.reshape(lead + (N,))
    eng, _ = _engine()
    out = np.empty((R, N), dt)
    kernel = eng.matmul_nt if transpose_b else eng.matmul_nn
    kernel(np.ascontiguousarray(a2, dtype=dt), np.ascontiguousarray(b, dtype=dt), out, nt)
    return out.reshape(lead + (N,))


def bmm(a, b, *, transpose_a: bool = False, transpose_b: bool = False,
        backend: Optional[str] = None) -> np.ndarray:
    """Stacked products ``op(a[i]) @ op(b[i])`` (attention's per-sample products).

    The stack is split over the engine's threads, one single-threaded BLAS call per item,
    when the whole stack has at least ``2**22`` multiply-adds, at least 2 items and the
    thread count is above 1; otherwise NumPy's ``matmul`` runs with NumPy's OpenBLAS held
    to the calling thread (see the module docstring).

    Parameters
    ----------
    a : ndarray, float32 or float64
        ``(B, M, K)``; with ``transpose_a`` ``(B, K, M)``.
    b : ndarray, float32 or float64
        ``(B, K, N)``; with ``transpose_b`` ``(B, N, K)``.
    transpose_a, transpose_b : bool, default False
        Use the transpose of every item of ``a`` / ``b``.
    backend : {None, "cython", "numpy"}, optional
        As for :func:`matmul`.

    Returns
    -------
    ndarray
        ``(B, M, N)``, C-contiguous, the operands' common dtype.

    Raises
    ------
    TypeError
        An operand that is not a float32/float64 array.
    ValueError
        Operands that are not 3-D or whose batch or inner sizes differ; a bad backend.

    Examples
    --------
    >>> import numpy as np
    >>> from fastrnn.linalg import bmm
    >>> q = np.ones((2, 3, 4), np.float32); k = np.ones((2, 5, 4), np.float32)
    >>> bmm(q, k, transpose_b=True).shape              # q @ k^T per sample
    (2, 3, 5)
    """
    a = _operand(a, "a")
    b = _operand(b, "b")
    for name, arr in (("a", a), ("b", b)):
        if arr.ndim != 3:
            raise ValueError(f"{name}: expected 3 dimensions (batch, rows, columns), got "
                             f"{_describe(arr)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"b: expected the batch size of a ({a.shape[0]}), got {_describe(b)}")
    M, K = (a.shape[2], a.shape[1]) if transpose_a else a.shape[1:]
    Kb, N = (b.shape[2], b.shape[1]) if transpose_b else b.shape[1:]
    if Kb != K:
        side = "b.shape[2]" if transpose_b else "b.shape[1]"
        raise ValueError(f"b: expected {side} == {K} (the inner size of a), got {_describe(b)}")
    dt = a.dtype if a.dtype == b.dtype else np.result_type(a.dtype, b.dtype)
    nb = a.shape[0]
    nt = _num_threads()
    macs = nb * M * N * K
    big = nb >= 2 and macs >= _ENGINE_MIN_MACS
    if not _pick(backend, nt, big, (nb, M, N, K)):
        aa = a.transpose(0, 2, 1) if transpose_a else a
        bb = b.transpose(0, 2, 1) if transpose_b else b
        return _numpy_product(M * N * K, aa.astype(dt, copy=False), bb.astype(dt, copy=False))
    eng, blas_local = _engine()
    out = np.empty((nb, M, N), dt)
    eng.bmm(np.ascontiguousarray(a, dtype=dt), np.ascontiguousarray(b, dtype=dt), out,
            bool(transpose_a), bool(transpose_b), nt, blas_local)
    return out
