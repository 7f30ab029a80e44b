/* One instruction set's kernels, float and double. fr_kern.c defines
 *   FR_ISA                 the name suffix (baseline, avx2, avx2w16, avx512)
 *   FR_VEC_F, FR_VL_F      the float vector type and its lanes
 *   FR_VEC_D, FR_VL_D      the double vector type and its lanes
 *   MR_GEN NV_GEN MR_LSTM MR_GRU MR_ELM U_ELM   the register tiles (fr_kern_impl.h)
 * inside the ISA's `#pragma GCC target` region, then includes this file, which
 * instantiates fr_kern_impl.h and fr_cells_impl.h for both dtypes and undefines
 * all of the above. (An #include cannot live in a macro, hence a file.) */
#define REAL float
#define IREAL int32_t
#define VEC FR_VEC_F
#define VL FR_VL_F
#define FR_FN(name) FR_CAT3(name, _f_, FR_ISA)
#define SIGM fr_sigmoid_f
#define TANH fr_tanh_f
#define RELU fr_relu_f
#include "fr_kern_impl.h"
#include "fr_cells_impl.h"
#undef REAL
#undef IREAL
#undef VEC
#undef VL
#undef FR_FN
#undef SIGM
#undef TANH
#undef RELU
#define REAL double
#define IREAL int64_t
#define VEC FR_VEC_D
#define VL FR_VL_D
#define FR_FN(name) FR_CAT3(name, _d_, FR_ISA)
#define SIGM fr_sigmoid_d
#define TANH fr_tanh_d
#define RELU fr_relu_d
#include "fr_kern_impl.h"
#include "fr_cells_impl.h"
#undef REAL
#undef IREAL
#undef VEC
#undef VL
#undef FR_FN
#undef SIGM
#undef TANH
#undef RELU
#undef FR_ISA
#undef FR_VEC_F
#undef FR_VL_F
#undef FR_VEC_D
#undef FR_VL_D
#undef MR_GEN
#undef NV_GEN
#undef MR_LSTM
#undef MR_GRU
#undef MR_ELM
#undef U_ELM
