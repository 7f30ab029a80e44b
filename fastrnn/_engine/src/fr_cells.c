/* fastrnn C helpers: fused pointwise passes for Elman / LSTM / GRU steps,
 * floating point environment control and runtime ISA information.
 * See fr_common.h for the function contracts and fr_act.h for the
 * activations. */
#include "fr_common.h"
#include "fr_act.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define FR_X86 1
#endif

unsigned int fr_ftz_enter(void)
{
#ifdef FR_X86
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);   /* FTZ (bit 15) | DAZ (bit 6) */
    return saved;
#else
    return 0;
#endif
}

void fr_ftz_exit(unsigned int saved)
{
#ifdef FR_X86
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}

int fr_simd_level(void)
{
#if defined(FR_X86) && defined(__GNUC__)
    __builtin_cpu_init();
#if defined(FASTRNN_HAVE_TARGET_CLONES)
    if (__builtin_cpu_supports("avx512f")) return 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
    return 0;
#else
#if defined(__AVX512F__)
    return 3;
#elif defined(__AVX2__) && defined(__FMA__)
    return 2;
#else
    return 0;
#endif
#endif
#else
    return -1;
#endif
}

int fr_have_target_clones(void)
{
#if defined(FASTRNN_HAVE_TARGET_CLONES)
    return 1;
#else
    return 0;
#endif
}

/* float instantiation */
#define REAL float
#define FR_FN(name) name##_f
#define SIGM fr_sigmoid_f
#define TANH fr_tanh_f
#define RELU fr_relu_f
#include "fr_cells_impl.h"
#undef REAL
#undef FR_FN
#undef SIGM
#undef TANH
#undef RELU

/* double instantiation */
#define REAL double
#define FR_FN(name) name##_d
#define SIGM fr_sigmoid_d
#define TANH fr_tanh_d
#define RELU fr_relu_d
#include "fr_cells_impl.h"
#undef REAL
#undef FR_FN
#undef SIGM
#undef TANH
#undef RELU
