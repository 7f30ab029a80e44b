"""The compiled engine (private): Cython kernels, their C helpers and their Python driver.

Layout:
  blas.pxd/.pyx     row-major GEMM/GEMV over scipy.linalg.cython_blas
  common.pxd        C-helper declarations, the thread split, projections, weight gradients
  elman.pyx lstm.pyx gru.pyx   one kernel file per cell (design notes at the top of each)
  runtime.pyx       build/runtime facts (OpenMP, SIMD level) and the activation hook for tests
  src/              C: vectorised activations, fused pointwise passes, packed GEMM kernels
  kernels.py        the Python driver: allocates outputs/workspaces, one kernel call per pass
  config.py         show_config(), set_num_threads()/get_num_threads(), BLAS thread control

Importing this package loads nothing compiled; ``fastrnn._engine.kernels`` does. The only
door into it from the public API is :mod:`fastrnn.functional`.
"""
