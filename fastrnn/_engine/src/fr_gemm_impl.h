/* Recurrent-step matrix kernels, written once for REAL = float / double.
 * Included twice by fr_gemm.c with REAL, VEC (GCC vector of VL REALs), VL,
 * FR_FN(name) (adds _f / _d).
 *
 * The recurrent product of one step is C(M, N) (+)= A(M, K) @ W^T with W
 * (N, K) row-major (forward: W = W_hh, K = H, N = G*H; backward: W = W_hh^T,
 * K = G*H, N = H). W does not change during a sequence, so for M > 1 it is
 * packed ONCE per call into panels of NR = 2*VL columns,
 *     Wp[p][k][r] = W[p*NR + r][k]   (zero padded to a multiple of NR),
 * which the register-blocked micro-kernel streams with unit stride: MR = 6 rows
 * x NR columns of accumulators (12 vector registers), one broadcast of A per
 * row and k. A plain ?gemm call would re-pack W on every step.
 * For M == 1 the products are matrix-vector and bandwidth bound: they read the
 * unpacked W directly (dot-product form for W, axpy form for W^T), so T == 1
 * calls (streaming) pay no packing at all.
 */

#define NR (2 * VL)
#define MR 6

/* unaligned vector load / store (statement expressions: no vector-typed
 * function arguments, whose ABI differs between the ISA clones) */
#undef FR_VLOAD
#undef FR_VSTORE
#define FR_VLOAD(p) __extension__({ VEC v_; __builtin_memcpy(&v_, (p), sizeof(VEC)); v_; })
#define FR_VSTORE(p, v) do { VEC w_ = (v); __builtin_memcpy((p), &w_, sizeof(VEC)); } while (0)

size_t FR_FN(fr_pack_size)(int N, int K)
{
    return (size_t)((N + NR - 1) / NR) * NR * (size_t)K;
}

/* trans == 0: W[n][k] = src[n*ld + k];  trans == 1: W[n][k] = src[k*ld + n]. */
void FR_FN(fr_pack)(int N, int K, const REAL *src, int ld, int trans, REAL *Wp)
{
    int np = (N + NR - 1) / NR;
    for (int p = 0; p < np; p++) {
        REAL *dst = Wp + (size_t)p * NR * K;
        int n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
        if (trans) {
            for (int k = 0; k < K; k++) {
                const REAL *s = src + (size_t)k * ld + n0;
                REAL *d = dst + (size_t)k * NR;
                int r = 0;
                for (; r < nr; r++) d[r] = s[r];
                for (; r < NR; r++) d[r] = 0;
            }
        } else {
            for (int r = 0; r < NR; r++) {
                if (r < nr) {
                    const REAL *s = src + (size_t)(n0 + r) * ld;
                    for (int k = 0; k < K; k++) dst[(size_t)k * NR + r] = s[k];
                } else {
                    for (int k = 0; k < K; k++) dst[(size_t)k * NR + r] = 0;
                }
            }
        }
    }
}

/* mr x NR tile: C[0:mr, 0:nr] (+)= A[0:mr, :] @ panel. mr is a compile-time
 * constant at every call site (always_inline), so acc[][] lives in registers. */
FR_INLINE void FR_FN(tile)(const int mr, int nr, int K, const REAL *FR_RESTRICT A, int lda,
                           const REAL *FR_RESTRICT Bp, REAL *FR_RESTRICT C, int ldc,
                           int accumulate)
{
    VEC acc[MR][2];
    for (int i = 0; i < mr; i++) { acc[i][0] = (VEC){0}; acc[i][1] = (VEC){0}; }
    for (int k = 0; k < K; k++) {
        VEC b0 = FR_VLOAD(Bp + (size_t)k * NR);
        VEC b1 = FR_VLOAD(Bp + (size_t)k * NR + VL);
        for (int i = 0; i < mr; i++) {
            REAL a = A[(size_t)i * lda + k];
            acc[i][0] += a * b0;
            acc[i][1] += a * b1;
        }
    }
    if (nr == NR) {
        for (int i = 0; i < mr; i++) {
            REAL *c = C + (size_t)i * ldc;
            if (accumulate) {
                FR_VSTORE(c, FR_VLOAD(c) + acc[i][0]);
                FR_VSTORE(c + VL, FR_VLOAD(c + VL) + acc[i][1]);
            } else {
                FR_VSTORE(c, acc[i][0]);
                FR_VSTORE(c + VL, acc[i][1]);
            }
        }
    } else {
        REAL tmp[NR];
        for (int i = 0; i < mr; i++) {
            REAL *c = C + (size_t)i * ldc;
            FR_VSTORE(tmp, acc[i][0]);
            FR_VSTORE(tmp + VL, acc[i][1]);
            if (accumulate) for (int r = 0; r < nr; r++) c[r] += tmp[r];
            else for (int r = 0; r < nr; r++) c[r] = tmp[r];
        }
    }
}

/* C(M, N) (+)= A(M, K) @ W^T with W packed by fr_pack. K is split into
 * blocks of KC so that the slice of a panel being reused by every row tile
 * (KC x NR) stays in L1 next to the A rows. */
#ifndef FR_KC
#define FR_KC 256
#endif
FR_CLONES
void FR_FN(fr_gemm_packed)(int M, int N, int K, const REAL *FR_RESTRICT A, int lda,
                           const REAL *FR_RESTRICT Wp, REAL *FR_RESTRICT C, int ldc,
                           int accumulate)
{
    /* rows in blocks of MC so that the A block (MC x K) stays in L2 while every
     * panel of W streams past it once */
    int MCb = (int)(65536 / (K > 0 ? K : 1));
    MCb = MCb < MR ? MR : MCb - MCb % MR;
    if (M > MCb) {
        for (int m0 = 0; m0 < M; m0 += MCb) {
            int mc = M - m0 < MCb ? M - m0 : MCb;
            FR_FN(fr_gemm_packed)(mc, N, K, A + (size_t)m0 * lda, lda, Wp,
                                  C + (size_t)m0 * ldc, ldc, accumulate);
        }
        return;
    }
    int np = (N + NR - 1) / NR;
    for (int p = 0; p < np; p++) {
        int n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
        for (int k0 = 0; k0 < K; k0 += FR_KC) {
            int kc = K - k0 < FR_KC ? K - k0 : FR_KC;
            int acc = accumulate || k0 > 0;
            const REAL *Bp = Wp + (size_t)p * NR * K + (size_t)k0 * NR;
            const REAL *Ak = A + k0;
            /* full 6-row tiles, but never leave a 1-3 row tail behind a full tile:
             * 6+1 -> 4+3, 6+2 -> 4+4, 6+3 -> 5+4 (tiles of >= 4 rows keep >= 8
             * independent FMA chains) */
            int full = M / MR, rem = M % MR;
            if (full > 0 && rem > 0 && rem < 4) full--;
            int i = 0;
            for (int t = 0; t < full; t++, i += MR)
                FR_FN(tile)(MR, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0,
                            ldc, acc);
            if (M - i > MR) {          /* 7..9 rows left: split 4 + rest */
                FR_FN(tile)(4, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0,
                            ldc, acc);
                i += 4;
            }
            switch (M - i) {
            case 6: FR_FN(tile)(6, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0, ldc, acc); break;
            case 5: FR_FN(tile)(5, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0, ldc, acc); break;
            case 4: FR_FN(tile)(4, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0, ldc, acc); break;
            case 3: FR_FN(tile)(3, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0, ldc, acc); break;
            case 2: FR_FN(tile)(2, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0, ldc, acc); break;
            case 1: FR_FN(tile)(1, nr, kc, Ak + (size_t)i * lda, lda, Bp, C + (size_t)i * ldc + n0, ldc, acc); break;
            default: break;
            }
        }
    }
}

/* Sum of the lanes of a vector. */
#undef FR_HSUM
#define FR_HSUM(v) __extension__({ VEC h_ = (v); REAL s_ = 0; \
    for (int i_ = 0; i_ < VL; i_++) { s_ += h_[i_]; } \
    s_; })

/* y[n] (+)= sum_k W[n][k] x[k], W (N, K) row-major with leading dimension ldw.
 * Four rows at a time, two vector accumulators each (8 independent FMA chains
 * hide the FMA latency). */
FR_CLONES
void FR_FN(fr_gemv_dot)(int N, int K, const REAL *FR_RESTRICT W, int ldw,
                        const REAL *FR_RESTRICT x, REAL *FR_RESTRICT y, int accumulate)
{
    int n = 0;
    int K2 = K - K % (2 * VL);
    for (; n + 4 <= N; n += 4) {
        const REAL *w0 = W + (size_t)n * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        VEC b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        int k = 0;
        for (; k < K2; k += 2 * VL) {
            VEC xv = FR_VLOAD(x + k), xw = FR_VLOAD(x + k + VL);
            a0 += FR_VLOAD(w0 + k) * xv;
            a1 += FR_VLOAD(w1 + k) * xv;
            a2 += FR_VLOAD(w2 + k) * xv;
            a3 += FR_VLOAD(w3 + k) * xv;
            b0 += FR_VLOAD(w0 + k + VL) * xw;
            b1 += FR_VLOAD(w1 + k + VL) * xw;
            b2 += FR_VLOAD(w2 + k + VL) * xw;
            b3 += FR_VLOAD(w3 + k + VL) * xw;
        }
        REAL s0 = FR_HSUM(a0 + b0), s1 = FR_HSUM(a1 + b1);
        REAL s2 = FR_HSUM(a2 + b2), s3 = FR_HSUM(a3 + b3);
        for (; k < K; k++) { s0 += w0[k] * x[k]; s1 += w1[k] * x[k]; s2 += w2[k] * x[k]; s3 += w3[k] * x[k]; }
        if (accumulate) { y[n] += s0; y[n + 1] += s1; y[n + 2] += s2; y[n + 3] += s3; }
        else { y[n] = s0; y[n + 1] = s1; y[n + 2] = s2; y[n + 3] = s3; }
    }
    for (; n < N; n++) {
        const REAL *w0 = W + (size_t)n * ldw;
        REAL s = 0;
        for (int k = 0; k < K; k++) s += w0[k] * x[k];
        if (accumulate) y[n] += s; else y[n] = s;
    }
}

/* y[n] += sum_k W[k][n] x[k], W (K, N) row-major (i.e. y += W^T x), streaming
 * rows of W. */
FR_CLONES
void FR_FN(fr_gemv_axpy)(int N, int K, const REAL *FR_RESTRICT W, int ldw,
                         const REAL *FR_RESTRICT x, REAL *FR_RESTRICT y)
{
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const REAL *w0 = W + (size_t)k * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        REAL x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
        FR_SIMD
        for (int n = 0; n < N; n++)
            y[n] += (w0[n] * x0 + w1[n] * x1) + (w2[n] * x2 + w3[n] * x3);
    }
    for (; k < K; k++) {
        const REAL *w0 = W + (size_t)k * ldw;
        REAL x0 = x[k];
        FR_SIMD
        for (int n = 0; n < N; n++) y[n] += w0[n] * x0;
    }
}

#undef NR
#undef MR
