/* fastrnn C helpers: shared declarations.
 *
 * Everything here is plain C99 plus optional GCC/Clang extensions:
 *   - per-ISA builds of the kernels under `#pragma GCC target` with a table of
 *     function pointers chosen once by CPUID (fr_kern.c);
 *   - `#pragma omp simd` loops, compiled with -fopenmp-simd when available.
 * Never compiled with -ffast-math: the activations rely on NaN comparisons.
 */
#ifndef FASTRNN_COMMON_H
#define FASTRNN_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Instruction-set paths (fr_kern.c): chosen once at run time by CPUID. */
#define FR_ISA_BASELINE 0
#define FR_ISA_AVX2 1
#define FR_ISA_AVX2W16 2   /* the AVX-512 tiling compiled for AVX2 (tests only) */
#define FR_ISA_AVX512 3
int fr_isa_supported(int level);  /* 1 if this CPU (and build) can run the path */
int fr_isa_best(void);            /* the fastest supported path */
int fr_isa_get(void);             /* the path in use in this module */
int fr_isa_set(int level);        /* 0, or -1 (unsupported: unchanged) */

#if defined(__GNUC__)
#define FR_INLINE static inline __attribute__((always_inline))
#define FR_RESTRICT __restrict__
#else
#define FR_INLINE static inline
#define FR_RESTRICT
#endif

#if defined(_OPENMP) || defined(FASTRNN_OMP_SIMD)
#define FR_PRAGMA(x) _Pragma(#x)
#define FR_SIMD FR_PRAGMA(omp simd)
#else
#define FR_SIMD
#endif

/* Floating point environment: flush-to-zero + denormals-are-zero. */
unsigned int fr_ftz_enter(void);
void fr_ftz_exit(unsigned int saved);

/* Runtime info. */

/* acc[j] += sum_r a[r*n + j] over rows (column sums of a row-major matrix). */
void fr_colsum_add_f(int rows, int n, const float *a, float *acc);
void fr_colsum_add_d(int rows, int n, const double *a, double *acc);

/* Test hooks: elementwise activations over a vector (used by the tests to
 * check accuracy at saturating ends and NaN propagation). kind: 0 sigmoid,
 * 1 tanh, 2 relu. */
void fr_act_f(int kind, int n, const float *x, float *y);
void fr_act_d(int kind, int n, const double *x, double *y);

/* ---- Elman ----------------------------------------------------------- */
/* g: [nb][H] pre-activation (x W_ih^T + h W_hh^T), bias: [H] (b_ih + b_hh).
 * Writes h_out; rows with mask==0 copy h_prev. act: 0 tanh, 1 relu. */
void fr_elman_fwd_f(int nb, int H, int act, const float *g, const float *bias,
                    const float *h_prev, float *h_out, const unsigned char *mask);
void fr_elman_fwd_d(int nb, int H, int act, const double *g, const double *bias,
                    const double *h_prev, double *h_out, const unsigned char *mask);
/* dh = dy + dh_next (dy may be NULL). dG = dh * act'(h). dh_prev_init = 0
 * (valid rows; the GEMM adds dG W_hh) or dh (masked rows). */
void fr_elman_bwd_f(int nb, int H, int act, const float *h, const float *dy,
                    const float *dh_next, float *dG, float *dh_prev,
                    const unsigned char *mask);
void fr_elman_bwd_d(int nb, int H, int act, const double *h, const double *dy,
                    const double *dh_next, double *dG, double *dh_prev,
                    const unsigned char *mask);

/* ---- LSTM ------------------------------------------------------------ */
/* g: [nb][4H] pre-activation without bias, gate order i f g o.
 * If gates_out != NULL, the post-activation gates are stored there ([nb][4H]).
 * Masked rows: h_out = h_prev, c_out = c_prev, gates_out row = 0. */
void fr_lstm_fwd_f(int nb, int H, const float *g, const float *bias,
                   const float *h_prev, const float *c_prev, float *h_out,
                   float *c_out, float *gates_out, const unsigned char *mask);
void fr_lstm_fwd_d(int nb, int H, const double *g, const double *bias,
                   const double *h_prev, const double *c_prev, double *h_out,
                   double *c_out, double *gates_out, const unsigned char *mask);
/* gates: post-activation [nb][4H]; c: c_t; c_prev: c_{t-1}; dc: in dc_t (from
 * t+1), out dc_{t-1} (in place). dG out [nb][4H]; dh_prev_init as Elman. */
void fr_lstm_bwd_f(int nb, int H, const float *gates, const float *c,
                   const float *c_prev, const float *dy, const float *dh_next,
                   float *dc, float *dG, float *dh_prev, const unsigned char *mask);
void fr_lstm_bwd_d(int nb, int H, const double *gates, const double *c,
                   const double *c_prev, const double *dy, const double *dh_next,
                   double *dc, double *dG, double *dh_prev, const unsigned char *mask);

/* ---- GRU (linear before reset) ---------------------------------------- */
/* gi: [nb][3H] x W_ih^T (no bias); gh: [nb][3H] h W_hh^T (no bias).
 * bias_rz: [2H] (b_ih + b_hh for r, z); b_in, b_hn: [H].
 * If gates_out != NULL store r, z, n ([nb][3H]) and hn = gh_n + b_hn ([nb][H]). */
void fr_gru_fwd_f(int nb, int H, const float *gi, const float *gh,
                  const float *bias_rz, const float *b_in, const float *b_hn,
                  const float *h_prev, float *h_out, float *gates_out,
                  float *hn_out, const unsigned char *mask);
void fr_gru_fwd_d(int nb, int H, const double *gi, const double *gh,
                  const double *bias_rz, const double *b_in, const double *b_hn,
                  const double *h_prev, double *h_out, double *gates_out,
                  double *hn_out, const unsigned char *mask);
/* dGi: gradient wrt the input-side pre-activations [r z n] ([nb][3H]);
 * dGh: wrt the recurrent-side ones ([r z r*dn]); dh_prev_init = dh*z (valid)
 * or dh (masked). */
void fr_gru_bwd_f(int nb, int H, const float *gates, const float *hn,
                  const float *h_prev, const float *dy, const float *dh_next,
                  float *dGi, float *dGh, float *dh_prev, const unsigned char *mask);
void fr_gru_bwd_d(int nb, int H, const double *gates, const double *hn,
                  const double *h_prev, const double *dy, const double *dh_next,
                  double *dGi, double *dGh, double *dh_prev, const unsigned char *mask);

/* ---- per-step recurrent matrix kernels (fr_gemm.c) ------------------- */
/* Packed W for C(M, N) (+)= A(M, K) @ W^T: fr_pack_size(N, K) elements.
 * trans == 0: W[n][k] = src[n*ld + k]; trans == 1: W[n][k] = src[k*ld + n]. */
size_t fr_pack_size_f(int N, int K);
size_t fr_pack_size_d(int N, int K);
/* only panels [pa, pb) are written (pb >= fr_pack_panels: all) */
void fr_pack_f(int N, int K, const float *src, int ld, int trans, float *Wp, int pa, int pb);
void fr_pack_d(int N, int K, const double *src, int ld, int trans, double *Wp, int pa, int pb);
int fr_pack_panels_f(int N);
int fr_pack_panels_d(int N);
void fr_gemm_packed_f(int M, int N, int K, const float *A, int lda, const float *Wp,
                      float *C, int ldc, int accumulate);
void fr_gemm_packed_d(int M, int N, int K, const double *A, int lda, const double *Wp,
                      double *C, int ldc, int accumulate);
/* Gate-interleaved packing of W_hh (G*H, H) for the fused steps (G = 4 LSTM,
 * 3 GRU, 1 Elman); layout in fr_kern_impl.h. */
size_t fr_pack_cell_size_f(int G, int H);
size_t fr_pack_cell_size_d(int G, int H);
/* only panels [pa, pb) are written (pb >= fr_cell_panels: all) */
void fr_pack_cell_f(int G, int H, const float *w_hh, float *Wp, int pa, int pb);
void fr_pack_cell_d(int G, int H, const double *w_hh, double *Wp, int pa, int pb);
/* -1: the engine decides where the fused steps compute the input projection;
 * 0 / 1 force it off / on (a test hook; per module) */
int fr_fuse_input_mode(void);
void fr_fuse_input_set(int mode);
/* W_ih (G*H, nx) packed like W_hh (same panels, K = nx), for the fused steps that
 * compute the input projection in their tiles; only panels [pa, pb) written */
size_t fr_pack_input_size_f(int G, int H, int nx);
size_t fr_pack_input_size_d(int G, int H, int nx);
void fr_pack_input_f(int G, int H, int nx, const float *w_ih, float *Wp, int pa, int pb);
void fr_pack_input_d(int G, int H, int nx, const double *w_ih, double *Wp, int pa, int pb);
/* Fused recurrent steps for nb rows (pointers at the first row): the recurrent
 * product of every register tile is followed, while in L1, by the cell's
 * pointwise update (same contracts as the *_fwd passes above; g / gi are the
 * input projections without bias, gates_out may alias them). With Wxp != NULL
 * (fr_pack_input_*) g / gi are not read: the input projection of x (nb rows of
 * nx values, ldx apart) is computed in the same tiles. */
void fr_lstm_step_f(int nb, int H, int pa, int pb, const float *hp, const float *Wp,
                    const float *g, const float *xin, int ldx, int nx, const float *Wxp,
                    const float *bias, const float *cp, float *h_out,
                    float *c_out, float *gates_out, const unsigned char *mask);
void fr_lstm_step_d(int nb, int H, int pa, int pb, const double *hp, const double *Wp,
                    const double *g, const double *xin, int ldx, int nx, const double *Wxp,
                    const double *bias, const double *cp, double *h_out,
                    double *c_out, double *gates_out, const unsigned char *mask);
void fr_gru_step_f(int nb, int H, int pa, int pb, const float *hp, const float *Wp,
                   const float *gi, const float *xin, int ldx, int nx, const float *Wxp,
                   const float *bias_rz, const float *b_in,
                   const float *b_hn, float *h_out, float *gates_out, float *hn_out,
                   const unsigned char *mask);
void fr_gru_step_d(int nb, int H, int pa, int pb, const double *hp, const double *Wp,
                   const double *gi, const double *xin, int ldx, int nx, const double *Wxp,
                   const double *bias_rz, const double *b_in,
                   const double *b_hn, double *h_out, double *gates_out, double *hn_out,
                   const unsigned char *mask);
void fr_elman_step_f(int nb, int H, int pa, int pb, int act, const float *hp,
                     const float *Wp, const float *g, const float *xin, int ldx, int nx,
                     const float *Wxp, const float *bias, float *h_out,
                     const unsigned char *mask);
void fr_elman_step_d(int nb, int H, int pa, int pb, int act, const double *hp,
                     const double *Wp, const double *g, const double *xin, int ldx, int nx,
                     const double *Wxp, const double *bias, double *h_out,
                     const unsigned char *mask);
/* panels [pa, pb) of the fused steps run (pb past the last panel: all of them);
 * fr_cell_panels_*: how many panels G gates of H units have on the current path */
int fr_cell_panels_f(int G, int H);
int fr_cell_panels_d(int G, int H);
/* barrier of a hidden-unit split team (fr_kern.c); zero it before the region */
typedef struct { int count; int gen; char pad[56]; } fr_team_barrier;
void fr_team_barrier_wait(fr_team_barrier *b, int n);
/* every thread at the start of a parallel region: keeps workers off the master's
 * CPU (fr_kern.c) */
void fr_team_place(void);
/* C(M, N) (+)= A^T B, A (K, M), B (K, N) row-major (the weight gradients). 0 when
 * done, 1 on the baseline path (the caller uses BLAS), -1 out of memory; C is only
 * written when 0 is returned. */
int fr_gemm_tn_f(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                 float *C, int ldc, int accumulate);
int fr_gemm_tn_d(int M, int N, int K, const double *A, int lda, const double *B, int ldb,
                 double *C, int ldc, int accumulate);
/* y (+)= W x, W (N, K) row-major. */
void fr_gemv_dot_f(int N, int K, const float *W, int ldw, const float *x, float *y,
                   int accumulate);
void fr_gemv_dot_d(int N, int K, const double *W, int ldw, const double *x, double *y,
                   int accumulate);
/* y += W^T x, W (K, N) row-major. */
void fr_gemv_axpy_f(int N, int K, const float *W, int ldw, const float *x, float *y);
void fr_gemv_axpy_d(int N, int K, const double *W, int ldw, const double *x, double *y);

#endif
