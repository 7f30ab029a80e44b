/* fastrnn C helpers: per-step recurrent matrix kernels (packed register-
 * blocked GEMM, GEMV in dot and axpy form). See fr_gemm_impl.h. */
#include "fr_common.h"


typedef float fr_v8f __attribute__((vector_size(32)));
typedef double fr_v4d __attribute__((vector_size(32)));

#define REAL float
#define VEC fr_v8f
#define VL 8
#define FR_FN(name) name##_f
#include "fr_gemm_impl.h"
#undef REAL
#undef VEC
#undef VL
#undef FR_FN

#define REAL double
#define VEC fr_v4d
#define VL 4
#define FR_FN(name) name##_d
#include "fr_gemm_impl.h"
#undef REAL
#undef VEC
#undef VL
#undef FR_FN
