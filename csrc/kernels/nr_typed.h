/* Selects the element type for the kernel body included next.
 * Define NR_F32 or NR_F64, include this file, then include a *_body.h file. */
#undef T
#undef SFX
#undef SQRT
#undef EXP
#undef LOG
#undef NR_TYPED_F32
#undef NR_TYPED_F64
#undef NR_T_MAX
#undef NR_T_MIN
#undef NR_T_TINY
#undef GEMM
#undef NR_FMA_FN
#undef NR_TYPED_SIZE
/* GEMM: the CBLAS gemm for T (include nr_blas.h to call it).
 * NR_T_MAX, NR_T_MIN: the largest and the smallest normal value of T; NR_T_TINY: below it,
 * a variance summed from squares in T may have lost digits to underflow. NR_TYPED_SIZE:
 * sizeof(T) for the preprocessor. */
#if defined(NR_F32)
#define T float
#define SFX f32
#define SQRT sqrtf
#define EXP expf
#define LOG logf
#define NR_T_MAX FLT_MAX
#define NR_T_MIN FLT_MIN
#define NR_T_TINY (FLT_MIN / FLT_EPSILON)
#define NR_TYPED_F32 1
#define NR_TYPED_SIZE 4
#define GEMM NR_CBLAS(sgemm)
#define NR_FMA_FN fmaf
#undef NR_F32
#elif defined(NR_F64)
#define T double
#define SFX f64
#define SQRT sqrt
#define EXP exp
#define LOG log
#define NR_T_MAX DBL_MAX
#define NR_T_MIN DBL_MIN
#define NR_T_TINY (DBL_MIN / DBL_EPSILON)
#define NR_TYPED_F64 1
#define NR_TYPED_SIZE 8
#define GEMM NR_CBLAS(dgemm)
#define NR_FMA_FN fma
#undef NR_F64
#else
#error "define NR_F32 or NR_F64 before including nr_typed.h"
#endif
