/* Per-step pointwise passes, written once for REAL = float / double and included
 * once per instruction set by fr_kern.c (the forward passes serve the unpacked
 * B = 1 / T = 1 path; packed forward steps use the fused tiles of fr_kern_impl.h).
 * gates_out may alias g / gi (training stores the activated gates in place of
 * the pre-activations): those two are not restrict; `omp simd` asserts the
 * loops have no cross-iteration dependence, which holds (same index).
 * Included by fr_kern.c (inside a `#pragma GCC target` region) with:
 *   REAL, FR_FN(name) (adds _f / _d), SIGM, TANH, RELU.
 * Every row is independent; inner loops over hidden units are `omp simd`.
 * Rows are contiguous: gates rows have stride G*H, state rows stride H.
 */

/* ----------------------------------------------------------------- Elman */
static void FR_FN(fr_elman_fwd)(int nb, int H, int act, const REAL *FR_RESTRICT g,
                         const REAL *FR_RESTRICT bias, const REAL *FR_RESTRICT h_prev,
                         REAL *FR_RESTRICT h_out, const unsigned char *mask)
{
    for (int b = 0; b < nb; b++) {
        const REAL *gr = g + (size_t)b * H;
        REAL *hr = h_out + (size_t)b * H;
        if (mask && !mask[b]) {
            const REAL *hp = h_prev + (size_t)b * H;
            for (int j = 0; j < H; j++) hr[j] = hp[j];
            continue;
        }
        if (act == 0) {
            FR_SIMD
            for (int j = 0; j < H; j++) hr[j] = TANH(gr[j] + bias[j]);
        } else {
            FR_SIMD
            for (int j = 0; j < H; j++) hr[j] = RELU(gr[j] + bias[j]);
        }
    }
}

static void FR_FN(fr_elman_bwd)(int nb, int H, int act, const REAL *FR_RESTRICT h,
                         const REAL *FR_RESTRICT dy, const REAL *FR_RESTRICT dh_next,
                         REAL *FR_RESTRICT dG, REAL *FR_RESTRICT dh_prev,
                         const unsigned char *mask)
{
    for (int b = 0; b < nb; b++) {
        size_t o = (size_t)b * H;
        const REAL *hr = h + o, *dn = dh_next + o;
        const REAL *dyr = dy ? dy + o : NULL;
        REAL *dg = dG + o, *dp = dh_prev + o;
        if (mask && !mask[b]) {
            for (int j = 0; j < H; j++) {
                dp[j] = dn[j] + (dyr ? dyr[j] : (REAL)0);
                dg[j] = 0;
            }
            continue;
        }
        if (dyr) {
            if (act == 0) {
                FR_SIMD
                for (int j = 0; j < H; j++) {
                    REAL d = dyr[j] + dn[j];
                    dg[j] = d * ((REAL)1 - hr[j] * hr[j]);
                    dp[j] = 0;
                }
            } else {
                FR_SIMD
                for (int j = 0; j < H; j++) {
                    REAL d = dyr[j] + dn[j];
                    dg[j] = (hr[j] > (REAL)0) ? d : (REAL)0;
                    dp[j] = 0;
                }
            }
        } else {
            if (act == 0) {
                FR_SIMD
                for (int j = 0; j < H; j++) {
                    dg[j] = dn[j] * ((REAL)1 - hr[j] * hr[j]);
                    dp[j] = 0;
                }
            } else {
                FR_SIMD
                for (int j = 0; j < H; j++) {
                    dg[j] = (hr[j] > (REAL)0) ? dn[j] : (REAL)0;
                    dp[j] = 0;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ LSTM */
static void FR_FN(fr_lstm_fwd)(int nb, int H, const REAL *g,
                        const REAL *FR_RESTRICT bias, const REAL *FR_RESTRICT h_prev,
                        const REAL *FR_RESTRICT c_prev, REAL *FR_RESTRICT h_out,
                        REAL *FR_RESTRICT c_out, REAL *gates_out,
                        const unsigned char *mask)
{
    const REAL *bi = bias, *bf = bias + H, *bg = bias + 2 * H, *bo = bias + 3 * H;
    for (int b = 0; b < nb; b++) {
        const REAL *gi = g + (size_t)b * 4 * H;
        const REAL *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const REAL *cp = c_prev + (size_t)b * H;
        REAL *hr = h_out + (size_t)b * H, *cr = c_out + (size_t)b * H;
        if (mask && !mask[b]) {
            const REAL *hp = h_prev + (size_t)b * H;
            for (int j = 0; j < H; j++) { hr[j] = hp[j]; cr[j] = cp[j]; }
            if (gates_out) {
                REAL *w = gates_out + (size_t)b * 4 * H;
                for (int j = 0; j < 4 * H; j++) w[j] = 0;
            }
            continue;
        }
        if (gates_out) {
            REAL *wi = gates_out + (size_t)b * 4 * H;
            REAL *wf = wi + H, *wg = wi + 2 * H, *wo = wi + 3 * H;
            FR_SIMD
            for (int j = 0; j < H; j++) {
                REAL i_ = SIGM(gi[j] + bi[j]);
                REAL f_ = SIGM(gf[j] + bf[j]);
                REAL g_ = TANH(gg[j] + bg[j]);
                REAL o_ = SIGM(go[j] + bo[j]);
                REAL c = f_ * cp[j] + i_ * g_;
                cr[j] = c;
                hr[j] = o_ * TANH(c);
                wi[j] = i_; wf[j] = f_; wg[j] = g_; wo[j] = o_;
            }
        } else {
            FR_SIMD
            for (int j = 0; j < H; j++) {
                REAL i_ = SIGM(gi[j] + bi[j]);
                REAL f_ = SIGM(gf[j] + bf[j]);
                REAL g_ = TANH(gg[j] + bg[j]);
                REAL o_ = SIGM(go[j] + bo[j]);
                REAL c = f_ * cp[j] + i_ * g_;
                cr[j] = c;
                hr[j] = o_ * TANH(c);
            }
        }
    }
}

static void FR_FN(fr_lstm_bwd)(int nb, int H, const REAL *FR_RESTRICT gates,
                        const REAL *FR_RESTRICT c, const REAL *FR_RESTRICT c_prev,
                        const REAL *FR_RESTRICT dy, const REAL *FR_RESTRICT dh_next,
                        REAL *FR_RESTRICT dc, REAL *FR_RESTRICT dG,
                        REAL *FR_RESTRICT dh_prev, const unsigned char *mask)
{
    for (int b = 0; b < nb; b++) {
        size_t o = (size_t)b * H, o4 = (size_t)b * 4 * H;
        const REAL *dn = dh_next + o;
        const REAL *dyr = dy ? dy + o : NULL;
        REAL *dcr = dc + o, *dp = dh_prev + o;
        REAL *di = dG + o4, *df = di + H, *dgg = di + 2 * H, *dout = di + 3 * H;
        if (mask && !mask[b]) {
            /* state carried: dc passes through unchanged, dh passes to h_{t-1} */
            for (int j = 0; j < H; j++) dp[j] = dn[j] + (dyr ? dyr[j] : (REAL)0);
            for (int j = 0; j < 4 * H; j++) di[j] = 0;
            continue;
        }
        const REAL *gi = gates + o4, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const REAL *cr = c + o, *cp = c_prev + o;
        FR_SIMD
        for (int j = 0; j < H; j++) {
            REAL d = dn[j] + (dyr ? dyr[j] : (REAL)0);
            REAL tc = TANH(cr[j]);
            REAL i_ = gi[j], f_ = gf[j], g_ = gg[j], o_ = go[j];
            REAL dct = dcr[j] + d * o_ * ((REAL)1 - tc * tc);
            dout[j] = d * tc * o_ * ((REAL)1 - o_);
            di[j] = dct * g_ * i_ * ((REAL)1 - i_);
            df[j] = dct * cp[j] * f_ * ((REAL)1 - f_);
            dgg[j] = dct * i_ * ((REAL)1 - g_ * g_);
            dcr[j] = dct * f_;
            dp[j] = 0;
        }
    }
}

/* ------------------------------------------------------------------- GRU */
static void FR_FN(fr_gru_fwd)(int nb, int H, const REAL *gi,
                       const REAL *FR_RESTRICT gh, const REAL *FR_RESTRICT bias_rz,
                       const REAL *FR_RESTRICT b_in, const REAL *FR_RESTRICT b_hn,
                       const REAL *FR_RESTRICT h_prev, REAL *FR_RESTRICT h_out,
                       REAL *gates_out, REAL *FR_RESTRICT hn_out,
                       const unsigned char *mask)
{
    const REAL *br = bias_rz, *bz = bias_rz + H;
    for (int b = 0; b < nb; b++) {
        size_t o = (size_t)b * H, o3 = (size_t)b * 3 * H;
        const REAL *xr = gi + o3, *xz = xr + H, *xn = xr + 2 * H;
        const REAL *hr_ = gh + o3, *hz = hr_ + H, *hnn = hr_ + 2 * H;
        const REAL *hp = h_prev + o;
        REAL *ho = h_out + o;
        if (mask && !mask[b]) {
            for (int j = 0; j < H; j++) ho[j] = hp[j];
            if (gates_out) {
                REAL *w = gates_out + o3, *wn = hn_out + o;
                for (int j = 0; j < 3 * H; j++) w[j] = 0;
                for (int j = 0; j < H; j++) wn[j] = 0;
            }
            continue;
        }
        if (gates_out) {
            REAL *wr = gates_out + o3, *wz = wr + H, *wn = wr + 2 * H, *whn = hn_out + o;
            FR_SIMD
            for (int j = 0; j < H; j++) {
                REAL r = SIGM(xr[j] + hr_[j] + br[j]);
                REAL z = SIGM(xz[j] + hz[j] + bz[j]);
                REAL hn = hnn[j] + b_hn[j];
                REAL n = TANH(xn[j] + b_in[j] + r * hn);
                ho[j] = n + z * (hp[j] - n);
                wr[j] = r; wz[j] = z; wn[j] = n; whn[j] = hn;
            }
        } else {
            FR_SIMD
            for (int j = 0; j < H; j++) {
                REAL r = SIGM(xr[j] + hr_[j] + br[j]);
                REAL z = SIGM(xz[j] + hz[j] + bz[j]);
                REAL hn = hnn[j] + b_hn[j];
                REAL n = TANH(xn[j] + b_in[j] + r * hn);
                ho[j] = n + z * (hp[j] - n);
            }
        }
    }
}

static void FR_FN(fr_gru_bwd)(int nb, int H, const REAL *FR_RESTRICT gates,
                       const REAL *FR_RESTRICT hn, const REAL *FR_RESTRICT h_prev,
                       const REAL *FR_RESTRICT dy, const REAL *FR_RESTRICT dh_next,
                       REAL *FR_RESTRICT dGi, REAL *FR_RESTRICT dGh,
                       REAL *FR_RESTRICT dh_prev, const unsigned char *mask)
{
    for (int b = 0; b < nb; b++) {
        size_t o = (size_t)b * H, o3 = (size_t)b * 3 * H;
        const REAL *dn = dh_next + o;
        const REAL *dyr = dy ? dy + o : NULL;
        REAL *dp = dh_prev + o;
        REAL *ir = dGi + o3, *iz = ir + H, *in_ = ir + 2 * H;
        REAL *hr_ = dGh + o3, *hz = hr_ + H, *hnn = hr_ + 2 * H;
        if (mask && !mask[b]) {
            for (int j = 0; j < H; j++) dp[j] = dn[j] + (dyr ? dyr[j] : (REAL)0);
            for (int j = 0; j < 3 * H; j++) { ir[j] = 0; hr_[j] = 0; }
            continue;
        }
        const REAL *gr = gates + o3, *gz = gr + H, *gn = gr + 2 * H;
        const REAL *hnr = hn + o, *hp = h_prev + o;
        FR_SIMD
        for (int j = 0; j < H; j++) {
            REAL d = dn[j] + (dyr ? dyr[j] : (REAL)0);
            REAL r = gr[j], z = gz[j], n = gn[j];
            REAL dan = d * ((REAL)1 - z) * ((REAL)1 - n * n);
            REAL daz = d * (hp[j] - n) * z * ((REAL)1 - z);
            REAL dar = dan * hnr[j] * r * ((REAL)1 - r);
            ir[j] = dar; iz[j] = daz; in_[j] = dan;
            hr_[j] = dar; hz[j] = daz; hnn[j] = dan * r;
            dp[j] = d * z;
        }
    }
}

/* ------------------------------------------------------------- utilities */
static void FR_FN(fr_colsum_add)(int rows, int n, const REAL *FR_RESTRICT a, REAL *FR_RESTRICT acc)
{
    for (int r = 0; r < rows; r++) {
        const REAL *ar = a + (size_t)r * n;
        FR_SIMD
        for (int j = 0; j < n; j++) acc[j] += ar[j];
    }
}

static void FR_FN(fr_act)(int kind, int n, const REAL *FR_RESTRICT x, REAL *FR_RESTRICT y)
{
    if (kind == 0) {
        FR_SIMD
        for (int j = 0; j < n; j++) y[j] = SIGM(x[j]);
    } else if (kind == 1) {
        FR_SIMD
        for (int j = 0; j < n; j++) y[j] = TANH(x[j]);
    } else {
        FR_SIMD
        for (int j = 0; j < n; j++) y[j] = RELU(x[j]);
    }
}
