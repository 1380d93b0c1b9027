/* Linear layer: y = x W + b with W stored (in_features, out_features), via OpenBLAS. */
#include "nr_blas.h"
#include "nr_common.h"

#define NR_F32
#include "nr_typed.h"
#include "linear_body.h"

#define NR_F64
#include "nr_typed.h"
#include "linear_body.h"
