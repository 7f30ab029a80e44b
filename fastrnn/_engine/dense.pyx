# cython: language_level=3
"""Dense (non-recurrent) matrix products on the engine's one OpenMP thread pool.

Why
---
The layers around the recurrent kernels (Dense, TimeDistributed(Dense), attention
projections, Conv1D's im2col product) used NumPy's ``@``, i.e. NumPy's OpenBLAS
with a thread pool of its own. After each call OpenBLAS's workers spin
(sched_yield) for a while; the next recurrent kernel's OpenMP team then shares
the cores with them (a training step of Embedding -> LSTM(256) ->
TimeDistributed(Dense(5000)) on 2 cores: 231 ms with OpenBLAS's default threads,
126 ms with OPENBLAS_NUM_THREADS=1). These products now run on the same OpenMP
threads as the recurrent kernels, so one pool is active at a time.

The three products of a dense layer (all operands C-contiguous, row-major):
  matmul_nt   out(R, N) = x(R, K) @ w(N, K)^T   forward   (y = x @ weight.T)
  matmul_nn   out(R, N) = x(R, K) @ w(K, N)     dx = dy @ weight
  matmul_tn   out(M, N) = a(R, M)^T @ b(R, N)   dW = dy^T @ x (reduces over R)
and, for attention's per-sample products, a stack of them:
  bmm         out[i] = op(a[i]) @ op(b[i])
matmul_nt / matmul_nn: the engine's packed GEMM (``project`` in common.pxd): w is
packed once per call, the rows are split over the threads (the team size read
inside the region), FTZ/DAZ per thread.
matmul_tn: the reduction runs over the rows, so instead the OUTPUT is split: each
OpenMP thread computes a block of out's rows (or columns, whichever is longer)
with the engine's A^T B kernel (common.pxd: gemm_tn, shared with the recurrent
weight gradients; on the baseline path one BLAS ?gemm whose own threading is
switched off in that thread, OpenBLAS's thread-local setting). Measured against
that per-thread BLAS call (1 thread, float32, ms, medians of 21 in one process,
R,M,N): 1280,5000,256: 40.5 vs 47.8; 1280,256,5000: 43.3 vs 44.9; 1280,256,128:
0.89 vs 1.16; 512,256,256: 0.71 vs 0.84; 256,64,64: 0.024 vs 0.036. (A^T copied
into scratch and then the packed GEMM had been slower than BLAS on all of them.) Without the thread-local setting (a BLAS other than OpenBLAS >= 0.3.27)
it makes one BLAS call from the calling thread.
bmm: the stack is split over the threads, one single-threaded BLAS call per item
(same thread-local setting; the items are small, attention's (Tq, Tk) products).

Shapes, dtypes and contiguity are checked by fastrnn.linalg (Python validates,
Cython trusts); the functions here release the GIL and allocate only the packing
buffer (inside ``project``).
"""
from cython.parallel cimport parallel, threadid
from fastrnn._engine.blas cimport real, gemm_rm
from fastrnn._engine.common cimport (FR_HAVE_OMP, team_size, fr_ftz_enter, fr_ftz_exit,
                                     fr_isa_set, product, gemm_tn, blas_local_fn)


cdef inline void _nt(Py_ssize_t R, Py_ssize_t N, Py_ssize_t K, const real* x,
                     const real* w, real* out, int nthreads) noexcept nogil:
    cdef unsigned int csr = fr_ftz_enter()
    product(R, N, K, x, w, K, 0, out, nthreads)
    fr_ftz_exit(csr)


cdef inline void _nn(Py_ssize_t R, Py_ssize_t N, Py_ssize_t K, const real* x,
                     const real* w, real* out, int nthreads) noexcept nogil:
    cdef unsigned int csr = fr_ftz_enter()
    product(R, N, K, x, w, N, 1, out, nthreads)
    fr_ftz_exit(csr)


cdef inline void _tn(Py_ssize_t R, Py_ssize_t M, Py_ssize_t N, const real* a,
                     const real* b, real* out, int nthreads,
                     size_t blas_local) noexcept nogil:
    """out(M, N) = a(R, M)^T @ b(R, N): the longer output axis split over up to
    `nthreads` OpenMP threads (>= ~4 MFLOP and >= 16 rows / columns each), one
    gemm_tn per thread (BLAS, single-threaded, on the baseline path)."""
    cdef blas_local_fn setter = <blas_local_fn>blas_local
    cdef int nthr = nthreads if FR_HAVE_OMP else 1
    cdef int tid = 0, prev = 0, nteam = 1
    cdef bint by_rows = M >= N
    cdef Py_ssize_t L = M if by_rows else N
    cdef Py_ssize_t i0 = 0, i1 = 0, per = 0
    while nthr > 1 and 2 * M * N * R < nthr * 4000000:
        nthr -= 1
    if nthr > L // 16:
        nthr = <int>(L // 16) if L >= 32 else 1
    if setter == NULL:
        nthr = 1
    if nthr > 1:
        with parallel(num_threads=nthr):
            tid = threadid()
            prev = setter(1)
            # the team may be smaller than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC)
            nteam = team_size()
            per = (L + nteam - 1) // nteam
            per = ((per + 15) // 16) * 16
            i0 = tid * per
            i1 = i0 + per
            if i1 > L:
                i1 = L
            if i0 < i1:
                if by_rows:
                    gemm_tn(i1 - i0, N, R, a + i0, M, b, N, out + i0 * N, N)
                else:
                    gemm_tn(M, i1 - i0, R, a, M, b + i0, N, out + i0, N)
            setter(prev)
    else:
        if setter != NULL:
            prev = setter(1)
        gemm_tn(M, N, R, a, M, b, N, out, N)
        if setter != NULL:
            setter(prev)


def matmul_nt(const real[:, ::1] x, const real[:, ::1] w, real[:, ::1] out, int nthreads):
    """out(R, N) = x(R, K) @ w(N, K)^T on up to `nthreads` threads (shapes trusted)."""
    cdef Py_ssize_t R = x.shape[0], K = x.shape[1], N = w.shape[0]
    if R == 0 or N == 0:
        return
    if K == 0:
        out[:, :] = 0
        return
    with nogil:
        _nt(R, N, K, &x[0, 0], &w[0, 0], &out[0, 0], nthreads)


def matmul_nn(const real[:, ::1] x, const real[:, ::1] w, real[:, ::1] out, int nthreads):
    """out(R, N) = x(R, K) @ w(K, N) on up to `nthreads` threads (shapes trusted)."""
    cdef Py_ssize_t R = x.shape[0], K = x.shape[1], N = w.shape[1]
    if R == 0 or N == 0:
        return
    if K == 0:
        out[:, :] = 0
        return
    with nogil:
        _nn(R, N, K, &x[0, 0], &w[0, 0], &out[0, 0], nthreads)


def matmul_tn(const real[:, ::1] a, const real[:, ::1] b, real[:, ::1] out, int nthreads,
              size_t blas_local=0):
    """out(M, N) = a(R, M)^T @ b(R, N) on up to `nthreads` threads (shapes trusted).

    `blas_local`: address of OpenBLAS's openblas_set_num_threads_local (0: one BLAS
    call from this thread, with whatever threading that BLAS does)."""
    cdef Py_ssize_t R = a.shape[0], M = a.shape[1], N = b.shape[1]
    if M == 0 or N == 0:
        return
    if R == 0:
        out[:, :] = 0
        return
    with nogil:
        _tn(R, M, N, &a[0, 0], &b[0, 0], &out[0, 0], nthreads, blas_local)


cdef inline void _bmm(Py_ssize_t nb, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                      const real* a, const real* b, real* out, bint ta, bint tb,
                      int nthreads, size_t blas_local) noexcept nogil:
    """out[i](M, N) = op(a[i]) @ op(b[i]) for i < nb (a[i]: (M, K), or (K, M) when ta;
    b[i]: (K, N), or (N, K) when tb): the stack split over up to `nthreads` OpenMP
    threads (>= ~4 MFLOP each), one single-threaded BLAS call per item."""
    cdef blas_local_fn setter = <blas_local_fn>blas_local
    cdef int nthr = nthreads if FR_HAVE_OMP else 1
    cdef int tid = 0, prev = 0, nteam = 1
    cdef Py_ssize_t i = 0, i0 = 0, i1 = 0
    cdef Py_ssize_t lda = M if ta else K, ldb = K if tb else N
    cdef char ca = c'T' if ta else c'N'
    cdef char cb = c'T' if tb else c'N'
    while nthr > 1 and 2 * nb * M * N * K < nthr * 4000000:
        nthr -= 1
    if nthr > nb:
        nthr = <int>nb
    if setter == NULL:
        nthr = 1
    if nthr > 1:
        with parallel(num_threads=nthr):
            tid = threadid()
            prev = setter(1)
            nteam = team_size()
            i0 = (tid * nb) // nteam
            i1 = ((tid + 1) * nb) // nteam
            for i in range(i0, i1):
                gemm_rm(ca, cb, M, N, K, <real>1, a + i * M * K, lda, b + i * K * N, ldb,
                        <real>0, out + i * M * N, N)
            setter(prev)
    else:
        if setter != NULL:
            prev = setter(1)
        for i in range(nb):
            gemm_rm(ca, cb, M, N, K, <real>1, a + i * M * K, lda, b + i * K * N, ldb,
                    <real>0, out + i * M * N, N)
        if setter != NULL:
            setter(prev)


def bmm(const real[:, :, ::1] a, const real[:, :, ::1] b, real[:, :, ::1] out,
        bint trans_a, bint trans_b, int nthreads, size_t blas_local=0):
    """out[i] = op(a[i]) @ op(b[i]) for every i of the stacks (shapes trusted);
    op = transpose when trans_a / trans_b. `blas_local` as for matmul_tn."""
    cdef Py_ssize_t nb = out.shape[0], M = out.shape[1], N = out.shape[2]
    cdef Py_ssize_t K = a.shape[1] if trans_a else a.shape[2]
    if nb == 0 or M == 0 or N == 0:
        return
    if K == 0:
        out[:, :, :] = 0
        return
    with nogil:
        _bmm(nb, M, N, K, &a[0, 0, 0], &b[0, 0, 0], &out[0, 0, 0], trans_a, trans_b,
             nthreads, blas_local)


def _set_isa(int level):
    """Kernel path of this module (set by fastrnn._engine.config, never while
    kernels run). Returns 0, or -1 if the CPU lacks it (unchanged)."""
    return fr_isa_set(level)
