/* Selects the element type for the kernel body included next.
 * Define NR_F32 or NR_F64, include this file, then include a *_body.h file. */
#undef T
#undef SFX
#undef SQRT
#undef EXP
#undef LOG
#undef NR_TYPED_F32
#undef NR_TYPED_F64
#if defined(NR_F32)
#define T float
#define SFX f32
#define SQRT sqrtf
#define EXP expf
#define LOG logf
#define NR_TYPED_F32 1
#undef NR_F32
#elif defined(NR_F64)
#define T double
#define SFX f64
#define SQRT sqrt
#define EXP exp
#define LOG log
#define NR_TYPED_F64 1
#undef NR_F64
#else
#error "define NR_F32 or NR_F64 before including nr_typed.h"
#endif
