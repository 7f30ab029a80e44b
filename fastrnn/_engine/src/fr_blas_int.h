/* Integer type of scipy.linalg.cython_blas arguments. setup.py reads the
 * installed SciPy's cython_blas.pxd and defines FASTRNN_BLAS_INT64 when its
 * BLAS wrappers take 64-bit integers (ILP64 builds). */
#ifndef FASTRNN_BLAS_INT_H
#define FASTRNN_BLAS_INT_H
#include <stdint.h>
#ifdef FASTRNN_BLAS_INT64
typedef int64_t fr_blas_int;
#else
typedef int fr_blas_int;
#endif
#endif
