# cython: language_level=3
"""Build / runtime facts for show_config(), and small test hooks for the
vectorized activations of the C helpers."""
from fastrnn._engine.common cimport (fr_isa_supported, fr_isa_best, fr_isa_get, fr_isa_set,
                              fr_act_f, fr_act_d, fr_ftz_enter, fr_ftz_exit, project,
                              gemm_tn)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fr_openmp_enabled(void) { return 1; }
    static int fr_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fr_openmp_enabled(void) { return 0; }
    static int fr_omp_max_threads(void) { return 1; }
    #endif
    """
    int fr_openmp_enabled() nogil
    int fr_omp_max_threads() nogil

def openmp_enabled():
    return bool(fr_openmp_enabled())


def omp_max_threads():
    return fr_omp_max_threads()


def isa_supported(int level):
    """True if this CPU can run the kernel path `level` (0 baseline, 1 avx2,
    2 avx2w16, 3 avx512)."""
    return bool(fr_isa_supported(level))


def isa_best():
    return fr_isa_best()


ISA_NAMES = ("baseline", "avx2", "avx2w16", "avx512")


def simd_level():
    """Name of the kernel path in use in this module."""
    return ISA_NAMES[fr_isa_get()]


def _isa():
    """Kernel path in use in this module."""
    return fr_isa_get()


def _set_isa(int level):
    """Select the kernel path of this module (test / configuration hook: never
    while kernels run). Returns 0, or -1 if the CPU lacks it (unchanged)."""
    return fr_isa_set(level)


def activation(kind, x):
    """Apply the kernels' activation (0 sigmoid, 1 tanh, 2 relu) to a 1-D array."""
    import numpy as np
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    cdef float[::1] xf, yf
    cdef double[::1] xd, yd
    cdef unsigned int csr
    if x.dtype == np.float32:
        xf = x
        yf = y
        if x.shape[0]:
            csr = fr_ftz_enter()
            fr_act_f(kind, x.shape[0], &xf[0], &yf[0])
            fr_ftz_exit(csr)
    elif x.dtype == np.float64:
        xd = x
        yd = y
        if x.shape[0]:
            csr = fr_ftz_enter()
            fr_act_d(kind, x.shape[0], &xd[0], &yd[0])
            fr_ftz_exit(csr)
    else:
        raise TypeError(f"x: expected float32 or float64, got {x.dtype}")
    return y


def _project(A, W, int nthreads=1, bint trans=False):
    """Test / measurement hook: A (R, K) @ op(W)^T through the engine's hoisted
    projection (op(W) = W (N, K), or W^T for W (K, N) when `trans`)."""
    import numpy as np
    A = np.ascontiguousarray(A)
    W = np.ascontiguousarray(W, dtype=A.dtype)
    cdef Py_ssize_t R = A.shape[0], K = A.shape[1]
    cdef Py_ssize_t N = W.shape[1] if trans else W.shape[0]
    C = np.empty((R, N), A.dtype)
    cdef float[:, ::1] af, wf, cf
    cdef double[:, ::1] ad, wd, cd
    cdef unsigned int csr
    cdef int rc = 0
    if R == 0 or N == 0 or K == 0:
        C[...] = 0
        return C
    if A.dtype == np.float32:
        af = A
        wf = W
        cf = C
        with nogil:
            csr = fr_ftz_enter()
            rc = project(R, N, K, &af[0, 0], &wf[0, 0], wf.shape[1], trans, &cf[0, 0], nthreads)
            fr_ftz_exit(csr)
    else:
        ad = A
        wd = W
        cd = C
        with nogil:
            csr = fr_ftz_enter()
            rc = project(R, N, K, &ad[0, 0], &wd[0, 0], wd.shape[1], trans, &cd[0, 0], nthreads)
            fr_ftz_exit(csr)
    if rc < 0:
        raise MemoryError("packing buffer")
    return C


def _gemm_tn(A, B):
    """Test hook: A^T @ B for A (K, M), B (K, N) through the weight gradients' product
    (the engine's kernel on AVX2 / AVX-512, BLAS on the baseline path)."""
    import numpy as np
    A = np.ascontiguousarray(A)
    B = np.ascontiguousarray(B, dtype=A.dtype)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A, B: expected the same number of rows, got {A.shape[0]} and "
                         f"{B.shape[0]}")
    cdef Py_ssize_t K = A.shape[0], M = A.shape[1], N = B.shape[1]
    C = np.zeros((M, N), A.dtype)
    if K == 0 or M == 0 or N == 0:
        return C
    cdef float[:, ::1] af, bf, cf
    cdef double[:, ::1] ad, bd, cd
    if A.dtype == np.float32:
        af = A
        bf = B
        cf = C
        with nogil:
            gemm_tn(M, N, K, &af[0, 0], M, &bf[0, 0], N, &cf[0, 0], N)
    else:
        ad = A
        bd = B
        cd = C
        with nogil:
            gemm_tn(M, N, K, &ad[0, 0], M, &bd[0, 0], N, &cd[0, 0], N)
    return C
