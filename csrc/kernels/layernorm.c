/* Layer normalization over the last D values of each row:
 *   y = w * (x - E[x]) / sqrt(Var[x] + eps) + b,   Var biased (divides by D).
 */
#include "nr_common.h"

#define NR_F32
#include "nr_typed.h"
#include "layernorm_body.h"

#define NR_F64
#include "nr_typed.h"
#include "layernorm_body.h"
