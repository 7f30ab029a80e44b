/* fastrnn C helpers: per-ISA kernels and their run-time dispatch.
 *
 * Design. The micro-kernels (fr_kern_impl.h) and the pointwise passes
 * (fr_cells_impl.h) are written once over GCC vector types of a width
 * parameter and compiled here several times, each inside a
 * `#pragma GCC target(...)` region:
 *   avx512   64-byte vectors (16 float / 8 double lanes), 24-accumulator tiles
 *            (generic 8 x 48, LSTM 6 x 64, GRU 8 x 48, Elman 8 x 48 floats)
 *   avx2     32-byte vectors, 12-accumulator tiles (6 x 16, 3 x 32, 4 x 24, 6 x 16)
 *   avx2w16  the avx512 tiling (64-byte vectors) compiled for AVX2, where GCC
 *            lowers each vector to a ymm pair: slow, but it runs the wide
 *            path's tiling, packing and edge handling on AVX2-only machines
 *            (selected only explicitly, for tests)
 *   baseline 16-byte vectors, no target attribute (SSE2 on x86-64, or whatever
 *            the compiler targets elsewhere)
 * Each build fills a table of function pointers (fr_ops_f / fr_ops_d). The table
 * in use is chosen ONCE, by CPUID at run time (__builtin_cpu_supports), never by
 * what the build machine has; fr_isa_set() lets the Python layer force a LOWER
 * path (FASTRNN_ISA) and refuses one the CPU lacks. The exported fr_* functions
 * declared in fr_common.h forward through the current table. Every extension
 * module links its own copy of this file, so the Python layer sets the ISA in
 * each module (fastrnn._engine.config).
 * Packed weight layouts depend on the vector width: a packed buffer must be used
 * with the table that packed it (each kernel call packs and runs under one
 * table; fr_isa_set() must not be called while kernels run).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1          /* sched_getcpu, sched_setaffinity, CPU_* (fr_team_place) */
#endif
#include <sched.h>
#include <stdlib.h>
#include "fr_common.h"
#include "fr_act.h"
#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define FR_MULTI_ISA 1
#else
#define FR_MULTI_ISA 0
#endif

#define FR_CAT3_(a, b, c) a##b##c
#define FR_CAT3(a, b, c) FR_CAT3_(a, b, c)

/* The implementation files are instantiated once per (ISA, dtype) below, through
 * fr_kern_isa.h (the ISA's parameters, then the include). */
typedef float fr_v4f __attribute__((vector_size(16)));
typedef double fr_v2d __attribute__((vector_size(16)));
typedef float fr_v8f __attribute__((vector_size(32)));
typedef double fr_v4d __attribute__((vector_size(32)));
typedef float fr_v16f __attribute__((vector_size(64)));
typedef double fr_v8d __attribute__((vector_size(64)));

/* ======================================================== baseline ===== */
#define FR_ISA baseline
#define FR_VEC_F fr_v4f
#define FR_VL_F 4
#define FR_VEC_D fr_v2d
#define FR_VL_D 2
#define MR_GEN 6
#define NV_GEN 2
#define MR_LSTM 2
#define MR_GRU 4
#define MR_ELM 6
#define U_ELM 2
#include "fr_kern_isa.h"

#if FR_MULTI_ISA
/* ============================================================ avx2 ===== */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FR_ISA avx2
#define FR_VEC_F fr_v8f
#define FR_VL_F 8
#define FR_VEC_D fr_v4d
#define FR_VL_D 4
#define MR_GEN 6
#define NV_GEN 2
#define MR_LSTM 3
#define MR_GRU 4
#define MR_ELM 6
#define U_ELM 2
#include "fr_kern_isa.h"

/* ====================== avx2w16: the wide tiling lowered to AVX2 ===== */
#define FR_ISA avx2w16
#define FR_VEC_F fr_v16f
#define FR_VL_F 16
#define FR_VEC_D fr_v8d
#define FR_VL_D 8
#define MR_GEN 8
#define NV_GEN 3
#define MR_LSTM 6
#define MR_GRU 8
#define MR_ELM 8
#define U_ELM 3
#include "fr_kern_isa.h"
#pragma GCC pop_options

/* ========================================================== avx512 ===== */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define FR_ISA avx512
#define FR_VEC_F fr_v16f
#define FR_VL_F 16
#define FR_VEC_D fr_v8d
#define FR_VL_D 8
#define MR_GEN 8
#define NV_GEN 3
#define MR_LSTM 6
#define MR_GRU 8
#define MR_ELM 8
#define U_ELM 3
#include "fr_kern_isa.h"
#pragma GCC pop_options
#endif /* FR_MULTI_ISA */

/* ============================================================ tables ===== */
#define FR_OPS_STRUCT(R, NAME)                                                      \
    typedef struct {                                                                \
        int vl, u_gen, u_elm;                                                       \
        void (*pack)(int, int, int, int, const R *, int, int, R *, int, int);       \
        void (*gemm_packed)(int, int, int, const R *, int, const R *, R *, int, int);\
        void (*gemm_tn)(int, int, int, const R *, int, const R *, int, R *, int, int, R *);\
        void (*gemv_dot)(int, int, const R *, int, const R *, R *, int);            \
        void (*gemv_axpy)(int, int, const R *, int, const R *, R *);                \
        void (*lstm_step)(int, int, int, int, const R *, const R *, const R *,      \
                          const R *, int, int, const R *,                           \
                          const R *, const R *, R *, R *, R *,                      \
                          const unsigned char *);                                   \
        void (*gru_step)(int, int, int, int, const R *, const R *, const R *,       \
                         const R *, int, int, const R *,                            \
                         const R *, const R *, const R *, R *, R *, R *,            \
                         const unsigned char *);                                    \
        void (*elman_step)(int, int, int, int, int, const R *, const R *,           \
                           const R *, const R *, int, int, const R *,               \
                           const R *, R *, const unsigned char *);                  \
        void (*elman_fwd)(int, int, int, const R *, const R *, const R *, R *,      \
                          const unsigned char *);                                   \
        void (*elman_bwd)(int, int, int, const R *, const R *, const R *, R *, R *, \
                          const unsigned char *);                                   \
        void (*lstm_fwd)(int, int, const R *, const R *, const R *, const R *, R *, \
                         R *, R *, const unsigned char *);                          \
        void (*lstm_bwd)(int, int, const R *, const R *, const R *, const R *,      \
                         const R *, R *, R *, R *, const unsigned char *);          \
        void (*gru_fwd)(int, int, const R *, const R *, const R *, const R *,       \
                        const R *, const R *, R *, R *, R *, const unsigned char *); \
        void (*gru_bwd)(int, int, const R *, const R *, const R *, const R *,       \
                        const R *, R *, R *, R *, const unsigned char *);           \
        void (*colsum_add)(int, int, const R *, R *);                               \
        void (*act)(int, int, const R *, R *);                                      \
    } NAME;
FR_OPS_STRUCT(float, fr_ops_f)
FR_OPS_STRUCT(double, fr_ops_d)

#define FR_OPS_INIT(D, ISA, VLV, UGEN, UELM)                                        \
    { VLV, UGEN, UELM,                                                              \
      FR_CAT3(pack, D, ISA), FR_CAT3(gemm_packed, D, ISA),                          \
      FR_CAT3(gemm_tn, D, ISA),                                                     \
      FR_CAT3(gemv_dot, D, ISA), FR_CAT3(gemv_axpy, D, ISA),                        \
      FR_CAT3(lstm_step, D, ISA), FR_CAT3(gru_step, D, ISA),                        \
      FR_CAT3(elman_step, D, ISA),                                                  \
      FR_CAT3(fr_elman_fwd, D, ISA), FR_CAT3(fr_elman_bwd, D, ISA),                 \
      FR_CAT3(fr_lstm_fwd, D, ISA), FR_CAT3(fr_lstm_bwd, D, ISA),                   \
      FR_CAT3(fr_gru_fwd, D, ISA), FR_CAT3(fr_gru_bwd, D, ISA),                     \
      FR_CAT3(fr_colsum_add, D, ISA), FR_CAT3(fr_act, D, ISA) }

/* index = FR_ISA_* level (fr_common.h) */
static const fr_ops_f fr_ops_f_all[4] = {
    FR_OPS_INIT(_f_, baseline, 4, 2, 2),
#if FR_MULTI_ISA
    FR_OPS_INIT(_f_, avx2, 8, 2, 2),
    FR_OPS_INIT(_f_, avx2w16, 16, 3, 3),
    FR_OPS_INIT(_f_, avx512, 16, 3, 3),
#endif
};
static const fr_ops_d fr_ops_d_all[4] = {
    FR_OPS_INIT(_d_, baseline, 2, 2, 2),
#if FR_MULTI_ISA
    FR_OPS_INIT(_d_, avx2, 4, 2, 2),
    FR_OPS_INIT(_d_, avx2w16, 8, 3, 3),
    FR_OPS_INIT(_d_, avx512, 8, 3, 3),
#endif
};

static int fr_isa_level = -1;            /* -1: not chosen yet */
static const fr_ops_f *fr_of = &fr_ops_f_all[0];
static const fr_ops_d *fr_od = &fr_ops_d_all[0];

int fr_isa_supported(int level)
{
    if (level == FR_ISA_BASELINE) return 1;
#if FR_MULTI_ISA
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (level == FR_ISA_AVX2 || level == FR_ISA_AVX2W16) return avx2;
    if (level == FR_ISA_AVX512)
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

int fr_isa_best(void)
{
    if (fr_isa_supported(FR_ISA_AVX512)) return FR_ISA_AVX512;
    if (fr_isa_supported(FR_ISA_AVX2)) return FR_ISA_AVX2;
    return FR_ISA_BASELINE;
}

int fr_isa_set(int level)
{
    if (level < 0 || level > FR_ISA_AVX512 || !fr_isa_supported(level)) return -1;
    fr_of = &fr_ops_f_all[level];
    fr_od = &fr_ops_d_all[level];
    fr_isa_level = level;
    return 0;
}

FR_INLINE void fr_isa_init(void)
{
    if (__builtin_expect(fr_isa_level < 0, 0)) fr_isa_set(fr_isa_best());
}

int fr_isa_get(void)
{
    fr_isa_init();
    return fr_isa_level;
}

/* ============================================= exported entry points ===== */
#define FR_OPS_F (fr_isa_init(), fr_of)
#define FR_OPS_D (fr_isa_init(), fr_od)

static size_t fr_pack_elems(int vl, int G, int H, int K, int U)
{
    size_t uv = (size_t)U * vl;
    return (((size_t)H + uv - 1) / uv) * uv * (size_t)G * (size_t)K;
}

size_t fr_pack_size_f(int N, int K) { const fr_ops_f *o = FR_OPS_F; return fr_pack_elems(o->vl, 1, N, K, o->u_gen); }
size_t fr_pack_size_d(int N, int K) { const fr_ops_d *o = FR_OPS_D; return fr_pack_elems(o->vl, 1, N, K, o->u_gen); }
void fr_pack_f(int N, int K, const float *src, int ld, int trans, float *Wp, int pa, int pb)
{ const fr_ops_f *o = FR_OPS_F; o->pack(1, N, K, o->u_gen, src, ld, trans, Wp, pa, pb); }
void fr_pack_d(int N, int K, const double *src, int ld, int trans, double *Wp, int pa, int pb)
{ const fr_ops_d *o = FR_OPS_D; o->pack(1, N, K, o->u_gen, src, ld, trans, Wp, pa, pb); }
int fr_pack_panels_f(int N)
{ const fr_ops_f *o = FR_OPS_F; int nr = o->u_gen * o->vl; return (N + nr - 1) / nr; }
int fr_pack_panels_d(int N)
{ const fr_ops_d *o = FR_OPS_D; int nr = o->u_gen * o->vl; return (N + nr - 1) / nr; }

/* cell packing: G = 4 / 3 (one vector of units per gate) or 1 (Elman). A matrix
 * (G*H, K) with rows in PyTorch gate-blocked order goes into the gate-interleaved
 * panels of the fused steps: W_hh with K = H, and W_ih with K = nx for the steps
 * that compute the input projection in their tiles. */
static int fr_cell_u(int G, int u_elm) { return G == 1 ? u_elm : 1; }
size_t fr_pack_input_size_f(int G, int H, int nx)
{ const fr_ops_f *o = FR_OPS_F; return fr_pack_elems(o->vl, G, H, nx, fr_cell_u(G, o->u_elm)); }
size_t fr_pack_input_size_d(int G, int H, int nx)
{ const fr_ops_d *o = FR_OPS_D; return fr_pack_elems(o->vl, G, H, nx, fr_cell_u(G, o->u_elm)); }
void fr_pack_input_f(int G, int H, int nx, const float *w_ih, float *Wp, int pa, int pb)
{ const fr_ops_f *o = FR_OPS_F; o->pack(G, H, nx, fr_cell_u(G, o->u_elm), w_ih, nx, 0, Wp, pa, pb); }
void fr_pack_input_d(int G, int H, int nx, const double *w_ih, double *Wp, int pa, int pb)
{ const fr_ops_d *o = FR_OPS_D; o->pack(G, H, nx, fr_cell_u(G, o->u_elm), w_ih, nx, 0, Wp, pa, pb); }
size_t fr_pack_cell_size_f(int G, int H) { return fr_pack_input_size_f(G, H, H); }
size_t fr_pack_cell_size_d(int G, int H) { return fr_pack_input_size_d(G, H, H); }
void fr_pack_cell_f(int G, int H, const float *w_hh, float *Wp, int pa, int pb)
{ fr_pack_input_f(G, H, H, w_hh, Wp, pa, pb); }
void fr_pack_cell_d(int G, int H, const double *w_hh, double *Wp, int pa, int pb)
{ fr_pack_input_d(G, H, H, w_hh, Wp, pa, pb); }

void fr_gemm_packed_f(int M, int N, int K, const float *A, int lda, const float *Wp,
                      float *C, int ldc, int accumulate)
{ FR_OPS_F->gemm_packed(M, N, K, A, lda, Wp, C, ldc, accumulate); }
void fr_gemm_packed_d(int M, int N, int K, const double *A, int lda, const double *Wp,
                      double *C, int ldc, int accumulate)
{ FR_OPS_D->gemm_packed(M, N, K, A, lda, Wp, C, ldc, accumulate); }
/* The weight gradients' product. Why not BLAS: OpenBLAS re-packed dG (T*B x G*H) for
 * each of dW_ih and dW_hh, 10% of an LSTM(128) training step on one thread, and its
 * 48-column blocks computed 96 columns for I = 64. On the baseline path (SSE2) its
 * kernels are the faster ones (43 against 21 GFLOP/s at 1600 x 512 x 64), so there
 * the caller keeps BLAS: the functions return 1 without touching C. */
#define FR_GEMM_TN_BODY(R, OPS)                                                          \
    const OPS *o = FR_OPS_##R;                                                           \
    if (fr_isa_level == 0) return 1;                                                     \
    const size_t nr = (size_t)o->u_gen * o->vl, np = ((size_t)N + nr - 1) / nr;          \
    void *w = malloc(sizeof(*C) * FR_KC * np * nr);                                      \
    if (!w) return -1;                                                                   \
    o->gemm_tn(M, N, K, A, lda, B, ldb, C, ldc, accumulate, w);                          \
    free(w);                                                                             \
    return 0;
int fr_gemm_tn_f(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float *C, int ldc, int accumulate)
{ FR_GEMM_TN_BODY(F, fr_ops_f) }
int fr_gemm_tn_d(int M, int N, int K, const double *A, int lda, const double *B, int ldb,
                 double *C, int ldc, int accumulate)
{ FR_GEMM_TN_BODY(D, fr_ops_d) }
#undef FR_GEMM_TN_BODY

void fr_gemv_dot_f(int N, int K, const float *W, int ldw, const float *x, float *y, int acc)
{ FR_OPS_F->gemv_dot(N, K, W, ldw, x, y, acc); }
void fr_gemv_dot_d(int N, int K, const double *W, int ldw, const double *x, double *y, int acc)
{ FR_OPS_D->gemv_dot(N, K, W, ldw, x, y, acc); }
void fr_gemv_axpy_f(int N, int K, const float *W, int ldw, const float *x, float *y)
{ FR_OPS_F->gemv_axpy(N, K, W, ldw, x, y); }
void fr_gemv_axpy_d(int N, int K, const double *W, int ldw, const double *x, double *y)
{ FR_OPS_D->gemv_axpy(N, K, W, ldw, x, y); }

/* xin, ldx, nx, Wxp: the input projection computed in the step's tiles (Wxp = W_ih
 * packed by fr_pack_input_*), or Wxp = NULL and the hoisted projection in g / gi. */
void fr_lstm_step_f(int nb, int H, int pa, int pb, const float *hp, const float *Wp,
                    const float *g, const float *xin, int ldx, int nx, const float *Wxp,
                    const float *bias, const float *cp, float *h_out,
                    float *c_out, float *gates_out, const unsigned char *mask)
{ FR_OPS_F->lstm_step(nb, H, pa, pb, hp, Wp, g, xin, ldx, nx, Wxp, bias, cp, h_out, c_out,
                      gates_out, mask); }
void fr_lstm_step_d(int nb, int H, int pa, int pb, const double *hp, const double *Wp,
                    const double *g, const double *xin, int ldx, int nx, const double *Wxp,
                    const double *bias, const double *cp, double *h_out,
                    double *c_out, double *gates_out, const unsigned char *mask)
{ FR_OPS_D->lstm_step(nb, H, pa, pb, hp, Wp, g, xin, ldx, nx, Wxp, bias, cp, h_out, c_out,
                      gates_out, mask); }
void fr_gru_step_f(int nb, int H, int pa, int pb, const float *hp, const float *Wp,
                   const float *gi, const float *xin, int ldx, int nx, const float *Wxp,
                   const float *bias_rz, const float *b_in,
                   const float *b_hn, float *h_out, float *gates_out, float *hn_out,
                   const unsigned char *mask)
{ FR_OPS_F->gru_step(nb, H, pa, pb, hp, Wp, gi, xin, ldx, nx, Wxp, bias_rz, b_in, b_hn, h_out,
                     gates_out, hn_out, mask); }
void fr_gru_step_d(int nb, int H, int pa, int pb, const double *hp, const double *Wp,
                   const double *gi, const double *xin, int ldx, int nx, const double *Wxp,
                   const double *bias_rz, const double *b_in,
                   const double *b_hn, double *h_out, double *gates_out, double *hn_out,
                   const unsigned char *mask)
{ FR_OPS_D->gru_step(nb, H, pa, pb, hp, Wp, gi, xin, ldx, nx, Wxp, bias_rz, b_in, b_hn, h_out,
                     gates_out, hn_out, mask); }
void fr_elman_step_f(int nb, int H, int pa, int pb, int act, const float *hp,
                     const float *Wp, const float *g, const float *xin, int ldx, int nx,
                     const float *Wxp, const float *bias, float *h_out,
                     const unsigned char *mask)
{ FR_OPS_F->elman_step(nb, H, pa, pb, act, hp, Wp, g, xin, ldx, nx, Wxp, bias, h_out, mask); }
void fr_elman_step_d(int nb, int H, int pa, int pb, int act, const double *hp,
                     const double *Wp, const double *g, const double *xin, int ldx, int nx,
                     const double *Wxp, const double *bias, double *h_out,
                     const unsigned char *mask)
{ FR_OPS_D->elman_step(nb, H, pa, pb, act, hp, Wp, g, xin, ldx, nx, Wxp, bias, h_out, mask); }

/* Test hook: -1 lets the engine's rule decide whether the fused steps compute the
 * input projection in their tiles (common.pxd: fuse_input), 0 / 1 force it off / on
 * (for the tests of both paths and for A/B measurements). Per module, like the ISA. */
static int fr_fuse_input = -1;
int fr_fuse_input_mode(void) { return __atomic_load_n(&fr_fuse_input, __ATOMIC_RELAXED); }
void fr_fuse_input_set(int mode) { __atomic_store_n(&fr_fuse_input, mode, __ATOMIC_RELAXED); }

/* Panels of the fused steps for G gates and H units on the current path (the unit
 * of the hidden-unit split): VL units per panel, U_ELM * VL for Elman. */
int fr_cell_panels_f(int G, int H)
{ const fr_ops_f *o = FR_OPS_F; int uv = fr_cell_u(G, o->u_elm) * o->vl; return (H + uv - 1) / uv; }
int fr_cell_panels_d(int G, int H)
{ const fr_ops_d *o = FR_OPS_D; int uv = fr_cell_u(G, o->u_elm) * o->vl; return (H + uv - 1) / uv; }

/* Barrier for the n threads of a hidden-unit split, on shared state that the
 * caller zeroes before the parallel region: every thread reads all of h_t at
 * t + 1. Not OpenMP's barrier: in a Python process libgomp's default wait policy
 * spins only briefly before it sleeps in the kernel, and a futex sleep and wake
 * per step (tens of microseconds) cost 7x the steps it separates (measured: a
 * 128-unit LSTM at B = 1 took 3.8 ms on 2 threads against 0.55 ms on one;
 * 0.40 ms with GOMP_SPINCOUNT=300000). Here the waiters spin with `pause` for
 * about 0.1 ms, then yield the core on every check so that a machine with more
 * runnable threads than cores still makes progress.
 * Memory order: each arrival is an acq_rel add, the last arrival resets the
 * count and bumps the generation with release, waiters load it with acquire,
 * so every thread's writes before the barrier are visible after it. */
void fr_team_barrier_wait(fr_team_barrier *b, int n)
{
    if (n <= 1) return;
    const int gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&b->gen, 1, __ATOMIC_RELEASE);
        return;
    }
    int spins = 0;
    while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen) {
        if (spins < 4000) {
            spins++;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

void fr_elman_fwd_f(int nb, int H, int act, const float *g, const float *bias,
                    const float *h_prev, float *h_out, const unsigned char *mask)
{ FR_OPS_F->elman_fwd(nb, H, act, g, bias, h_prev, h_out, mask); }
void fr_elman_fwd_d(int nb, int H, int act, const double *g, const double *bias,
                    const double *h_prev, double *h_out, const unsigned char *mask)
{ FR_OPS_D->elman_fwd(nb, H, act, g, bias, h_prev, h_out, mask); }
void fr_elman_bwd_f(int nb, int H, int act, const float *h, const float *dy,
                    const float *dh_next, float *dG, float *dh_prev, const unsigned char *mask)
{ FR_OPS_F->elman_bwd(nb, H, act, h, dy, dh_next, dG, dh_prev, mask); }
void fr_elman_bwd_d(int nb, int H, int act, const double *h, const double *dy,
                    const double *dh_next, double *dG, double *dh_prev,
                    const unsigned char *mask)
{ FR_OPS_D->elman_bwd(nb, H, act, h, dy, dh_next, dG, dh_prev, mask); }
void fr_lstm_fwd_f(int nb, int H, const float *g, const float *bias, const float *h_prev,
                   const float *c_prev, float *h_out, float *c_out, float *gates_out,
                   const unsigned char *mask)
{ FR_OPS_F->lstm_fwd(nb, H, g, bias, h_prev, c_prev, h_out, c_out, gates_out, mask); }
void fr_lstm_fwd_d(int nb, int H, const double *g, const double *bias, const double *h_prev,
                   const double *c_prev, double *h_out, double *c_out, double *gates_out,
                   const unsigned char *mask)
{ FR_OPS_D->lstm_fwd(nb, H, g, bias, h_prev, c_prev, h_out, c_out, gates_out, mask); }
void fr_lstm_bwd_f(int nb, int H, const float *gates, const float *c, const float *c_prev,
                   const float *dy, const float *dh_next, float *dc, float *dG,
                   float *dh_prev, const unsigned char *mask)
{ FR_OPS_F->lstm_bwd(nb, H, gates, c, c_prev, dy, dh_next, dc, dG, dh_prev, mask); }
void fr_lstm_bwd_d(int nb, int H, const double *gates, const double *c, const double *c_prev,
                   const double *dy, const double *dh_next, double *dc, double *dG,
                   double *dh_prev, const unsigned char *mask)
{ FR_OPS_D->lstm_bwd(nb, H, gates, c, c_prev, dy, dh_next, dc, dG, dh_prev, mask); }
void fr_gru_fwd_f(int nb, int H, const float *gi, const float *gh, const float *bias_rz,
                  const float *b_in, const float *b_hn, const float *h_prev, float *h_out,
                  float *gates_out, float *hn_out, const unsigned char *mask)
{ FR_OPS_F->gru_fwd(nb, H, gi, gh, bias_rz, b_in, b_hn, h_prev, h_out, gates_out, hn_out, mask); }
void fr_gru_fwd_d(int nb, int H, const double *gi, const double *gh, const double *bias_rz,
                  const double *b_in, const double *b_hn, const double *h_prev, double *h_out,
                  double *gates_out, double *hn_out, const unsigned char *mask)
{ FR_OPS_D->gru_fwd(nb, H, gi, gh, bias_rz, b_in, b_hn, h_prev, h_out, gates_out, hn_out, mask); }
void fr_gru_bwd_f(int nb, int H, const float *gates, const float *hn, const float *h_prev,
                  const float *dy, const float *dh_next, float *dGi, float *dGh,
                  float *dh_prev, const unsigned char *mask)
{ FR_OPS_F->gru_bwd(nb, H, gates, hn, h_prev, dy, dh_next, dGi, dGh, dh_prev, mask); }
void fr_gru_bwd_d(int nb, int H, const double *gates, const double *hn, const double *h_prev,
                  const double *dy, const double *dh_next, double *dGi, double *dGh,
                  double *dh_prev, const unsigned char *mask)
{ FR_OPS_D->gru_bwd(nb, H, gates, hn, h_prev, dy, dh_next, dGi, dGh, dh_prev, mask); }
void fr_colsum_add_f(int rows, int n, const float *a, float *acc)
{ FR_OPS_F->colsum_add(rows, n, a, acc); }
void fr_colsum_add_d(int rows, int n, const double *a, double *acc)
{ FR_OPS_D->colsum_add(rows, n, a, acc); }
void fr_act_f(int kind, int n, const float *x, float *y) { FR_OPS_F->act(kind, n, x, y); }
void fr_act_d(int kind, int n, const double *x, double *y) { FR_OPS_D->act(kind, n, x, y); }

/* Worker placement (called by every thread at the start of each of the engine's
 * parallel regions, from team_size()). The master records the CPU it runs on; a
 * worker restricts itself to the process's CPUs minus that one (one syscall, and
 * only when the master's CPU changed since the worker's last placement).
 * Why: libgomp's workers sleep between calls, and when the master wakes one the
 * kernel's wake-affine placement often puts it on the master's own core, where
 * the two time-share until the load balancer moves one, milliseconds later.
 * Measured in the benchmark process (PyTorch and ONNX Runtime loaded, 2 cores):
 * a 2-thread LSTM at B = 16 took 5.5 ms against 4.1 ms on one thread, and the
 * hidden-unit split, whose threads meet every step, 6-10 ms against 0.45 ms,
 * in about half of the runs. The master is never pinned (the caller's thread
 * stays as it was); a worker's mask only ever excludes one CPU of the original
 * set, and correctness never depends on any of this. */
#if defined(__linux__) && defined(_OPENMP) && defined(CPU_COUNT)
static int fr_master_cpu = -1;
static __thread int fr_w_state = 0;       /* 0 unplaced, 1 placed, -1 cannot place */
static __thread int fr_w_excl = -1;       /* the CPU this worker avoids */
static __thread cpu_set_t fr_w_orig;      /* the worker's mask before any placement */

void fr_team_place(void)
{
    if (omp_get_num_threads() < 2) return;
    if (omp_get_thread_num() == 0) {
        __atomic_store_n(&fr_master_cpu, sched_getcpu(), __ATOMIC_RELAXED);
        return;
    }
    const int m = __atomic_load_n(&fr_master_cpu, __ATOMIC_RELAXED);
    if (m < 0 || fr_w_state < 0 || (fr_w_state == 1 && m == fr_w_excl)) return;
    if (fr_w_state == 0 && sched_getaffinity(0, sizeof fr_w_orig, &fr_w_orig) != 0) {
        fr_w_state = -1;
        return;
    }
    cpu_set_t s = fr_w_orig;
    if (m >= CPU_SETSIZE || !CPU_ISSET(m, &s) || CPU_COUNT(&s) < 2) {
        fr_w_state = -1;                  /* nothing to separate from */
        return;
    }
    CPU_CLR(m, &s);
    if (sched_setaffinity(0, sizeof s, &s) == 0) {
        fr_w_state = 1;
        fr_w_excl = m;
    } else {
        fr_w_state = -1;
    }
}
#else
void fr_team_place(void) {}
#endif
