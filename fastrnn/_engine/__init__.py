"""The compiled engine (private): Cython kernels, their C helpers and their Python driver.

Layout:
  blas.pxd/.pyx     row-major GEMM/GEMV over scipy.linalg.cython_blas
  common.pxd        C-helper declarations; the sequence drivers the three cells share
                    (forward_sequence / backward_sequence: projection, packing, the thread
                    split), projections, weight gradients
  elman.pyx lstm.pyx gru.pyx   one kernel file per cell (design notes at the top of each): the
                    cell's per-row recurrence, handed to the shared drivers as a callback
  runtime.pyx       build/runtime facts (OpenMP, ISA path) and hooks for tests
  stepper.pyx       compiled one-step runner behind Layer.step (streaming)
  dense.pyx         the dense layers' products (x @ W^T, dy @ W, dy^T @ x, stacked per-sample
                    products) on the same OpenMP threads; validated by fastrnn.linalg
  src/              C: per-ISA micro-kernels and fused recurrent steps (fr_kern*.{c,h}, one
                    source over GCC vector types, CPUID dispatch), pointwise passes, activations
  kernels.py        the Python driver: allocates outputs/workspaces (a per-thread pool for the
                    buffers that outlive a call), one kernel call per pass
  config.py         show_config(), set_num_threads()/get_num_threads(), release_memory(),
                    BLAS thread control,
                    the ISA path (FASTRNN_ISA)

Importing this package loads nothing compiled; ``fastrnn._engine.kernels`` does. The only
door into it from the public API is :mod:`fastrnn.functional`.
"""
