/* RMS normalization over the last D values of each row (PyTorch's nn.RMSNorm):
 *   y = x / sqrt(mean(x^2) + eps) * w
 * No centering and no bias: rstd = 1 / sqrt(mean(x^2) + eps) is the only statistic.
 */
#include "nr_common.h"
#include "nr_norms.h"

#define NR_F32
#include "nr_typed.h"
#include "rmsnorm_body.h"

#define NR_F64
#include "nr_typed.h"
#include "rmsnorm_body.h"
