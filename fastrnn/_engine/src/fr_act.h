/* Vectorizable activations (float and double), inlined into `omp simd` loops.
 *
 * Both go through e^r - 1 on a reduced argument:
 *   sigmoid(x) = 1 / (1 + e),   e = exp(-x) = 2^k (1 + em1(r))
 *   tanh(x)    = m / (m + 2),   m = expm1(2x) = 2^k em1(r) + (2^k - 1)
 * with k = round(c x / ln2) (adding 1.5 * 2^23 + bias leaves k + bias in the
 * low bits, shifted into the exponent field for 2^k), r = c x - k ln2 (ln2 in
 * two parts, k hi exact) and em1(r) = r + r^2 q(r), q a minimax fit of
 * (e^r - 1 - r) / r^2 on |r| <= ln2/2 for the RELATIVE error of e^r - 1
 * (float: degree 4, 1.8e-8 with the rounded coefficients; double: degree 9,
 * 4.1e-17): the truncation is a fraction of an ulp with a polynomial of
 * degree 6 resp. 11 in r, where the Taylor series took degree 7 resp. 13.
 * Because m keeps relative accuracy at 0 (k = 0 there, m is the polynomial
 * itself), tanh needs no small-argument series, no select, one division.
 *
 * The argument is clamped once (two branch-free selects; the comparisons are
 * false for NaN, which passes through and poisons the result; float sigmoid
 * caps k with an integer min instead of one of them) to a range where
 * 2^k is a valid float/double and the results have already saturated:
 * sigmoid(+inf) = 1 exactly, sigmoid(-inf) = 0 exactly (e ~ 2^127 resp.
 * 2^1023 makes the quotient subnormal: 0 under FTZ, the kernels' mode),
 * tanh(+-inf) = +-1 exactly (m + 2 == m; 2^k - 1 == -1). No libm calls, no
 * -ffast-math, no masked operations needed (AVX2 / SSE2 vectorize it).
 *
 * Accuracy measured against double (float) / long double (double) libm over
 * every float with 2^-40 <= |x| < 128 (sigmoid) or < 32 (tanh) on each ISA path,
 * and over 6M doubles (dense grids on [-40, 40], [-720, 720], 2^-58 .. 148):
 *   float  sigmoid: max rel 1.48e-7 (2.5 ulp), max abs 8.9e-8
 *   float  tanh:    max rel 2.01e-7 (2.9 ulp; 2.29e-7 on SSE2 without FMA)
 *                   (the previous exp + |x| < 0.1 series: 1.13e-6, 16 ulp)
 *   double sigmoid: max rel 2.8e-16 (2.3 ulp)
 *   double tanh:    max rel 4.3e-16 (3.3 ulp)
 */
#ifndef FASTRNN_ACT_H
#define FASTRNN_ACT_H

#include "fr_common.h"

typedef union { float f; int32_t i; } fr_fi32;
typedef union { double f; int64_t i; } fr_di64;


/* Branch-free select c ? a : b on the bit patterns. Written as a C conditional,
 * GCC sinks the computation of the unused value into a branch, and without
 * masked vector instructions (AVX-512 has them; AVX2 and SSE do not) it may not
 * if-convert an FP operation that could raise an exception unless the build
 * says traps do not matter (-fno-trapping-math, which setup.py passes): a build
 * without that flag ran the whole activation loop scalar (about 10x slower) on
 * AVX2 and baseline. With the selects the loops vectorize under any flags.
 * Both values are computed for every lane; the result is bit-exact. */
FR_INLINE float fr_self(int c, float a, float b)
{
    fr_fi32 ua, ub;
    ua.f = a; ub.f = b;
    const int32_t m = -(int32_t)(c != 0);
    ua.i = (ua.i & m) | (ub.i & ~m);
    return ua.f;
}
FR_INLINE double fr_seld(int c, double a, double b)
{
    fr_di64 ua, ub;
    ua.f = a; ub.f = b;
    const int64_t m = -(int64_t)(c != 0);
    ua.i = (ua.i & m) | (ub.i & ~m);
    return ua.f;
}

/* Range reduction for float: c x = k ln2 + r / h with k = round(c x / ln2);
 * returns 2^k in *s and r = h (c x - k ln2) (c, h compile-time constants after
 * inlining: c = -1, h = 1 for exp(-x); c = 2, h = 1/2 for exp(2x), so that the
 * reduction runs on x itself and no 2x is formed). Adding 1.5 * 2^23 + 127
 * rounds c x / ln2 to an integer and leaves k + 127 in the low mantissa bits;
 * shifted into the exponent field they give 2^k. The callers clamp x so that
 * k + 127 stays in [0, 254] (2^k = 0, 2^-126 ... 2^127). ln2 = hi + lo with hi
 * of 9 significant bits, so that k hi (and k hi / 2) is exact. */
FR_INLINE float fr_reduce_f(float x, float c, float h, float *s)
{
    const float magic = 12583039.0f;                  /* 1.5 * 2^23 + 127 */
    fr_fi32 u, sc;
    u.f = x * (c * 1.44269504088896341f) + magic;
    const float k = u.f - magic;                      /* round(c x / ln2) */
    sc.i = (int32_t)((uint32_t)u.i << 23);            /* 2^k */
    *s = sc.f;
    const float r = (c * h) * x - k * (h * 0.693359375f);   /* one fused op */
    return r - k * (h * -2.12194440e-4f);
}

/* The same for double: 1.5 * 2^52 + 1023, k + 1023 in [0, 2046]. */
FR_INLINE double fr_reduce_d(double x, double c, double h, double *s)
{
    const double magic = 6755399441056767.0;          /* 1.5 * 2^52 + 1023 */
    fr_di64 u, sc;
    u.f = x * (c * 1.4426950408889634074) + magic;
    const double k = u.f - magic;
    sc.i = (int64_t)((uint64_t)u.i << 52);
    *s = sc.f;
    const double r = (c * h) * x - k * (h * 6.93147180369123816490e-01);
    return r - k * (h * 1.90821492927058770002e-10);
}

/* Clamp to [lo, hi] with NaN passing through (both comparisons are false). */
FR_INLINE float fr_clampf(float x, float lo, float hi)
{
    x = fr_self(lo > x, lo, x);
    return fr_self(hi < x, hi, x);
}
FR_INLINE double fr_clampd(double x, double lo, double hi)
{
    x = fr_seld(lo > x, lo, x);
    return fr_seld(hi < x, hi, x);
}

/* float sigmoid: 1 / (1 + e), e = exp(-x) = 2^k (1 + em1) with em1 = r + r^2 q(r)
 * and q the degree-4 minimax fit of (e^r - 1 - r) / r^2 on |r| <= ln2/2
 * (relative error of e^r - 1 below 1.8e-8 with these float coefficients, of
 * e^r below 6.2e-9: the truncation is far below float rounding; the Taylor
 * series needs degree 7 for the same).
 * One clamp in float, one in integers (fr_reduce_f inlined for that): x <= 88
 * keeps k >= -127 (at 88, 2^k = 0 and e = 0: sigmoid exactly 1; the true
 * value rounds to 1 from x = 17) and turns x = +inf into a finite r. On the
 * other side k + 127 is capped at 254 on the rounded value's bits (one integer
 * min instead of a compare and a blend): -x large gives r > ln2/2 and e beyond
 * ~8.5e37, so the quotient is subnormal, 0 under FTZ (the kernels' mode), or e
 * overflows to inf (x = -inf: r = inf) and the quotient is exactly 0. NaN
 * passes both (the float comparison is false; r stays NaN whatever 2^k is). */
FR_INLINE float fr_sigmoid_f(float x)
{
    const float magic = 12583039.0f;                  /* 1.5 * 2^23 + 127 */
    const int32_t kmax = 0x4B4000FE;                  /* bits of magic + 127 */
    fr_fi32 u, sc;
    x = fr_self(x > 88.0f, 88.0f, x);
    u.f = x * -1.44269504088896341f + magic;
    u.i = (u.i < kmax) ? u.i : kmax;
    const float k = u.f - magic;                      /* round(-x / ln2) */
    sc.i = (int32_t)((uint32_t)u.i << 23);            /* 2^k */
    const float s = sc.f;
    float r = -x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float q = 1.388250734e-03f;
    q = q * r + 8.366581053e-03f;
    q = q * r + 4.166720062e-02f;
    q = q * r + 1.666654348e-01f;
    q = q * r + 4.999999702e-01f;
    const float em1 = (r * r) * q + r;
    return 1.0f / (1.0f + (s * em1 + s));
}

/* double: the same scheme with q of degree 9 (Chebyshev fit: relative error of
 * e^r - 1 below 4.1e-17, a fifth of an ulp; the Taylor series needs degree 13
 * in all), x clamped to [-709, 709] (k in [-1023, 1023]). */
FR_INLINE double fr_sigmoid_d(double x)
{
    double s;
    const double r = fr_reduce_d(fr_clampd(x, -709.0, 709.0), -1.0, 1.0, &s);
    double q = 2.51004725056949961e-08;
    q = q * r + 2.76202015910315469e-07;
    q = q * r + 2.75572682769056960e-06;
    q = q * r + 2.48015210578682038e-05;
    q = q * r + 1.98412698631715573e-04;
    q = q * r + 1.38888889173670814e-03;
    q = q * r + 8.33333333333003898e-03;
    q = q * r + 4.16666666666238236e-02;
    q = q * r + 1.66666666666666685e-01;
    q = q * r + 5.00000000000000111e-01;
    const double em1 = (r * r) * q + r;
    return 1.0 / (1.0 + (s * em1 + s));
}

/* float tanh: m / (m + 2) with m = expm1(2x) = 2^k em1 + (2^k - 1), one
 * division and relative accuracy at 0 without a separate series: for |x| <=
 * ln2/4, k = 0 and m is the polynomial's value. The reduction runs on x
 * (2x = k ln2 + 2r'), and em1(2r') = r' + r' P(r') with P(r') = 1 + 4 r' q(2r'),
 * q the sigmoid's fit: its coefficients times powers of 2, exact. x is clamped
 * to [-20, 20]: m + 2 == m above (tanh exactly 1; the true value rounds to 1
 * from x = 9.1), 2^k - 1 == -1 below (exactly -1). NaN passes the clamp. */
FR_INLINE float fr_tanh_f(float x)
{
    float s;
    const float r = fr_reduce_f(fr_clampf(x, -20.0f, 20.0f), 2.0f, 0.5f, &s);
    float p = 8.884804696e-02f;
    p = p * r + 2.677305937e-01f;
    p = p * r + 6.666752100e-01f;
    p = p * r + 1.333323479e+00f;
    p = p * r + 1.999999881e+00f;
    p = p * r + 1.0f;
    const float m = s * (r * p + r) + (s - 1.0f);
    return m / (m + 2.0f);
}

/* double: q of degree 9 as for sigmoid; [-20, 20] saturates too (m + 2 == m
 * from m ~ 2^54 on, 2^-58 - 1 == -1; the true tanh rounds to 1 from x = 19.1). */
FR_INLINE double fr_tanh_d(double x)
{
    double s;
    const double r = fr_reduce_d(fr_clampd(x, -20.0, 20.0), 2.0, 0.5, &s);
    double p = 5.14057676916633520e-05;
    p = p * r + 2.82830864292163040e-04;
    p = p * r + 1.41093213577757164e-03;
    p = p * r + 6.34918939081426017e-03;
    p = p * r + 2.53968254248595933e-02;
    p = p * r + 8.88888890711493213e-02;
    p = p * r + 2.66666666666561247e-01;
    p = p * r + 6.66666666665981178e-01;
    p = p * r + 1.33333333333333348e+00;
    p = p * r + 2.00000000000000044e+00;
    p = p * r + 1.0;
    const double m = s * (r * p + r) + (s - 1.0);
    return m / (m + 2.0);
}

FR_INLINE float fr_relu_f(float x) { return (x < 0.0f) ? 0.0f : x; }
FR_INLINE double fr_relu_d(double x) { return (x < 0.0) ? 0.0 : x; }

#endif
