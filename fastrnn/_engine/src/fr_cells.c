/* fastrnn C helpers: floating point environment control. The pointwise passes
 * (fr_cells_impl.h) are compiled per instruction set by fr_kern.c. */
#include "fr_common.h"

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
