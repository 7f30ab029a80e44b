# cython: language_level=3
"""Declarations of the C helpers in fastrnn/_engine/src (fused pointwise passes,
FTZ/DAZ control, runtime info) and fused-type dispatchers over them."""
from libc.stdlib cimport malloc, free
from cython.parallel cimport parallel, threadid
from fastrnn._engine.blas cimport real, gemm_rm

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FR_HAVE_OMP 1
    #else
    #define FR_HAVE_OMP 0   /* parallel blocks would run once, as thread 0 only */
    #endif
    #ifdef _OPENMP
    #include <omp.h>
    /* the size of the team that is running this parallel region: OpenMP may
       give fewer threads than num_threads asked for (OMP_THREAD_LIMIT,
       OMP_DYNAMIC, nested regions), so work is always split by this value */
    #define fr_team_size() omp_get_num_threads()
    #else
    #define fr_team_size() 1
    #endif
    """
    const int FR_HAVE_OMP
    int fr_team_size() nogil


cdef extern from "fr_common.h" nogil:
    void fr_team_place()


cdef inline int team_size() noexcept nogil:
    """Threads in the current parallel region (1 outside one / without OpenMP).
    Every thread of every engine region calls it first thing, so it also keeps the
    workers off the master's CPU (fr_team_place in src/fr_kern.c: why)."""
    fr_team_place()
    return fr_team_size()

cdef extern from "fr_common.h" nogil:
    unsigned int fr_ftz_enter()
    void fr_ftz_exit(unsigned int saved)
    int fr_isa_supported(int level)
    int fr_isa_best()
    int fr_isa_get()
    int fr_isa_set(int level)
    void fr_colsum_add_f(int rows, int n, const float* a, float* acc)
    void fr_colsum_add_d(int rows, int n, const double* a, double* acc)
    void fr_act_f(int kind, int n, const float* x, float* y)
    void fr_act_d(int kind, int n, const double* x, double* y)
    void fr_elman_fwd_f(int nb, int H, int act, const float* g, const float* bias,
                        const float* h_prev, float* h_out, const unsigned char* mask)
    void fr_elman_fwd_d(int nb, int H, int act, const double* g, const double* bias,
                        const double* h_prev, double* h_out, const unsigned char* mask)
    void fr_elman_bwd_f(int nb, int H, int act, const float* h, const float* dy,
                        const float* dh_next, float* dG, float* dh_prev,
                        const unsigned char* mask)
    void fr_elman_bwd_d(int nb, int H, int act, const double* h, const double* dy,
                        const double* dh_next, double* dG, double* dh_prev,
                        const unsigned char* mask)
    void fr_lstm_fwd_f(int nb, int H, const float* g, const float* bias,
                       const float* h_prev, const float* c_prev, float* h_out,
                       float* c_out, float* gates_out, const unsigned char* mask)
    void fr_lstm_fwd_d(int nb, int H, const double* g, const double* bias,
                       const double* h_prev, const double* c_prev, double* h_out,
                       double* c_out, double* gates_out, const unsigned char* mask)
    void fr_lstm_bwd_f(int nb, int H, const float* gates, const float* c,
                       const float* c_prev, const float* dy, const float* dh_next,
                       float* dc, float* dG, float* dh_prev, const unsigned char* mask)
    void fr_lstm_bwd_d(int nb, int H, const double* gates, const double* c,
                       const double* c_prev, const double* dy, const double* dh_next,
                       double* dc, double* dG, double* dh_prev, const unsigned char* mask)
    void fr_gru_fwd_f(int nb, int H, const float* gi, const float* gh,
                      const float* bias_rz, const float* b_in, const float* b_hn,
                      const float* h_prev, float* h_out, float* gates_out,
                      float* hn_out, const unsigned char* mask)
    void fr_gru_fwd_d(int nb, int H, const double* gi, const double* gh,
                      const double* bias_rz, const double* b_in, const double* b_hn,
                      const double* h_prev, double* h_out, double* gates_out,
                      double* hn_out, const unsigned char* mask)
    void fr_gru_bwd_f(int nb, int H, const float* gates, const float* hn,
                      const float* h_prev, const float* dy, const float* dh_next,
                      float* dGi, float* dGh, float* dh_prev, const unsigned char* mask)
    void fr_gru_bwd_d(int nb, int H, const double* gates, const double* hn,
                      const double* h_prev, const double* dy, const double* dh_next,
                      double* dGi, double* dGh, double* dh_prev, const unsigned char* mask)


cdef inline void colsum_add(Py_ssize_t rows, Py_ssize_t n, const real* a,
                            real* acc) noexcept nogil:
    if real is float:
        fr_colsum_add_f(<int>rows, <int>n, a, acc)
    else:
        fr_colsum_add_d(<int>rows, <int>n, a, acc)


cdef inline void elman_fwd_pw(Py_ssize_t nb, Py_ssize_t H, int act, const real* g,
                              const real* bias, const real* h_prev, real* h_out,
                              const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_elman_fwd_f(<int>nb, <int>H, act, g, bias, h_prev, h_out, mask)
    else:
        fr_elman_fwd_d(<int>nb, <int>H, act, g, bias, h_prev, h_out, mask)


cdef inline void elman_bwd_pw(Py_ssize_t nb, Py_ssize_t H, int act, const real* h,
                              const real* dy, const real* dh_next, real* dG,
                              real* dh_prev, const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_elman_bwd_f(<int>nb, <int>H, act, h, dy, dh_next, dG, dh_prev, mask)
    else:
        fr_elman_bwd_d(<int>nb, <int>H, act, h, dy, dh_next, dG, dh_prev, mask)


cdef inline void lstm_fwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* g,
                             const real* bias, const real* h_prev, const real* c_prev,
                             real* h_out, real* c_out, real* gates_out,
                             const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_lstm_fwd_f(<int>nb, <int>H, g, bias, h_prev, c_prev, h_out, c_out,
                      gates_out, mask)
    else:
        fr_lstm_fwd_d(<int>nb, <int>H, g, bias, h_prev, c_prev, h_out, c_out,
                      gates_out, mask)


cdef inline void lstm_bwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* gates,
                             const real* c, const real* c_prev, const real* dy,
                             const real* dh_next, real* dc, real* dG, real* dh_prev,
                             const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_lstm_bwd_f(<int>nb, <int>H, gates, c, c_prev, dy, dh_next, dc, dG,
                      dh_prev, mask)
    else:
        fr_lstm_bwd_d(<int>nb, <int>H, gates, c, c_prev, dy, dh_next, dc, dG,
                      dh_prev, mask)


cdef inline void gru_fwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* gi,
                            const real* gh, const real* bias_rz, const real* b_in,
                            const real* b_hn, const real* h_prev, real* h_out,
                            real* gates_out, real* hn_out,
                            const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_gru_fwd_f(<int>nb, <int>H, gi, gh, bias_rz, b_in, b_hn, h_prev, h_out,
                     gates_out, hn_out, mask)
    else:
        fr_gru_fwd_d(<int>nb, <int>H, gi, gh, bias_rz, b_in, b_hn, h_prev, h_out,
                     gates_out, hn_out, mask)


cdef inline void gru_bwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* gates,
                            const real* hn, const real* h_prev, const real* dy,
                            const real* dh_next, real* dGi, real* dGh, real* dh_prev,
                            const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_gru_bwd_f(<int>nb, <int>H, gates, hn, h_prev, dy, dh_next, dGi, dGh,
                     dh_prev, mask)
    else:
        fr_gru_bwd_d(<int>nb, <int>H, gates, hn, h_prev, dy, dh_next, dGi, dGh,
                     dh_prev, mask)


cdef extern from "fr_common.h" nogil:
    int fr_gemm_tn_f(int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                     float* C, int ldc, int accumulate)
    int fr_gemm_tn_d(int M, int N, int K, const double* A, int lda, const double* B,
                     int ldb, double* C, int ldc, int accumulate)


cdef inline void gemm_tn(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const real* A,
                         Py_ssize_t lda, const real* B, Py_ssize_t ldb, real* C,
                         Py_ssize_t ldc) noexcept nogil:
    """C(M, N) = A^T B with A (K, M), B (K, N) row-major: the engine's kernel on the
    AVX2 / AVX-512 paths, BLAS on the baseline path or when its work block cannot be
    allocated."""
    cdef int r
    if real is float:
        r = fr_gemm_tn_f(<int>M, <int>N, <int>K, A, <int>lda, B, <int>ldb, C, <int>ldc, 0)
    else:
        r = fr_gemm_tn_d(<int>M, <int>N, <int>K, A, <int>lda, B, <int>ldb, C, <int>ldc, 0)
    if r != 0:
        gemm_rm(c'T', c'N', M, N, K, <real>1, A, lda, B, ldb, <real>0, C, ldc)


cdef extern from "fr_common.h" nogil:
    size_t fr_pack_size_f(int N, int K)
    size_t fr_pack_size_d(int N, int K)
    void fr_pack_f(int N, int K, const float* src, int ld, int trans, float* Wp, int pa,
                   int pb)
    void fr_pack_d(int N, int K, const double* src, int ld, int trans, double* Wp, int pa,
                   int pb)
    int fr_pack_panels_f(int N)
    int fr_pack_panels_d(int N)
    void fr_gemm_packed_f(int M, int N, int K, const float* A, int lda, const float* Wp,
                          float* C, int ldc, int accumulate)
    void fr_gemm_packed_d(int M, int N, int K, const double* A, int lda, const double* Wp,
                          double* C, int ldc, int accumulate)
    void fr_gemv_dot_f(int N, int K, const float* W, int ldw, const float* x, float* y,
                       int accumulate)
    void fr_gemv_dot_d(int N, int K, const double* W, int ldw, const double* x, double* y,
                       int accumulate)
    void fr_gemv_axpy_f(int N, int K, const float* W, int ldw, const float* x, float* y)
    void fr_gemv_axpy_d(int N, int K, const double* W, int ldw, const double* x, double* y)
    size_t fr_pack_cell_size_f(int G, int H)
    size_t fr_pack_cell_size_d(int G, int H)
    void fr_pack_cell_f(int G, int H, const float* w_hh, float* Wp, int pa, int pb)
    void fr_pack_cell_d(int G, int H, const double* w_hh, double* Wp, int pa, int pb)
    size_t fr_pack_input_size_f(int G, int H, int I)
    size_t fr_pack_input_size_d(int G, int H, int I)
    void fr_pack_input_f(int G, int H, int I, const float* w_ih, float* Wp, int pa, int pb)
    void fr_pack_input_d(int G, int H, int I, const double* w_ih, double* Wp, int pa,
                         int pb)
    int fr_fuse_input_mode()
    void fr_fuse_input_set(int mode)
    void fr_lstm_step_f(int nb, int H, int pa, int pb, const float* hp, const float* Wp,
                        const float* g, const float* xin, int ldx, int I, const float* Wxp,
                        const float* bias, const float* cp, float* h_out,
                        float* c_out, float* gates_out, const unsigned char* mask)
    void fr_lstm_step_d(int nb, int H, int pa, int pb, const double* hp, const double* Wp,
                        const double* g, const double* xin, int ldx, int I,
                        const double* Wxp, const double* bias, const double* cp,
                        double* h_out, double* c_out, double* gates_out,
                        const unsigned char* mask)
    void fr_gru_step_f(int nb, int H, int pa, int pb, const float* hp, const float* Wp,
                       const float* gi, const float* xin, int ldx, int I, const float* Wxp,
                       const float* bias_rz, const float* b_in,
                       const float* b_hn, float* h_out, float* gates_out, float* hn_out,
                       const unsigned char* mask)
    void fr_gru_step_d(int nb, int H, int pa, int pb, const double* hp, const double* Wp,
                       const double* gi, const double* xin, int ldx, int I,
                       const double* Wxp, const double* bias_rz, const double* b_in,
                       const double* b_hn, double* h_out, double* gates_out,
                       double* hn_out, const unsigned char* mask)
    void fr_elman_step_f(int nb, int H, int pa, int pb, int act, const float* hp,
                         const float* Wp, const float* g, const float* xin, int ldx, int I,
                         const float* Wxp, const float* bias, float* h_out,
                         const unsigned char* mask)
    void fr_elman_step_d(int nb, int H, int pa, int pb, int act, const double* hp,
                         const double* Wp, const double* g, const double* xin, int ldx,
                         int I, const double* Wxp, const double* bias,
                         double* h_out, const unsigned char* mask)
    int fr_cell_panels_f(int G, int H)
    int fr_cell_panels_d(int G, int H)
    ctypedef struct fr_team_barrier:
        int count
        int gen
    void fr_team_barrier_wait(fr_team_barrier* b, int n)


cdef enum:
    ALL_PANELS = 1 << 30


cdef inline real* cell_buffer_new(Py_ssize_t G, Py_ssize_t H, real* like) noexcept nogil:
    """malloc for the gate-interleaved pack of W_hh (G*H, H) on the current path
    (`like` only selects the dtype); NULL on failure."""
    cdef size_t n
    if real is float:
        n = fr_pack_cell_size_f(<int>G, <int>H)
    else:
        n = fr_pack_cell_size_d(<int>G, <int>H)
    return <real*>malloc(n * sizeof(real) + 64)


cdef inline void pack_cell_part(Py_ssize_t G, Py_ssize_t H, const real* w_hh, real* wp,
                                int pa, int pb) noexcept nogil:
    """Gate-interleaved pack of panels [pa, pb) of W_hh (ALL_PANELS: every panel)."""
    if real is float:
        fr_pack_cell_f(<int>G, <int>H, w_hh, wp, pa, pb)
    else:
        fr_pack_cell_d(<int>G, <int>H, w_hh, wp, pa, pb)


cdef inline real* input_buffer_new(Py_ssize_t G, Py_ssize_t H, Py_ssize_t I,
                                   real* like) noexcept nogil:
    """malloc for W_ih (G*H, I) packed like W_hh (fused input projection); NULL on
    failure."""
    cdef size_t n
    if real is float:
        n = fr_pack_input_size_f(<int>G, <int>H, <int>I)
    else:
        n = fr_pack_input_size_d(<int>G, <int>H, <int>I)
    return <real*>malloc(n * sizeof(real) + 64)


cdef inline void pack_input_part(Py_ssize_t G, Py_ssize_t H, Py_ssize_t I,
                                 const real* w_ih, real* wp, int pa, int pb) noexcept nogil:
    """Panels [pa, pb) of W_ih packed like W_hh's (ALL_PANELS: every panel)."""
    if real is float:
        fr_pack_input_f(<int>G, <int>H, <int>I, w_ih, wp, pa, pb)
    else:
        fr_pack_input_d(<int>G, <int>H, <int>I, w_ih, wp, pa, pb)


# The step computes the input projection in its own tiles (src/fr_kern_impl.h,
# FR_FUSED_DRIVER: why) while the two packed weights of one step stay within this many
# bytes and every thread has at least FUSE_INPUT_ROWS rows. C harness, one thread, LSTM,
# hoisted -> fused (ms, median; B, I, H, bytes of both packed weights):
#   16, 64, 128 (0.4 MB)  4.33 -> 3.80     32, 128, 256 (1.5 MB)  31.7 -> 27.9
#   32, 256, 256 (2 MB)   36.2 -> 34.8     32, 64, 512 (4.7 MB)   41.6 -> 39.0
#   32, 256, 512 (6.3 MB) 54.9 -> 55.7     32, 512, 512 (8 MB)    78.9 -> 85.3
#   8, 1024, 1024 (32 MB) 104 -> 132       4, 64, 128             0.96 -> 0.87
#   2, 64, 128            0.623 -> 0.625   1, 64, 128             0.475 -> 0.522
# Past the caches each step streams W_ih again, where the hoisted GEMM reuses each of
# its panels for all T*B rows; with 1-2 rows the step's tiles are too thin to pay.
cdef enum:
    FUSE_INPUT_BYTES = 5 << 20
    FUSE_INPUT_ROWS = 4


cdef inline bint fuse_input(Py_ssize_t G, Py_ssize_t H, Py_ssize_t I, Py_ssize_t rows,
                            size_t itemsize) noexcept nogil:
    """Compute the input projection inside the fused steps (see FUSE_INPUT_BYTES)?
    fr_fuse_input_mode() (a test hook, kernels._set_fuse_input) forces it off (0) or
    on (1) wherever the fused step runs with a batch split; -1: the measured rule."""
    cdef int mode = fr_fuse_input_mode()
    if mode >= 0:
        return mode == 1
    return rows >= FUSE_INPUT_ROWS and <size_t>(G * H * (I + H)) * itemsize <= FUSE_INPUT_BYTES


cdef inline void lstm_step(Py_ssize_t nb, Py_ssize_t H, int pa, int pb, const real* hp,
                           const real* wp, const real* g, const real* xin, Py_ssize_t ldx,
                           Py_ssize_t I, const real* wpx, const real* bias, const real* cp,
                           real* h_out, real* c_out, real* gates_out,
                           const unsigned char* mask) noexcept nogil:
    """Fused LSTM step over panels [pa, pb) (ALL_PANELS: every panel); wpx != NULL:
    the input projection of xin (nb rows, ldx apart) in the tiles, g not read."""
    if real is float:
        fr_lstm_step_f(<int>nb, <int>H, pa, pb, hp, wp, g, xin, <int>ldx, <int>I, wpx,
                       bias, cp, h_out, c_out, gates_out, mask)
    else:
        fr_lstm_step_d(<int>nb, <int>H, pa, pb, hp, wp, g, xin, <int>ldx, <int>I, wpx,
                       bias, cp, h_out, c_out, gates_out, mask)


cdef inline void gru_step(Py_ssize_t nb, Py_ssize_t H, int pa, int pb, const real* hp,
                          const real* wp, const real* gi, const real* xin, Py_ssize_t ldx,
                          Py_ssize_t I, const real* wpx, const real* bias_rz,
                          const real* b_in, const real* b_hn, real* h_out, real* gates_out,
                          real* hn_out, const unsigned char* mask) noexcept nogil:
    """Fused GRU step over panels [pa, pb) (ALL_PANELS: every panel); wpx as lstm_step."""
    if real is float:
        fr_gru_step_f(<int>nb, <int>H, pa, pb, hp, wp, gi, xin, <int>ldx, <int>I, wpx,
                      bias_rz, b_in, b_hn, h_out, gates_out, hn_out, mask)
    else:
        fr_gru_step_d(<int>nb, <int>H, pa, pb, hp, wp, gi, xin, <int>ldx, <int>I, wpx,
                      bias_rz, b_in, b_hn, h_out, gates_out, hn_out, mask)


cdef inline void elman_step(Py_ssize_t nb, Py_ssize_t H, int pa, int pb, int act,
                            const real* hp, const real* wp, const real* g, const real* xin,
                            Py_ssize_t ldx, Py_ssize_t I, const real* wpx, const real* bias,
                            real* h_out, const unsigned char* mask) noexcept nogil:
    """Fused Elman step over panels [pa, pb) (ALL_PANELS: every panel); wpx as
    lstm_step."""
    if real is float:
        fr_elman_step_f(<int>nb, <int>H, pa, pb, act, hp, wp, g, xin, <int>ldx, <int>I,
                        wpx, bias, h_out, mask)
    else:
        fr_elman_step_d(<int>nb, <int>H, pa, pb, act, hp, wp, g, xin, <int>ldx, <int>I,
                        wpx, bias, h_out, mask)


cdef inline int cell_panels(Py_ssize_t G, Py_ssize_t H, bint is_float) noexcept nogil:
    """Panels (units of the hidden-unit split) of the fused steps on the current path."""
    if is_float:
        return fr_cell_panels_f(<int>G, <int>H)
    return fr_cell_panels_d(<int>G, <int>H)


cdef inline void barrier_reset(fr_team_barrier* b) noexcept nogil:
    """Zero a barrier before the parallel region that uses it."""
    b.count = 0
    b.gen = 0


cdef inline void team_barrier(fr_team_barrier* b, int n) noexcept nogil:
    """Wait until the n threads of a hidden-unit split reach this point (b zeroed by
    the caller before the parallel region; see fr_kern.c for why not OpenMP's)."""
    fr_team_barrier_wait(b, n)


cdef enum:
    # multiply-adds per step (B*G*H*H) from which a batch too small to split over the
    # threads splits the hidden units instead (see split_units_threads)
    SPLIT_UNITS_MACS = 1 << 15


cdef inline int split_units_threads(Py_ssize_t B, Py_ssize_t G, Py_ssize_t H, int nt,
                                    int nrows, int npanels) noexcept nogil:
    """Threads for the hidden-unit split of the recurrence, or 1 (don't split).

    Used only when the batch split gives one thread (too few rows: pick_threads). Each
    thread then computes its panels of every step for all rows and the team meets at a
    barrier per step (all of h_t is read at t + 1). It pays when each thread's share of
    a step is large next to the barrier (a few hundred ns) and every thread gets >= 2
    panels: B*G*H*H >= SPLIT_UNITS_MACS multiply-adds per step, i.e. an LSTM or GRU of
    128 units at B = 1, an Elman cell of 182. Measured at B = 1, T = 100, I = 64, 2
    threads against 1 (10th / 50th percentile of 3000 calls, ms): LSTM(128) 0.38 / 0.46
    against 0.48 / 0.57, GRU(128) 0.23 / 0.28 against 0.31 / 0.42; in the benchmark's
    process (PyTorch and ONNX Runtime loaded) the LSTM row took 0.43-0.58 ms split
    against 0.62-0.72 ms, three runs each. (An older measurement there had LSTM(128)
    losing, 0.8-1.0 vs 0.45 ms; the threshold was 1M multiply-adds until then.)"""
    cdef int n = nt
    if not FR_HAVE_OMP or nrows > 1 or n < 2:
        return 1
    if B * G * H * H < SPLIT_UNITS_MACS:
        return 1
    if n > npanels // 2:
        n = npanels // 2
    return n if n >= 2 else 1


# Rows up to which a single step's recurrent product runs as one GEMV per row on the
# unpacked weights (each row reads W once; no packing, no BLAS). Above it a single step
# packs W (it reads W once, as BLAS's own packing would) and runs the engine's kernel:
# BLAS ?gemm would wake OpenBLAS's thread pool, whose workers then spin on the cores
# for ~0.1 s after the call, so a stream of small steps (generation with a few samples,
# B = 2) took 1-2 ms per step instead of ~0.1 ms.
cdef enum:
    STEP_GEMV_ROWS = 4


cdef inline bint use_fused(Py_ssize_t T, Py_ssize_t B) noexcept nogil:
    """Pack W_hh for the fused steps? Packing reads W_hh once, as one step's product
    does, so single-step calls on a few rows (streaming) keep the unpacked GEMV path."""
    return T > 1 or B > STEP_GEMV_ROWS


cdef inline real* pack_buffer_new(Py_ssize_t N, Py_ssize_t K, real* like) noexcept nogil:
    """malloc for W (N, K) packed for gemm_packed (`like` only selects the dtype)."""
    cdef size_t n
    if real is float:
        n = fr_pack_size_f(<int>N, <int>K)
    else:
        n = fr_pack_size_d(<int>N, <int>K)
    return <real*>malloc(n * sizeof(real) + 64)


cdef inline int pack_panels(Py_ssize_t N, bint is_float) noexcept nogil:
    """Panels of a W (N, K) packed for gemm_packed on the current path."""
    if is_float:
        return fr_pack_panels_f(<int>N)
    return fr_pack_panels_d(<int>N)


cdef inline void pack_part(Py_ssize_t N, Py_ssize_t K, const real* src, Py_ssize_t ld,
                           int trans, real* wp, int pa, int pb) noexcept nogil:
    """Pack panels [pa, pb) of W (N, K) (trans: W = src^T); ALL_PANELS: all."""
    if real is float:
        fr_pack_f(<int>N, <int>K, src, <int>ld, trans, wp, pa, pb)
    else:
        fr_pack_d(<int>N, <int>K, src, <int>ld, trans, wp, pa, pb)


cdef inline void team_pack(Py_ssize_t N, Py_ssize_t K, const real* src, Py_ssize_t ld,
                           int trans, real* wp, int npan, int tid, int nteam) noexcept nogil:
    """Thread `tid` of a team of `nteam` packs its share of W's `npan` panels
    (pack_part); the team then meets (team_barrier) before anyone reads wp."""
    pack_part(N, K, src, ld, trans, wp, (tid * npan) // nteam, ((tid + 1) * npan) // nteam)


cdef inline void gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const real* A,
                             Py_ssize_t lda, const real* wp, real* C, Py_ssize_t ldc,
                             int accumulate) noexcept nogil:
    if real is float:
        fr_gemm_packed_f(<int>M, <int>N, <int>K, A, <int>lda, wp, C, <int>ldc, accumulate)
    else:
        fr_gemm_packed_d(<int>M, <int>N, <int>K, A, <int>lda, wp, C, <int>ldc, accumulate)


cdef inline void gemv_dot(Py_ssize_t N, Py_ssize_t K, const real* W, Py_ssize_t ldw,
                          const real* x, real* y, int accumulate) noexcept nogil:
    if real is float:
        fr_gemv_dot_f(<int>N, <int>K, W, <int>ldw, x, y, accumulate)
    else:
        fr_gemv_dot_d(<int>N, <int>K, W, <int>ldw, x, y, accumulate)


cdef inline void gemv_axpy(Py_ssize_t N, Py_ssize_t K, const real* W, Py_ssize_t ldw,
                           const real* x, real* y) noexcept nogil:
    if real is float:
        fr_gemv_axpy_f(<int>N, <int>K, W, <int>ldw, x, y)
    else:
        fr_gemv_axpy_d(<int>N, <int>K, W, <int>ldw, x, y)


cdef inline void recur_fwd(Py_ssize_t nb, Py_ssize_t N, Py_ssize_t K, const real* hp,
                           const real* w, const real* wp, real* C, int accumulate) noexcept nogil:
    """Forward recurrent product of one step: C(nb, N) (+)= hp(nb, K) @ W^T, W (N, K).
    Without packed weights: one GEMV per row for a few rows, else BLAS (only reached
    when packing W failed for lack of memory)."""
    cdef Py_ssize_t r
    if nb == 1 or wp == NULL:
        if nb <= STEP_GEMV_ROWS:
            for r in range(nb):
                gemv_dot(N, K, w, K, hp + r * K, C + r * N, accumulate)
        else:
            gemm_rm(c'N', c'T', nb, N, K, <real>1, hp, K, w, K,
                    <real>(1 if accumulate else 0), C, N)
    else:
        gemm_packed(nb, N, K, hp, K, wp, C, N, accumulate)


cdef inline void recur_bwd(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t GH, const real* dg,
                           const real* w, const real* wpt, real* dh) noexcept nogil:
    """Backward recurrent product of one step: dh(nb, H) += dg(nb, GH) @ W (GH, H)."""
    if nb == 1:
        gemv_axpy(H, GH, w, H, dg, dh)
    elif wpt == NULL:
        gemm_rm(c'N', c'N', nb, H, GH, <real>1, dg, GH, w, H, <real>1, dh, H)
    else:
        gemm_packed(nb, H, GH, dg, GH, wpt, dh, H, 1)


cdef inline int pick_threads(Py_ssize_t B, Py_ssize_t G, Py_ssize_t H,
                             int nt) noexcept nogil:
    """Threads for the batch-split recurrence: every thread gets >= 2 rows and
    enough recurrent work per step (>= ~32k multiply-adds) to pay for itself."""
    cdef Py_ssize_t n = nt
    if not FR_HAVE_OMP:
        return 1
    if n > B // 2:
        n = B // 2
    while n > 1 and (B // n) * G * H * H < 32768:
        n -= 1
    return <int>(n if n >= 1 else 1)


cdef inline void input_proj(Py_ssize_t R, Py_ssize_t N, Py_ssize_t K, const real* X,
                            const real* W, real* C) noexcept nogil:
    """Hoisted input projection C(R, N) = X(R, K) @ W^T, W (N, K). A handful of
    rows (streaming calls) go through the GEMV kernel: BLAS ?gemm would pack W
    on every call, which costs more than the product itself."""
    cdef Py_ssize_t r
    if R <= 4:
        for r in range(R):
            gemv_dot(N, K, W, K, X + r * K, C + r * N, 0)
    else:
        gemm_rm(c'N', c'T', R, N, K, <real>1, X, K, W, K, <real>0, C, N)


cdef inline int project(Py_ssize_t R, Py_ssize_t N, Py_ssize_t K, const real* X,
                        const real* W, Py_ssize_t ldw, int trans, real* C,
                        int nt) noexcept nogil:
    """C(R, N) = X(R, K) @ op^T with op = W (N, K) (trans=0) or W^T for W (K, N)
    (trans=1). Own kernels only (no BLAS thread pool): GEMV for <= 4 rows,
    otherwise W packed once and the rows split over up to `nt` OpenMP threads
    (>= ~4 MFLOP each). Returns -1 if the packing buffer could not be allocated
    (C untouched), else 0."""
    cdef Py_ssize_t r, r0 = 0, r1 = 0, per
    cdef int nthr, tid = 0, nteam = 1, npan
    cdef unsigned int csr_t = 0
    cdef real* wp
    cdef fr_team_barrier bar
    if R <= 4 and trans == 0:
        for r in range(R):
            gemv_dot(N, K, W, ldw, X + r * K, C + r * N, 0)
        return 0
    wp = pack_buffer_new(N, K, <real*>NULL)
    if wp == NULL:
        return -1
    nthr = nt if FR_HAVE_OMP else 1
    while nthr > 1 and 2 * R * N * K < nthr * 4000000:
        nthr -= 1
    if nthr > R // 6:
        nthr = <int>(R // 6) if R >= 12 else 1
    if nthr > 1:
        # the team packs W (its share of the panels each), meets, then splits the rows
        npan = pack_panels(N, real is float)
        barrier_reset(&bar)
        with parallel(num_threads=nthr):
            tid = threadid()
            # the team may be smaller than asked: size the slices by the real team
            nteam = team_size()
            csr_t = fr_ftz_enter()
            team_pack(N, K, W, ldw, trans, wp, npan, tid, nteam)
            team_barrier(&bar, nteam)
            per = (R + nteam - 1) // nteam
            per = ((per + 5) // 6) * 6
            r0 = tid * per
            r1 = r0 + per
            if r1 > R:
                r1 = R
            if r0 < r1:
                gemm_packed(r1 - r0, N, K, X + r0 * K, K, wp, C + r0 * N, N, 0)
            fr_ftz_exit(csr_t)
    else:
        pack_part(N, K, W, ldw, trans, wp, 0, ALL_PANELS)
        gemm_packed(R, N, K, X, K, wp, C, N, 0)
    free(wp)
    return 0


cdef inline void product(Py_ssize_t R, Py_ssize_t N, Py_ssize_t K, const real* X,
                         const real* W, Py_ssize_t ldw, int trans, real* C,
                         int nt) noexcept nogil:
    """C(R, N) = X(R, K) @ op^T as project() computes it; when the packed copy of W
    cannot be allocated, BLAS on the calling thread instead (same result)."""
    if project(R, N, K, X, W, ldw, trans, C, nt) < 0:
        if trans:
            gemm_rm(c'N', c'N', R, N, K, <real>1, X, K, W, ldw, <real>0, C, N)
        else:
            gemm_rm(c'N', c'T', R, N, K, <real>1, X, K, W, ldw, <real>0, C, N)


ctypedef int (*blas_local_fn)(int) noexcept nogil


cdef inline void weight_grads(Py_ssize_t R, Py_ssize_t GH, Py_ssize_t I, Py_ssize_t H,
                              const real* dGi, const real* dGh, const real* X,
                              const real* Hs, real* dw_ih, real* dw_hh, int nt,
                              size_t blas_local) noexcept nogil:
    """dW_ih = dGi^T @ X (GH, I) and dW_hh = dGh^T @ Hs (GH, H), each one product over
    R = T*B rows (gemm_tn: the engine's kernel, BLAS on the baseline path). BLAS runs
    single-threaded in every calling thread (OpenBLAS's thread-local setting, when
    `blas_local` points at it); large products split the GH output rows over up to
    `nt` OpenMP threads, so one thread pool serves the whole engine."""
    cdef blas_local_fn setter = <blas_local_fn>blas_local
    cdef int nthr = nt if FR_HAVE_OMP else 1
    cdef int tid = 0, prev = 0, nteam = 1
    cdef Py_ssize_t m0 = 0, m1 = 0, per
    while nthr > 1 and 2 * GH * (I + H) * R < nthr * 4000000:
        nthr -= 1
    if setter == NULL or GH < 16:
        nthr = 1
    if nthr > 1:
        per = (GH + nthr - 1) // nthr
        per = ((per + 15) // 16) * 16
        with parallel(num_threads=nthr):
            tid = threadid()
            prev = setter(1)
            nteam = team_size()
            per = (GH + nteam - 1) // nteam
            per = ((per + 15) // 16) * 16
            m0 = tid * per
            m1 = m0 + per
            if m1 > GH:
                m1 = GH
            if m0 < m1:
                gemm_tn(m1 - m0, I, R, dGi + m0, GH, X, I, dw_ih + m0 * I, I)
                gemm_tn(m1 - m0, H, R, dGh + m0, GH, Hs, H, dw_hh + m0 * H, H)
            setter(prev)
    else:
        if setter != NULL:
            prev = setter(1)
        gemm_tn(GH, I, R, dGi, GH, X, I, dw_ih, I)
        gemm_tn(GH, H, R, dGh, GH, Hs, H, dw_hh, H)
        if setter != NULL:
            setter(prev)


# ---------------------------------------------------------------- recurrent dropout
# Keras / Gal recurrent dropout: one (B, H) mask per sequence (already scaled by
# 1 / (1 - rate)) multiplies h_{t-1} where it enters the recurrent product ONLY.
# The fused step kernels read one h_prev for the product and for the state carry,
# so the drivers give them hm = h_{t-1} * m and repair the few outputs that must
# see the unmasked state with the O(rows * H) passes below (next to the
# O(rows * G * H * H) product they are noise). Rows are contiguous: a thread's
# rows [b0, b0 + nb) of h, m, hm are one flat block of nb * H values.

cdef inline void rdrop_mul(Py_ssize_t n, const real* h, const real* m,
                           real* out) noexcept nogil:
    """out[i] = h[i] * m[i] (the masked state the recurrent product sees)."""
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = h[i] * m[i]


cdef inline void rdrop_add(Py_ssize_t n, const real* src, const real* m,
                           real* dst) noexcept nogil:
    """dst[i] += src[i] * m[i] (backward: the product's dh_{t-1} through the mask)."""
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] += src[i] * m[i]


cdef inline void rdrop_carry(Py_ssize_t nb, Py_ssize_t H, const real* hp, real* h_out,
                             const unsigned char* mask) noexcept nogil:
    """Padded rows (mask 0) carry the UNMASKED h_{t-1}: the fused step copied hm."""
    cdef Py_ssize_t b, j
    cdef const real* s
    cdef real* d
    for b in range(nb):
        if not mask[b]:
            s = hp + b * H
            d = h_out + b * H
            for j in range(H):
                d[j] = s[j]


cdef inline void rdrop_gru_carry(Py_ssize_t nb, Py_ssize_t H, const real* hp,
                                 const real* gates, real* h_out,
                                 const unsigned char* mask) noexcept nogil:
    """GRU: h_t = n + z * (h_{t-1} - n) with the UNMASKED h_{t-1} (the fused step used
    hm there), from the stored post-activation gates (r, z, n rows of 3H); padded rows
    carry h_{t-1}. Same expression as the kernels' pointwise pass."""
    cdef Py_ssize_t b, j
    cdef const real* s
    cdef const real* z
    cdef const real* n
    cdef real* d
    for b in range(nb):
        s = hp + b * H
        d = h_out + b * H
        if mask != NULL and not mask[b]:
            for j in range(H):
                d[j] = s[j]
            continue
        z = gates + b * 3 * H + H
        n = z + H
        for j in range(H):
            d[j] = n[j] + z[j] * (s[j] - n[j])


cdef inline void recur_bwd_set(Py_ssize_t nb, Py_ssize_t H, Py_ssize_t GH, const real* dg,
                               const real* w, const real* wpt, real* out) noexcept nogil:
    """out(nb, H) = dg(nb, GH) @ W (GH, H): recur_bwd without accumulating."""
    cdef Py_ssize_t i
    if nb == 1:
        for i in range(H):
            out[i] = 0
        gemv_axpy(H, GH, w, H, dg, out)
    elif wpt == NULL:
        gemm_rm(c'N', c'N', nb, H, GH, <real>1, dg, GH, w, H, <real>0, out, H)
    else:
        gemm_packed(nb, H, GH, dg, GH, wpt, out, H, 0)


# ------------------------------------------------------------------ sequence drivers
# The three cells share their sequence drivers: everything but the per-row recurrence
# (the cell's `*_fwd_rows` / `*_bwd_rows`, reached through a callback and a context
# struct of the cell's arrays) is written once here: the input projection, the packing
# of W_hh, and how the recurrence is split over the engine's threads.

ctypedef void (*fwd_rows_fn)(void* ctx, const void* wp, const void* wpx, Py_ssize_t b0,
                             Py_ssize_t nb, int pa, int pb, fr_team_barrier* bar,
                             int nsync) noexcept nogil
ctypedef void (*bwd_rows_fn)(void* ctx, const void* wpt, Py_ssize_t b0,
                             Py_ssize_t nb) noexcept nogil


cdef inline void forward_sequence(fwd_rows_fn rows, void* ctx, Py_ssize_t T, Py_ssize_t B,
                                  Py_ssize_t I, Py_ssize_t G, Py_ssize_t H, const real* x,
                                  const real* w_ih, const real* w_hh, real* gx,
                                  bint may_split, int nthreads) noexcept nogil:
    """gx (T*B, G*H) = x (T*B, I) @ W_ih^T, then the recurrence: `rows(ctx, wp, wpx, b0,
    nb, pa, pb, bar, nsync)` runs rows [b0, b0+nb) over every step, on panels [pa, pb)
    of the packed W_hh `wp` (NULL: unfused path), meeting the other `nsync` threads at
    `bar` after every step when they split the hidden units. When `wpx` is not NULL
    (fuse_input: small weights, >= 4 rows per thread) there is no hoisted projection:
    wpx holds W_ih packed like W_hh and the fused steps compute x_t @ W_ih^T in their
    own tiles; gx is then not written here.

    Threads (see pick_threads, split_units_threads): the batch is split over the team
    for the whole sequence, or, with too few rows, the team splits the hidden units.
    Either way one parallel region does everything: each thread packs its share of
    W_ih's and W_hh's panels (in the hidden-unit split, the W_hh panels it will use,
    so they land in its own caches), the team meets, each computes its share of the
    projection's rows, and the team meets again before the first step. `may_split` is
    False when the hidden-unit split cannot run (recurrent dropout rewrites the rows'
    input per step). The caller has set FTZ/DAZ on the calling thread; every worker
    sets and restores its own."""
    cdef Py_ssize_t R = T * B, GH = G * H, r0 = 0, r1 = 0, b0 = 0, b1 = 0
    cdef int nthr, nsplit = 1, npan = 0, npi = 0, tid = 0, nteam = 1, p0 = 0, p1 = 0
    cdef unsigned int csr_t = 0
    cdef real* wp = NULL
    cdef real* wpi = NULL
    cdef real* wpx = NULL
    cdef fr_team_barrier bar
    nthr = pick_threads(B, G, H, nthreads)
    if use_fused(T, B):
        wp = cell_buffer_new(G, H, <real*>NULL)
    if wp != NULL:
        npan = cell_panels(G, H, real is float)
        if may_split and T > 1:
            nsplit = split_units_threads(B, G, H, nthreads, nthr, npan)
        if nsplit > 1:
            nthr = nsplit
        elif fuse_input(G, H, I, B // nthr, sizeof(real)):
            wpx = input_buffer_new(G, H, I, <real*>NULL)   # NULL: hoisted, as below
    elif use_fused(T, B):
        nthr = 1                   # no memory for the packed copy: serial, unfused
    if wp == NULL or nthr < 2:
        if wpx == NULL:
            product(R, GH, I, x, w_ih, I, 0, gx, nthreads)
        else:
            pack_input_part(G, H, I, w_ih, wpx, 0, ALL_PANELS)
        if wp != NULL:
            pack_cell_part(G, H, w_hh, wp, 0, ALL_PANELS)
        if nthr > 1:                   # unfused (wp == NULL, so wpx == NULL too)
            with parallel(num_threads=nthr):
                tid = threadid()
                # split by the team the runtime actually gave (OMP_THREAD_LIMIT,
                # OMP_DYNAMIC may give fewer threads than asked)
                nteam = team_size()
                b0 = (tid * B) // nteam
                b1 = ((tid + 1) * B) // nteam
                csr_t = fr_ftz_enter()
                rows(ctx, wp, NULL, b0, b1 - b0, 0, ALL_PANELS, NULL, 1)
                fr_ftz_exit(csr_t)
        else:
            rows(ctx, wp, wpx, 0, B, 0, ALL_PANELS, NULL, 1)
        free(wpx)
        free(wp)
        return
    if wpx == NULL:
        wpi = pack_buffer_new(GH, I, <real*>NULL)
        if wpi == NULL:
            product(R, GH, I, x, w_ih, I, 0, gx, nthreads)
        else:
            npi = pack_panels(GH, real is float)
    barrier_reset(&bar)
    with parallel(num_threads=nthr):
        tid = threadid()
        nteam = team_size()
        csr_t = fr_ftz_enter()
        p0 = (tid * npan) // nteam
        p1 = ((tid + 1) * npan) // nteam
        pack_cell_part(G, H, w_hh, wp, p0, p1)
        if wpx != NULL:
            # the steps compute the projection: W_ih packed like W_hh, same panels
            pack_input_part(G, H, I, w_ih, wpx, p0, p1)
        elif wpi != NULL:
            team_pack(GH, I, w_ih, I, 0, wpi, npi, tid, nteam)
            team_barrier(&bar, nteam)          # every row reads all of W_ih's panels
            r0 = (tid * R) // nteam
            r1 = ((tid + 1) * R) // nteam
            if r1 > r0:
                gemm_packed(r1 - r0, GH, I, x + r0 * I, I, wpi, gx + r0 * GH, GH, 0)
        # every thread's first step reads all rows of gx[0] (and, splitting the
        # batch, every panel of wp and wpx)
        team_barrier(&bar, nteam)
        if nsplit > 1:
            rows(ctx, wp, NULL, 0, B, p0, p1, &bar, nteam)
        else:
            b0 = (tid * B) // nteam
            b1 = ((tid + 1) * B) // nteam
            rows(ctx, wp, wpx, b0, b1 - b0, 0, ALL_PANELS, NULL, 1)
        fr_ftz_exit(csr_t)
    free(wpx)
    free(wpi)
    free(wp)


cdef inline void backward_sequence(bwd_rows_fn rows, void* ctx, Py_ssize_t B,
                                   Py_ssize_t G, Py_ssize_t H, const real* w_hh,
                                   int nthreads) noexcept nogil:
    """BPTT over the batch: `rows(ctx, wpt, b0, nb)` runs rows [b0, b0+nb) backwards
    over every step with W_hh^T packed in `wpt` (NULL for one row: GEMV on W_hh), the
    rows split over the team for the whole sequence (pick_threads)."""
    cdef int nthr, tid = 0, nteam = 1, npan = 0
    cdef Py_ssize_t b0 = 0, b1 = 0
    cdef unsigned int csr_t = 0
    cdef real* wpt = NULL
    cdef fr_team_barrier bar
    nthr = pick_threads(B, G, H, nthreads)
    if B > 1:
        wpt = pack_buffer_new(H, G * H, <real*>NULL)
        if wpt == NULL:
            nthr = 1
    if nthr > 1:
        npan = pack_panels(H, real is float)
        barrier_reset(&bar)
        with parallel(num_threads=nthr):
            tid = threadid()
            # split by the team the runtime actually gave (OMP_THREAD_LIMIT,
            # OMP_DYNAMIC may give fewer threads than asked)
            nteam = team_size()
            csr_t = fr_ftz_enter()
            # the team packs W_hh^T (its share of the panels each) and meets
            team_pack(H, G * H, w_hh, H, 1, wpt, npan, tid, nteam)
            team_barrier(&bar, nteam)
            b0 = (tid * B) // nteam
            b1 = ((tid + 1) * B) // nteam
            rows(ctx, wpt, b0, b1 - b0)
            fr_ftz_exit(csr_t)
    else:
        if wpt != NULL:
            pack_part(H, G * H, w_hh, H, 1, wpt, 0, ALL_PANELS)
        rows(ctx, wpt, 0, B)
    free(wpt)
