/* Linear layer: y = x W + b with W stored (in_features, out_features), via OpenBLAS. */
#include "nr_blas.h"
#include "nr_common.h"

#define NR_F32
#include "nr_typed.h"
#define GEMM NR_CBLAS(sgemm)
#include "linear_body.h"
#undef GEMM

#define NR_F64
#include "nr_typed.h"
#define GEMM NR_CBLAS(dgemm)
#include "linear_body.h"
#undef GEMM
