# cython: language_level=3
"""Python-visible hook over the row-major BLAS wrappers of _blas.pxd (used by
the tests to check the row-major <-> Fortran mapping)."""


def gemm(const real[:, ::1] a, const real[:, ::1] b, real[:, ::1] c, bint trans_a,
         bint trans_b, real alpha, real beta):
    """c = alpha * op(a) @ op(b) + beta * c, all row-major. Shapes trusted."""
    cdef Py_ssize_t M = c.shape[0], N = c.shape[1]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    cdef char ta = 84 if trans_a else 78   # 'T' / 'N'
    cdef char tb = 84 if trans_b else 78
    with nogil:
        gemm_rm(ta, tb, M, N, K, alpha,
                &a[0, 0], a.shape[1], &b[0, 0], b.shape[1], beta, &c[0, 0], N)


def gemv(const real[:, ::1] a, const real[::1] x, real[::1] y, bint trans_a,
         real alpha, real beta):
    """y = alpha * op(a) @ x + beta * y, a row-major."""
    cdef char ta = 84 if trans_a else 78
    with nogil:
        gemv_rm(ta, a.shape[0], a.shape[1], alpha, &a[0, 0],
                a.shape[1], &x[0], beta, &y[0])
