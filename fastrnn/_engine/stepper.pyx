# cython: language_level=3
"""Streaming stepper: one recurrent time step with no per-call re-validation.

Design
------
A `Stepper` is built once per (layer, weights) and keeps the weight arrays (by
reference, so in-place optimizer updates are seen), their raw data pointers, and a
per-object workspace for the gate pre-activations. `step(x, h[, c])` then only
checks the per-call arrays' dtype / shape / contiguity (NumPy C-API reads; the caller,
Layer.step's fast path, already checked finiteness), allocates the new state
arrays and runs:
    g = x W_ih^T            (the engine's projection: GEMV per row for <= 4 rows)
    g += h W_hh^T           (GEMV per row for <= 4 rows, as the engine's T = 1 path does,
                             else BLAS single-threaded in the calling thread; never
                             OpenBLAS's own thread pool, which spins on the cores for
                             ~0.1 s after each call)
    the cell's fused pointwise pass, with the biases summed in C on each call
    (G*H adds, so bias updates made in place are seen too).
No packing for a few rows: a single step reads every weight once, so packing would
cost as much as the product itself. When the weights are too big for one core's L2
(STEP_SPLIT_BYTES) and the engine has >= 2 threads, the few rows' products split
their outputs over the team: each thread reads the same half of W_ih and W_hh at
every step, from its own L2, instead of the whole of both from L3; the pointwise pass
then runs on the calling thread. Biases are re-read every call; the weight arrays
must keep their identity (`matches()` tells the layer when to rebuild).
"""
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, free
from fastrnn._engine.blas cimport real, gemm_rm
from cython.parallel cimport parallel, threadid
from fastrnn._engine.common cimport (fr_ftz_enter, fr_ftz_exit, fr_isa_set, recur_fwd,
                                     product, lstm_fwd_pw, gru_fwd_pw, elman_fwd_pw,
                                     STEP_GEMV_ROWS, gemv_dot, team_size, FR_HAVE_OMP)
from fastrnn._engine.config import get_num_threads

cnp.import_array()

_CELLS = {"rnn": 1, "lstm": 4, "gru": 3}


ctypedef int (*blas_local_fn)(int) noexcept nogil


cdef void _product(Py_ssize_t B, Py_ssize_t N, Py_ssize_t K, const real* a,
                   const real* w, real* out, size_t blas_local) noexcept nogil:
    """out(B, N) = a(B, K) W^T, W (N, K): GEMV rows for a few rows; else BLAS made
    single-threaded in this thread (OpenBLAS's thread-local setting: its pool is never
    woken, so no worker spins on the cores after the step), or, without that setting,
    the engine's packed GEMM (it packs W on every call, which costs about as much as
    the product)."""
    cdef blas_local_fn setter = <blas_local_fn>blas_local
    cdef int prev
    if B <= STEP_GEMV_ROWS:
        recur_fwd(B, N, K, a, w, NULL, out, 0)
    elif setter != NULL:
        prev = setter(1)
        gemm_rm(c'N', c'T', B, N, K, <real>1, a, K, w, K, <real>0, out, N)
        setter(prev)
    else:
        product(B, N, K, a, w, K, 0, out, 1)


# Weight bytes (W_ih and W_hh) from which a step of a few rows splits its products over
# the threads: each thread then reads the same half of the weights at every step, which
# stays in its own L2 instead of streaming from L3 (a GRU or LSTM of 256 units with 64
# inputs: 1.0 / 1.3 MB, more than one core's 1 MB L2).
cdef enum:
    STEP_SPLIT_BYTES = 1 << 19


cdef void _products_split(int nt, Py_ssize_t B, Py_ssize_t N, Py_ssize_t I, Py_ssize_t H,
                          const real* x, const real* w_ih, const real* h,
                          const real* w_hh, real* g, real* gh) noexcept nogil:
    """g(B, N) = x W_ih^T and gh(B, N) = h W_hh^T (gh NULL: g += h W_hh^T) for <=
    STEP_GEMV_ROWS rows, the N output rows split over the team (GEMV per row)."""
    cdef int tid, nteam
    cdef Py_ssize_t n0, n1, r
    cdef unsigned int csr_t
    with parallel(num_threads=nt):
        tid = threadid()
        nteam = team_size()
        # slices of whole vectors of outputs (16 floats), each thread the same every step
        n0 = ((tid * N // nteam) // 16) * 16
        n1 = N if tid == nteam - 1 else (((tid + 1) * N // nteam) // 16) * 16
        csr_t = fr_ftz_enter()
        for r in range(B):
            if n1 > n0:
                gemv_dot(n1 - n0, I, w_ih + n0 * I, I, x + r * I, g + r * N + n0, 0)
                if gh != NULL:
                    gemv_dot(n1 - n0, H, w_hh + n0 * H, H, h + r * H, gh + r * N + n0, 0)
                else:
                    gemv_dot(n1 - n0, H, w_hh + n0 * H, H, h + r * H, g + r * N + n0, 1)
        fr_ftz_exit(csr_t)


cdef void _step(int cell, int act, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                const real* x, const real* h, const real* c, const real* w_ih,
                const real* w_hh, const real* b_ih, const real* b_hh, real* g,
                real* gh, real* bias, real* h_out, real* c_out,
                size_t blas_local, int nt) noexcept nogil:
    cdef Py_ssize_t G = 4 if cell == 4 else (3 if cell == 3 else 1)
    cdef Py_ssize_t GH = G * H, j
    cdef unsigned int csr = fr_ftz_enter()
    cdef bint split = (nt > 1 and FR_HAVE_OMP and B <= STEP_GEMV_ROWS and GH >= 64
                       and GH * (I + H) * <Py_ssize_t>sizeof(real) >= STEP_SPLIT_BYTES)
    if split:
        _products_split(nt, B, GH, I, H, x, w_ih, h, w_hh, g, gh if cell == 3 else NULL)
    else:
        _product(B, GH, I, x, w_ih, g, blas_local)
    if cell == 3:
        for j in range(2 * H):
            bias[j] = b_ih[j] + b_hh[j]
        if not split:
            _product(B, GH, H, h, w_hh, gh, blas_local)
        gru_fwd_pw(B, H, g, gh, bias, b_ih + 2 * H, b_hh + 2 * H, h, h_out, NULL, NULL, NULL)
    else:
        for j in range(GH):
            bias[j] = b_ih[j] + b_hh[j]
        if split:
            pass
        elif B <= STEP_GEMV_ROWS:
            recur_fwd(B, GH, H, h, w_hh, NULL, g, 1)
        else:
            _product(B, GH, H, h, w_hh, gh, blas_local)
            for j in range(B * GH):
                g[j] += gh[j]
        if cell == 4:
            lstm_fwd_pw(B, H, g, bias, h, c, h_out, c_out, NULL, NULL)
        else:
            elman_fwd_pw(B, H, act, g, bias, h, h_out, NULL)
    fr_ftz_exit(csr)


cdef class Stepper:
    """One compiled recurrent step for fixed weights (see the module notes).

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    w_ih, w_hh, b_ih, b_hh : ndarray
        C-contiguous float32 or float64 arrays of one dtype, PyTorch layout
        ((G*H, I), (G*H, H), (G*H,), (G*H,)); validated by the caller.
    activation : {"tanh", "relu"}
        Elman only.
    """
    cdef readonly str cell
    cdef readonly object dtype
    cdef object w_ih, w_hh, b_ih, b_hh
    cdef int kind, act, is_f, typenum
    cdef Py_ssize_t n_in, H, G, cap
    cdef void* p_wih
    cdef void* p_whh
    cdef void* p_bih
    cdef void* p_bhh
    cdef void* work      # g (cap, GH) | gh (cap, GH) | bias (GH)
    cdef size_t blas_local   # OpenBLAS's thread-local thread-count setter, or 0
    cdef str activation

    def __cinit__(self):
        self.work = NULL
        self.cap = 0

    def __init__(self, cell, w_ih, w_hh, b_ih, b_hh, activation="tanh"):
        self.cell = cell
        self.G = _CELLS[cell]
        self.kind = <int>self.G
        self.activation = activation
        self.act = 1 if activation == "relu" else 0
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = w_ih, w_hh, b_ih, b_hh
        self.dtype = w_ih.dtype
        self.is_f = 1 if self.dtype == np.float32 else 0
        self.typenum = cnp.NPY_FLOAT32 if self.is_f else cnp.NPY_FLOAT64
        self.H = w_hh.shape[1]
        self.n_in = w_ih.shape[1]
        self.p_wih = <void*><size_t>w_ih.ctypes.data
        self.p_whh = <void*><size_t>w_hh.ctypes.data
        self.p_bih = <void*><size_t>b_ih.ctypes.data
        self.p_bhh = <void*><size_t>b_hh.ctypes.data
        from fastrnn._engine.config import _blas_local_address
        self.blas_local = <size_t>_blas_local_address()

    def __dealloc__(self):
        free(self.work)

    def __reduce__(self):
        return (Stepper, (self.cell, self.w_ih, self.w_hh, self.b_ih, self.b_hh,
                          self.activation))

    def matches(self, w_ih, w_hh, b_ih, b_hh, activation="tanh"):
        """True while the layer still holds the very arrays this stepper reads."""
        return (w_ih is self.w_ih and w_hh is self.w_hh and b_ih is self.b_ih
                and b_hh is self.b_hh and activation == self.activation)

    cdef int _grow(self, Py_ssize_t B) except -1:
        cdef size_t item = 4 if self.is_f else 8
        cdef Py_ssize_t GH = self.G * self.H
        cdef void* p
        if B <= self.cap:
            return 0
        p = malloc(item * <size_t>(2 * B * GH + GH + 16))
        if p == NULL:
            raise MemoryError("stepper workspace")
        free(self.work)
        self.work = p
        self.cap = B
        return 0

    cdef int _check(self, object a, Py_ssize_t B, Py_ssize_t n) except -1:
        cdef cnp.ndarray arr
        if not isinstance(a, np.ndarray):
            raise ValueError("stepper: expected an ndarray")
        arr = <cnp.ndarray>a
        if (cnp.PyArray_TYPE(arr) != self.typenum or cnp.PyArray_NDIM(arr) != 2
                or cnp.PyArray_DIMS(arr)[0] != B or cnp.PyArray_DIMS(arr)[1] != n
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
            raise ValueError("stepper: argument of unexpected dtype, shape or layout")
        return 0

    def step(self, x, states):
        """Advance one step: x (B, I) (or (1, B, I)), states [h] or [h, c] (B, H) ->
        tuple of new states (fresh arrays). Arrays that are not C-contiguous of the
        stepper's dtype and shape raise ValueError (callers then take the validated
        path). Runs with the GIL held (one step is microseconds; the per-object
        workspace must not be shared by concurrent calls)."""
        cdef Py_ssize_t B, H = self.H, GH = self.G * self.H
        cdef int nt = get_num_threads()
        cdef object h, c = None, c_out = None
        cdef void* pc = NULL
        cdef void* pco = NULL
        cdef char* w
        cdef cnp.npy_intp dims[2]
        if not isinstance(x, np.ndarray):
            raise ValueError("stepper: expected an ndarray")
        if cnp.PyArray_NDIM(<cnp.ndarray>x) == 3:
            x = x[0]
        if cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
            raise ValueError("stepper: x must be (B, I)")
        B = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
        if B == 0:
            raise ValueError("stepper: empty batch")
        self._check(x, B, self.n_in)
        h = states[0]
        self._check(h, B, H)
        if self.kind == 4:
            c = states[1]
            self._check(c, B, H)
        self._grow(B)
        w = <char*>self.work
        dims[0] = B
        dims[1] = H
        h_out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        if c is not None:
            c_out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
            pc = cnp.PyArray_DATA(<cnp.ndarray>c)
            pco = cnp.PyArray_DATA(<cnp.ndarray>c_out)
        if self.is_f:
            _step[float](self.kind, self.act, B, self.n_in, H,
                         <const float*>cnp.PyArray_DATA(<cnp.ndarray>x),
                         <const float*>cnp.PyArray_DATA(<cnp.ndarray>h), <const float*>pc,
                         <const float*>self.p_wih, <const float*>self.p_whh,
                         <const float*>self.p_bih, <const float*>self.p_bhh, <float*>w,
                         (<float*>w) + B * GH, (<float*>w) + 2 * B * GH,
                         <float*>cnp.PyArray_DATA(<cnp.ndarray>h_out), <float*>pco,
                         self.blas_local, nt)
        else:
            _step[double](self.kind, self.act, B, self.n_in, H,
                          <const double*>cnp.PyArray_DATA(<cnp.ndarray>x),
                          <const double*>cnp.PyArray_DATA(<cnp.ndarray>h), <const double*>pc,
                          <const double*>self.p_wih, <const double*>self.p_whh,
                          <const double*>self.p_bih, <const double*>self.p_bhh, <double*>w,
                          (<double*>w) + B * GH, (<double*>w) + 2 * B * GH,
                          <double*>cnp.PyArray_DATA(<cnp.ndarray>h_out), <double*>pco,
                          self.blas_local, nt)
        if c is not None:
            return (h_out, c_out)
        return (h_out,)


def _set_isa(int level):
    """Kernel path of this module (set by fastrnn._engine.config, never while
    kernels run). Returns 0, or -1 if the CPU lacks it (unchanged)."""
    return fr_isa_set(level)
