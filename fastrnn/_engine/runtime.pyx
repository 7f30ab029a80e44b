# cython: language_level=3
"""Build / runtime facts for show_config(), and small test hooks for the
vectorized activations of the C helpers."""
from fastrnn._engine.common cimport (fr_isa_supported, fr_isa_best, fr_isa_get, fr_isa_set,
                              fr_act_f, fr_act_d, fr_ftz_enter, fr_ftz_exit)

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
