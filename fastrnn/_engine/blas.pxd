# cython: language_level=3
"""Row-major GEMM / GEMV over scipy.linalg.cython_blas, fused over float/double.

All wrappers are `nogil noexcept` and take row-major operands:
    gemm_rm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
computes C(M,N) = alpha * op(A) @ op(B) + beta * C with C row-major (leading
dimension ldc). A row-major C is a column-major C^T, so this is the Fortran
call  ?gemm(tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc).
    gemv_rm(ta, M, N, alpha, A, lda, x, beta, y)
computes y = alpha * op(A) @ x + beta * y for a row-major A(M, N).
The BLAS integer type (fr_blas_int) is chosen at build time from SciPy's
cython_blas.pxd (32-bit LP64 or 64-bit ILP64).
"""
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

cdef extern from "fr_blas_int.h":
    ctypedef int fr_blas_int

ctypedef fused real:
    float
    double


cdef inline void gemm_rm(char ta, char tb, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                         real alpha, const real* A, Py_ssize_t lda,
                         const real* B, Py_ssize_t ldb, real beta,
                         real* C, Py_ssize_t ldc) noexcept nogil:
    cdef fr_blas_int m = <fr_blas_int>N
    cdef fr_blas_int n = <fr_blas_int>M
    cdef fr_blas_int k = <fr_blas_int>K
    cdef fr_blas_int la = <fr_blas_int>ldb
    cdef fr_blas_int lb = <fr_blas_int>lda
    cdef fr_blas_int lc = <fr_blas_int>ldc
    cdef char fa = tb
    cdef char fb = ta
    if M <= 0 or N <= 0:
        return
    if real is float:
        sgemm(&fa, &fb, &m, &n, &k, &alpha, <float*>B, &la, <float*>A, &lb,
              &beta, C, &lc)
    else:
        dgemm(&fa, &fb, &m, &n, &k, &alpha, <double*>B, &la, <double*>A, &lb,
              &beta, C, &lc)


cdef inline void gemv_rm(char ta, Py_ssize_t M, Py_ssize_t N, real alpha,
                         const real* A, Py_ssize_t lda, const real* x, real beta,
                         real* y) noexcept nogil:
    # row-major A(M, N) == column-major A^T(N, M): flip the transpose flag
    cdef fr_blas_int m = <fr_blas_int>N
    cdef fr_blas_int n = <fr_blas_int>M
    cdef fr_blas_int la = <fr_blas_int>lda
    cdef fr_blas_int one = 1
    cdef char t = c'N' if (ta == c'T' or ta == c't') else c'T'
    if M <= 0 or N <= 0:
        return
    if real is float:
        sgemv(&t, &m, &n, &alpha, <float*>A, &la, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &m, &n, &alpha, <double*>A, &la, <double*>x, &one, &beta, y, &one)
