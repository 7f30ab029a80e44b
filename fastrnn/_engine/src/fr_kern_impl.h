/* Register-blocked micro-kernels and fused recurrent steps, written ONCE over a
 * GCC vector type whose width is a parameter. fr_kern.c includes this file once
 * per (instruction set, dtype) inside a `#pragma GCC target` region, with:
 *   REAL          float / double
 *   VEC, VL       GCC vector of VL REALs (VL*sizeof(REAL) = 64 bytes on the
 *                 AVX-512 path, 32 on AVX2, 16 on the baseline; the "avx2w16"
 *                 test variant uses 64-byte vectors on AVX2, lowered to pairs)
 *   FR_FN(name)   name with the dtype and ISA suffix
 *   SIGM TANH RELU  scalar inline activations (fr_act.h), vectorized by omp simd
 *   MR_GEN NV_GEN   generic GEMM tile: MR_GEN rows x NV_GEN vectors
 *   MR_LSTM MR_GRU  fused-step tile rows (LSTM: 4 vectors = i f g o of VL units;
 *                   GRU: 3 vectors = r z n of VL units)
 *   MR_ELM U_ELM    Elman fused tile: MR_ELM rows x U_ELM vectors of units
 * The tiles are sized so that MR x NV accumulators fill most of the register
 * file: 24 of the 32 zmm on AVX-512, 12 of the 16 ymm/xmm on AVX2/baseline.
 *
 * Packing (once per call, or once per stepper): W (N, K) with N = G*H rows in
 * PyTorch gate-blocked order is stored in panels of NR = G*U*VL columns; panel p
 * holds units [p*U*VL, (p+1)*U*VL) of EVERY gate, gate-interleaved:
 *     Wp[p][k][g*U*VL + v] = W[g*H + p*U*VL + v][k]   (0 past the last unit)
 * so that one register tile holds all gate pre-activations of the same hidden
 * units. The generic GEMM is the case G = 1 (N = H, U = NV_GEN).
 */

#undef FR_VLOAD
#undef FR_VSTORE
/* unaligned vector load / store (statement expressions: no vector-typed function
 * arguments, whose ABI differs between the instruction sets) */
#define FR_VLOAD(p) __extension__({ VEC v_; __builtin_memcpy(&v_, (p), sizeof(VEC)); v_; })
#define FR_VSTORE(p, v) do { VEC w_ = (v); __builtin_memcpy((p), &w_, sizeof(VEC)); } while (0)

/* the integer vector of VEC's shape (lane indices of __builtin_shuffle) */
typedef IREAL FR_FN(veci) __attribute__((vector_size(sizeof(VEC))));
#undef VECI
#define VECI FR_FN(veci)

#define FR_MRMAX 8
#define FR_NVMAX 4

/* --------------------------------------------------------------- packing */
/* d[k*ldd + v] = s[v*lds + k] for a VL x VL block, through registers: VL row
 * vectors are transposed by log2(VL) rounds of two-source lane shuffles (round b
 * swaps, in every pair of rows i and i + b, the lanes j with bit b set in row i
 * with the lanes j - b of row i + b), then stored as VL row vectors of d. */
FR_INLINE void FR_FN(transpose_block)(const REAL *FR_RESTRICT s, size_t lds,
                                      REAL *FR_RESTRICT d, size_t ldd)
{
    static const IREAL iota_[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    VECI iota;
    __builtin_memcpy(&iota, iota_, sizeof iota);
    VEC r[VL];
#pragma GCC unroll 16
    for (int v = 0; v < VL; v++) r[v] = FR_VLOAD(s + (size_t)v * lds);
#pragma GCC unroll 4
    for (int b = VL / 2; b >= 1; b /= 2) {
        /* the two lane-index vectors of this round, as vector expressions of the
         * constant iota (filled lane by lane, GCC built them at run time, with
         * masked broadcasts, in every call) */
        const VECI bv = (VECI){0} + b, sel = (iota & bv) != 0;
        const VECI m1 = (sel & (VL + (iota ^ bv))) | (~sel & iota);
        const VECI m2 = (sel & (VL + iota)) | (~sel & (iota ^ bv));
#pragma GCC unroll 16
        for (int i = 0; i < VL; i++) {
            if (i & b) continue;
            VEC a = r[i], c = r[i | b];
            r[i] = __builtin_shuffle(a, c, m1);
            r[i | b] = __builtin_shuffle(a, c, m2);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < VL; k++) FR_VSTORE(d + (size_t)k * ldd, r[k]);
}

/* W[n][k] = trans ? src[k*ld + n] : src[n*ld + k], n = g*H + unit. W^T is copied
 * row by row (contiguous runs of units); W is transposed in VL x VL register blocks
 * wherever a block is whole (the edges element by element). Only panels [pa, pb)
 * are written (pb past the end: all), so that the threads of a hidden-unit split
 * each pack the panels they use, into their own caches. */
static void FR_FN(pack)(int G, int H, int K, int U, const REAL *src, int ld, int trans,
                        REAL *Wp, int pa, int pb)
{
    const int UV = U * VL, NR = G * UV;
    const int np = (H + UV - 1) / UV;
    const int pe = pb < np ? pb : np;
    for (int p = pa; p < pe; p++) {
        REAL *dst = Wp + (size_t)p * NR * K;
        const int u0 = p * UV, nu = H - u0 < UV ? H - u0 : UV;
        for (int g = 0; g < G; g++) {
            if (trans) {
                for (int k = 0; k < K; k++) {
                    REAL *d = dst + (size_t)k * NR + g * UV;
                    const REAL *s = src + (size_t)k * ld + (size_t)g * H + u0;
                    for (int v = 0; v < nu; v++) d[v] = s[v];
                    for (int v = nu; v < UV; v++) d[v] = 0;
                }
                continue;
            }
            for (int v0 = 0; v0 < UV; v0 += VL) {
                const REAL *s = src + (size_t)(g * H + u0 + v0) * ld;
                REAL *d = dst + g * UV + v0;
                const int nv = nu - v0 < 0 ? 0 : (nu - v0 < VL ? nu - v0 : VL);
                int k0 = 0;
                if (nv == VL)
                    for (; k0 + VL <= K; k0 += VL)
                        FR_FN(transpose_block)(s + k0, (size_t)ld, d + (size_t)k0 * NR,
                                               (size_t)NR);
                for (int k = k0; k < K; k++) {
                    REAL *dk = d + (size_t)k * NR;
                    for (int v = 0; v < nv; v++) dk[v] = s[(size_t)v * ld + k];
                    for (int v = nv; v < VL; v++) dk[v] = 0;
                }
            }
        }
    }
}

/* ---------------------------------------------------------- micro-kernel */
/* out[i*ldo + v*VL + l] (+)= sum_k A[i*lda + k*sak] * Bp[k*nv*VL + v*VL + l] for an
 * mr x nv tile (sak = 1: A row-major; lda = 1: A given transposed, as dG in the
 * weight gradients). mr and nv are compile-time constants at every call site
 * (always_inline + the switch below), so acc[][] lives in registers: one
 * broadcast of A per row and k, nv panel loads per k. */
FR_INLINE void FR_FN(tile)(const int mr, const int nv, int K, const REAL *FR_RESTRICT A,
                           int lda, size_t sak, const REAL *FR_RESTRICT Bp,
                           REAL *FR_RESTRICT out, int ldo, int accumulate)
{
    VEC acc[FR_MRMAX][FR_NVMAX];
    const int nr = nv * VL;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = (VEC){0};
    for (int k = 0; k < K; k++) {
        const REAL *b = Bp + (size_t)k * nr;
        VEC bv[FR_NVMAX];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = FR_VLOAD(b + v * VL);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const REAL a = A[(size_t)i * lda + (size_t)k * sak];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] += a * bv[v];
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        REAL *o = out + (size_t)i * ldo;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            if (accumulate) FR_VSTORE(o + v * VL, FR_VLOAD(o + v * VL) + acc[i][v]);
            else FR_VSTORE(o + v * VL, acc[i][v]);
        }
    }
}


/* run the tile with a constant row count mr in 1..MRX */
#define FR_TILE_SWITCH(MRX, NV, mr, ...)                                          \
    switch (mr) {                                                                 \
    case 1: FR_FN(tile)(1, NV, __VA_ARGS__); break;                               \
    case 2: if ((MRX) >= 2) FR_FN(tile)(2, NV, __VA_ARGS__); break;               \
    case 3: if ((MRX) >= 3) FR_FN(tile)(3, NV, __VA_ARGS__); break;               \
    case 4: if ((MRX) >= 4) FR_FN(tile)(4, NV, __VA_ARGS__); break;               \
    case 5: if ((MRX) >= 5) FR_FN(tile)(5, NV, __VA_ARGS__); break;               \
    case 6: if ((MRX) >= 6) FR_FN(tile)(6, NV, __VA_ARGS__); break;               \
    case 7: if ((MRX) >= 7) FR_FN(tile)(7, NV, __VA_ARGS__); break;               \
    case 8: if ((MRX) >= 8) FR_FN(tile)(8, NV, __VA_ARGS__); break;               \
    default: break;                                                               \
    }

/* Rows are cut into nt = ceil(M / MRX) balanced tiles (sizes differ by at most
 * one), so no 1-2 row tail ever runs behind full tiles: 16 rows with MRX = 6
 * become 6+5+5, 8 rows become 4+4. */
#define FR_ROW_TILES(M, MRX, nt) const int nt = ((M) + (MRX) - 1) / (MRX)
#define FR_TILE_R0(M, nt, t) (int)(((long)(t) * (M)) / (nt))

/* ------------------------------------------------------------ generic GEMM */
#ifndef FR_KC
#define FR_KC 256
#endif
/* C(M, N) (+)= A(M, K) @ W^T with W packed by pack(1, N, K, NV_GEN, ...).
 * K in blocks of FR_KC (the panel slice reused by every row tile stays in L1),
 * rows in blocks of MC (the A block stays in L2 while all panels stream past). */
static void FR_FN(gemm_packed)(int M, int N, int K, const REAL *FR_RESTRICT A, int lda,
                               const REAL *FR_RESTRICT Wp, REAL *FR_RESTRICT C, int ldc,
                               int accumulate)
{
    const int NR = NV_GEN * VL;
    int MCb = (int)(65536 / (K > 0 ? K : 1));
    MCb = MCb < MR_GEN ? MR_GEN : MCb - MCb % MR_GEN;
    if (M > MCb) {
        for (int m0 = 0; m0 < M; m0 += MCb) {
            int mc = M - m0 < MCb ? M - m0 : MCb;
            FR_FN(gemm_packed)(mc, N, K, A + (size_t)m0 * lda, lda, Wp,
                               C + (size_t)m0 * ldc, ldc, accumulate);
        }
        return;
    }
    REAL tmp[FR_MRMAX * FR_NVMAX * 16] __attribute__((aligned(64)));
    FR_ROW_TILES(M, MR_GEN, nt);
    const int np = (N + NR - 1) / NR;
    for (int p = 0; p < np; p++) {
        const int n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
        for (int k0 = 0; k0 < K; k0 += FR_KC) {
            const int kc = K - k0 < FR_KC ? K - k0 : FR_KC;
            const int acc = accumulate || k0 > 0;
            const REAL *Bp = Wp + (size_t)p * NR * K + (size_t)k0 * NR;
            for (int t = 0; t < nt; t++) {
                const int r0 = FR_TILE_R0(M, nt, t), mr = FR_TILE_R0(M, nt, t + 1) - r0;
                const REAL *Ar = A + (size_t)r0 * lda + k0;
                REAL *Cr = C + (size_t)r0 * ldc + n0;
                if (nr == NR) {
                    FR_TILE_SWITCH(MR_GEN, NV_GEN, mr, kc, Ar, lda, 1, Bp, Cr, ldc, acc)
                } else {
                    FR_TILE_SWITCH(MR_GEN, NV_GEN, mr, kc, Ar, lda, 1, Bp, tmp, NR, 0)
                    for (int i = 0; i < mr; i++) {
                        REAL *c = Cr + (size_t)i * ldc;
                        const REAL *s = tmp + (size_t)i * NR;
                        if (acc) for (int r = 0; r < nr; r++) c[r] += s[r];
                        else for (int r = 0; r < nr; r++) c[r] = s[r];
                    }
                }
            }
        }
    }
}

/* C(M, N) (+)= A^T B with A (K, M) and B (K, N) row-major: the weight
 * gradients dW = dG^T X over K = T*B rows. K runs in blocks of FR_KC; each
 * block of B is packed into work (panels of NR columns, kc x NR each; the last
 * only as many vectors wide as its columns need, zero-padded) and stays in L2
 * while every row tile of C (MR_GEN rows) sweeps its panels, reading its A slice
 * as mr consecutive values per k (A's k-stride is lda). work holds
 * FR_KC * np * NR REALs. */
static void FR_FN(gemm_tn)(int M, int N, int K, const REAL *FR_RESTRICT A, int lda,
                           const REAL *FR_RESTRICT B, int ldb, REAL *FR_RESTRICT C,
                           int ldc, int accumulate, REAL *FR_RESTRICT work)
{
    const int NR = NV_GEN * VL;
    const int np = (N + NR - 1) / NR;
    /* the last panel is packed only as wide as its columns need (nvl vectors) and
     * runs a tile of that width: N = 64 with 48-column panels computed 96 columns */
    const int nlast = N - (np - 1) * NR, nvl = (nlast + VL - 1) / VL;
    REAL tmp[FR_MRMAX * FR_NVMAX * 16] __attribute__((aligned(64)));
    FR_ROW_TILES(M, MR_GEN, nt);
    for (int k0 = 0; k0 < K; k0 += FR_KC) {
        const int kc = K - k0 < FR_KC ? K - k0 : FR_KC;
        const int acc = accumulate || k0 > 0;
        for (int p = 0; p < np; p++) {              /* pack B's rows [k0, k0 + kc) */
            const int n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
            const int w = p == np - 1 ? nvl * VL : NR;
            REAL *d = work + (size_t)p * FR_KC * NR;
            for (int k = 0; k < kc; k++) {
                const REAL *s = B + (size_t)(k0 + k) * ldb + n0;
                REAL *dk = d + (size_t)k * w;
                for (int v = 0; v < nr; v++) dk[v] = s[v];
                for (int v = nr; v < w; v++) dk[v] = 0;
            }
        }
        for (int t = 0; t < nt; t++) {
            const int r0 = FR_TILE_R0(M, nt, t), mr = FR_TILE_R0(M, nt, t + 1) - r0;
            const REAL *Ar = A + (size_t)k0 * lda + r0;
            for (int p = 0; p < np; p++) {
                const int n0 = p * NR;
                const REAL *Bp = work + (size_t)p * FR_KC * NR;
                REAL *Cr = C + (size_t)r0 * ldc + n0;
                if (p < np - 1) {
                    FR_TILE_SWITCH(MR_GEN, NV_GEN, mr, kc, Ar, 1, lda, Bp, Cr, ldc, acc)
                    continue;
                }
                /* a last panel of whole vectors goes straight to C, else via tmp */
                const int direct = nlast == nvl * VL;
                REAL *o = direct ? Cr : tmp;
                const int ldo = direct ? ldc : nvl * VL, a = direct ? acc : 0;
                if (nvl == 1) { FR_TILE_SWITCH(MR_GEN, 1, mr, kc, Ar, 1, lda, Bp, o, ldo, a) }
                else if (nvl == 2) { FR_TILE_SWITCH(MR_GEN, 2, mr, kc, Ar, 1, lda, Bp, o, ldo, a) }
                else { FR_TILE_SWITCH(MR_GEN, NV_GEN, mr, kc, Ar, 1, lda, Bp, o, ldo, a) }
                if (!direct)
                    for (int i = 0; i < mr; i++) {
                        REAL *c = Cr + (size_t)i * ldc;
                        const REAL *s = tmp + (size_t)i * ldo;
                        if (acc) for (int r = 0; r < nlast; r++) c[r] += s[r];
                        else for (int r = 0; r < nlast; r++) c[r] = s[r];
                    }
            }
        }
    }
}

/* ------------------------------------------------------ fused-step driver */
/* Shared loop of the fused steps. For every panel p (hidden units [j0, j0+nu) of
 * all gates) and every chunk of up to FR_CHUNK row tiles: K is walked in blocks of
 * KC so that the panel slice (KC x NR) stays in L1 while each tile of the chunk
 * reuses it; the partial sums live in cbuf (chunk rows x NR, L1). After the last K
 * block, EPI runs for every row of the chunk with `b` (row), `pre` (its NR sums,
 * gate q of unit v at pre[q*UV + v]), `gx` and `gq` (the row's input projection
 * for these units: gate q of unit v at gx[q*gq + v]), `j0` and `nu` in scope. Only
 * panels [pa, pb) run (pa, pb in scope; pb past the end means all): when one row
 * is too few to split the batch over threads, the threads split the hidden units.
 * The input projection comes from one of two places:
 *   Wxp == NULL  the hoisted projection GSRC (rows of GROW values, gate q of unit
 *                j at GSRC[b*GROW + q*H + j]), computed for every step beforehand;
 *   Wxp != NULL  computed here, per chunk, from x_t (rows xin + b*ldx, nx values)
 *                and W_ih packed like W_hh (K = nx) into xbuf, next to cbuf in L1.
 *                Why: the hoisted projection writes T*B*G*H values to memory and
 *                every step reads its slice back; computed per chunk it never
 *                leaves L1 (C harness, one thread, LSTM T = 100: B = 16, H = 128
 *                4.33 -> 3.80 ms; B = 32, H = 256 31.7 -> 27.9). The caller decides
 *                when (common.pxd: fuse_input): the step then streams W_ih as well,
 *                which loses once the two packed weights leave the caches or a
 *                thread has 1-2 rows (less reuse of each W_ih panel than the
 *                hoisted GEMM's T*B rows).
 * PF(b) runs for every row of a chunk BEFORE its K loop: it prefetches the lines
 * the epilogue will touch (the hoisted projection's rows, the outputs). Why: the
 * epilogue reads G*rows short runs 4H apart, too many streams for the hardware
 * prefetcher, and G (T*B*G*H) is far larger than L2, so without it every run was
 * a cache miss in the middle of the step (10% of the LSTM step's samples sat on
 * one load of G); issued here, the lines arrive while the tile computes. */
#define FR_CHUNK 8
#undef FR_PREFETCH
#define FR_PREFETCH(ptr, n, rw)                                                     \
    do {                                                                            \
        const char *a_ = (const char *)((uintptr_t)(ptr) & ~(uintptr_t)63);         \
        const char *e_ = (const char *)((ptr) + (n));                               \
        for (; a_ < e_; a_ += 64) __builtin_prefetch(a_, rw, 2);                    \
    } while (0)
#define FR_FUSED_DRIVER(MRX, NV, UV_, PF, GSRC, GROW, ...)                           \
    do {                                                                             \
        const int UV = (UV_), NR = (NV) * VL, K = H;                                 \
        REAL cbuf[FR_CHUNK * 8 * FR_NVMAX * 16] __attribute__((aligned(64)));        \
        REAL xbuf[FR_CHUNK * 8 * FR_NVMAX * 16] __attribute__((aligned(64)));        \
        int KC = (int)(24576 / (NR * (int)sizeof(REAL)));                            \
        KC = KC < 16 ? 16 : KC;                                                      \
        FR_ROW_TILES(nb, MRX, nt);                                                   \
        const int np = (H + UV - 1) / UV;                                            \
        const int pe = pb < np ? pb : np;                                            \
        for (int p = pa; p < pe; p++) {                                              \
            const int j0 = p * UV, nu = H - j0 < UV ? H - j0 : UV;                   \
            const REAL *Bp = Wp + (size_t)p * NR * K;                                \
            const REAL *Bx = Wxp ? Wxp + (size_t)p * NR * nx : NULL;                 \
            for (int t0 = 0; t0 < nt; t0 += FR_CHUNK) {                              \
                const int t1 = t0 + FR_CHUNK < nt ? t0 + FR_CHUNK : nt;              \
                const int c0 = FR_TILE_R0(nb, nt, t0), c1 = FR_TILE_R0(nb, nt, t1);  \
                for (int b = c0; b < c1; b++) PF(b);                                 \
                for (int k0 = 0; Bx && k0 < nx; k0 += KC) {                          \
                    const int kc = nx - k0 < KC ? nx - k0 : KC;                      \
                    for (int t = t0; t < t1; t++) {                                  \
                        const int r0 = FR_TILE_R0(nb, nt, t);                        \
                        const int mr = FR_TILE_R0(nb, nt, t + 1) - r0;               \
                        FR_TILE_SWITCH(MRX, NV, mr, kc,                              \
                                       xin + (size_t)r0 * ldx + k0, ldx, 1,          \
                                       Bx + (size_t)k0 * NR,                         \
                                       xbuf + (size_t)(r0 - c0) * NR, NR, k0 > 0)    \
                    }                                                                \
                }                                                                    \
                for (int k0 = 0; k0 < K; k0 += KC) {                                 \
                    const int kc = K - k0 < KC ? K - k0 : KC;                        \
                    for (int t = t0; t < t1; t++) {                                  \
                        const int r0 = FR_TILE_R0(nb, nt, t);                        \
                        const int mr = FR_TILE_R0(nb, nt, t + 1) - r0;               \
                        FR_TILE_SWITCH(MRX, NV, mr, kc, hp + (size_t)r0 * H + k0, H, 1, \
                                       Bp + (size_t)k0 * NR,                         \
                                       cbuf + (size_t)(r0 - c0) * NR, NR, k0 > 0)    \
                    }                                                                \
                }                                                                    \
                for (int b = c0; b < c1; b++) {                                      \
                    const REAL *pre = cbuf + (size_t)(b - c0) * NR;                  \
                    const REAL *gx = Bx ? xbuf + (size_t)(b - c0) * NR               \
                                        : (GSRC) + (size_t)b * (GROW) + j0;          \
                    const size_t gq = Bx ? (size_t)UV : (size_t)H;                   \
                    (void)gq;                                                        \
                    __VA_ARGS__                                                      \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    } while (0)

/* ------------------------------------------------------- fused LSTM step */
/* One LSTM step for nb rows: pre = hp(nb, H) @ W_hh^T tile by tile (W packed
 * with G = 4, U = 1), then, while the tile is in L1, bias + input projection
 * + sigma/tanh + cell update + mask, writing h_out, c_out and (when gates_out !=
 * NULL, which may alias g) the post-activation gates. The input projection is
 * g (nb, 4H) when Wxp is NULL, else x(nb, nx; rows ldx apart) @ W_ih^T with W_ih
 * packed like W_hh (K = nx) in Wxp, computed in the tile (see FR_FUSED_DRIVER). */
static void FR_FN(lstm_step)(int nb, int H, int pa, int pb, const REAL *FR_RESTRICT hp,
                             const REAL *FR_RESTRICT Wp, const REAL *g,
                             const REAL *FR_RESTRICT xin, int ldx, int nx,
                             const REAL *FR_RESTRICT Wxp,
                             const REAL *FR_RESTRICT bias, const REAL *FR_RESTRICT cp,
                             REAL *FR_RESTRICT h_out, REAL *FR_RESTRICT c_out,
                             REAL *gates_out, const unsigned char *mask)
{
#define FR_PF_LSTM(b)                                                               \
    do {                                                                            \
        for (int q = 0; q < 4 && !Wxp; q++)                                         \
            FR_PREFETCH(g + (size_t)(b) * 4 * H + (size_t)q * H + j0, nu, 0);       \
        FR_PREFETCH(h_out + (size_t)(b) * H + j0, nu, 1);                           \
        FR_PREFETCH(c_out + (size_t)(b) * H + j0, nu, 1);                           \
    } while (0)
    FR_FUSED_DRIVER(MR_LSTM, 4, VL, FR_PF_LSTM, g, 4 * H, {
        const size_t o = (size_t)b * H + j0, o4 = (size_t)b * 4 * H + j0;
        const REAL *bi = bias + j0, *cpr = cp + o;
        REAL *ho = h_out + o, *co = c_out + o;
        if (mask && !mask[b]) {
            const REAL *hpr = hp + o;
            for (int v = 0; v < nu; v++) { ho[v] = hpr[v]; co[v] = cpr[v]; }
            if (gates_out) {
                REAL *w = gates_out + o4;
                for (int q = 0; q < 4; q++)
                    for (int v = 0; v < nu; v++) w[(size_t)q * H + v] = 0;
            }
            continue;
        }
        if (gates_out) {
            REAL *w = gates_out + o4;
            FR_SIMD
            for (int v = 0; v < nu; v++) {
                REAL i_ = SIGM(pre[v] + gx[v] + bi[v]);
                REAL f_ = SIGM(pre[UV + v] + gx[gq + v] + bi[H + v]);
                REAL g_ = TANH(pre[2 * UV + v] + gx[2 * gq + v] + bi[2 * H + v]);
                REAL o_ = SIGM(pre[3 * UV + v] + gx[3 * gq + v] + bi[3 * H + v]);
                REAL c = f_ * cpr[v] + i_ * g_;
                co[v] = c;
                ho[v] = o_ * TANH(c);
                w[v] = i_; w[H + v] = f_; w[2 * H + v] = g_; w[3 * H + v] = o_;
            }
        } else {
            FR_SIMD
            for (int v = 0; v < nu; v++) {
                REAL i_ = SIGM(pre[v] + gx[v] + bi[v]);
                REAL f_ = SIGM(pre[UV + v] + gx[gq + v] + bi[H + v]);
                REAL g_ = TANH(pre[2 * UV + v] + gx[2 * gq + v] + bi[2 * H + v]);
                REAL o_ = SIGM(pre[3 * UV + v] + gx[3 * gq + v] + bi[3 * H + v]);
                REAL c = f_ * cpr[v] + i_ * g_;
                co[v] = c;
                ho[v] = o_ * TANH(c);
            }
        }
    });
}

/* -------------------------------------------------------- fused GRU step */
/* gi (nb, 3H): input projection (no bias); W packed with G = 3, U = 1. With
 * Wxp != NULL the projection is computed in the tile instead (as for LSTM).
 * bias_rz (2H) = b_ih + b_hh for r, z; b_in, b_hn (H). Training (gates_out !=
 * NULL, may alias gi): r, z, n stored in place of gi, hn_out = W_hn h + b_hn. */
static void FR_FN(gru_step)(int nb, int H, int pa, int pb, const REAL *FR_RESTRICT hp,
                            const REAL *FR_RESTRICT Wp, const REAL *gi,
                            const REAL *FR_RESTRICT xin, int ldx, int nx,
                            const REAL *FR_RESTRICT Wxp,
                            const REAL *FR_RESTRICT bias_rz, const REAL *FR_RESTRICT b_in,
                            const REAL *FR_RESTRICT b_hn, REAL *FR_RESTRICT h_out,
                            REAL *gates_out, REAL *FR_RESTRICT hn_out,
                            const unsigned char *mask)
{
    const REAL *br = bias_rz, *bz = bias_rz + H;
#define FR_PF_GRU(b)                                                                \
    do {                                                                            \
        for (int q = 0; q < 3 && !Wxp; q++)                                         \
            FR_PREFETCH(gi + (size_t)(b) * 3 * H + (size_t)q * H + j0, nu, 0);      \
        FR_PREFETCH(h_out + (size_t)(b) * H + j0, nu, 1);                           \
        if (hn_out) FR_PREFETCH(hn_out + (size_t)(b) * H + j0, nu, 1);              \
    } while (0)
    FR_FUSED_DRIVER(MR_GRU, 3, VL, FR_PF_GRU, gi, 3 * H, {
        const size_t o = (size_t)b * H + j0, o3 = (size_t)b * 3 * H + j0;
        const REAL *x = gx, *hpr = hp + o;
        const REAL *brj = br + j0, *bzj = bz + j0, *bin = b_in + j0, *bhn = b_hn + j0;
        REAL *ho = h_out + o;
        if (mask && !mask[b]) {
            for (int v = 0; v < nu; v++) ho[v] = hpr[v];
            if (gates_out) {
                REAL *w = gates_out + o3, *wn = hn_out + o;
                for (int q = 0; q < 3; q++)
                    for (int v = 0; v < nu; v++) w[(size_t)q * H + v] = 0;
                for (int v = 0; v < nu; v++) wn[v] = 0;
            }
            continue;
        }
        if (gates_out) {
            REAL *w = gates_out + o3, *wn = hn_out + o;
            FR_SIMD
            for (int v = 0; v < nu; v++) {
                REAL r = SIGM(x[v] + pre[v] + brj[v]);
                REAL z = SIGM(x[gq + v] + pre[UV + v] + bzj[v]);
                REAL hn = pre[2 * UV + v] + bhn[v];
                REAL n = TANH(x[2 * gq + v] + bin[v] + r * hn);
                ho[v] = n + z * (hpr[v] - n);
                w[v] = r; w[H + v] = z; w[2 * H + v] = n; wn[v] = hn;
            }
        } else {
            FR_SIMD
            for (int v = 0; v < nu; v++) {
                REAL r = SIGM(x[v] + pre[v] + brj[v]);
                REAL z = SIGM(x[gq + v] + pre[UV + v] + bzj[v]);
                REAL hn = pre[2 * UV + v] + bhn[v];
                REAL n = TANH(x[2 * gq + v] + bin[v] + r * hn);
                ho[v] = n + z * (hpr[v] - n);
            }
        }
    });
}

/* ------------------------------------------------------ fused Elman step */
/* g (nb, H): input projection (no bias); W packed with G = 1, U = U_ELM. With
 * Wxp != NULL the projection is computed in the tile instead (as for LSTM).
 * h_out = act(pre + g + bias); act 0 tanh, 1 relu; masked rows copy hp. */
static void FR_FN(elman_step)(int nb, int H, int pa, int pb, int act,
                              const REAL *FR_RESTRICT hp,
                              const REAL *FR_RESTRICT Wp, const REAL *FR_RESTRICT g,
                              const REAL *FR_RESTRICT xin, int ldx, int nx,
                              const REAL *FR_RESTRICT Wxp,
                              const REAL *FR_RESTRICT bias, REAL *FR_RESTRICT h_out,
                              const unsigned char *mask)
{
/* no prefetch: one contiguous run per row, which the hardware prefetcher follows
 * (the hint measured no gain on Elman(256), within noise) */
#define FR_PF_ELM(b) (void)(b)
    FR_FUSED_DRIVER(MR_ELM, U_ELM, U_ELM * VL, FR_PF_ELM, g, H, {
        const size_t o = (size_t)b * H + j0;
        const REAL *x = gx, *bb = bias + j0;
        REAL *ho = h_out + o;
        (void)UV;
        if (mask && !mask[b]) {
            const REAL *hpr = hp + o;
            for (int v = 0; v < nu; v++) ho[v] = hpr[v];
            continue;
        }
        if (act == 0) {
            FR_SIMD
            for (int v = 0; v < nu; v++) ho[v] = TANH(pre[v] + x[v] + bb[v]);
        } else {
            FR_SIMD
            for (int v = 0; v < nu; v++) ho[v] = RELU(pre[v] + x[v] + bb[v]);
        }
    });
}

/* ----------------------------------------------------------------- GEMV */
#undef FR_HSUM
#define FR_HSUM(v) __extension__({ VEC h_ = (v); REAL s_ = 0; \
    for (int i_ = 0; i_ < VL; i_++) { s_ += h_[i_]; } \
    s_; })

/* y[n] (+)= sum_k W[n][k] x[k], W (N, K) row-major, leading dimension ldw. Four
 * rows at a time, two vector accumulators each (8 independent FMA chains). */
static void FR_FN(gemv_dot)(int N, int K, const REAL *FR_RESTRICT W, int ldw,
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

/* y[n] += sum_k W[k][n] x[k], W (K, N) row-major (y += W^T x), streaming rows. */
static void FR_FN(gemv_axpy)(int N, int K, const REAL *FR_RESTRICT W, int ldw,
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

#undef FR_MRMAX
#undef FR_NVMAX
#undef FR_TILE_SWITCH
#undef FR_ROW_TILES
#undef FR_TILE_R0
#undef FR_CHUNK
#undef FR_FUSED_DRIVER
#undef FR_PF_LSTM
#undef FR_PF_GRU
#undef FR_PF_ELM
#undef FR_PREFETCH
