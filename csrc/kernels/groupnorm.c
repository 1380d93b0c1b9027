/* Group normalization of x (N, C, S): the C channels form G groups of C / G consecutive
 * channels; each (n, group) is normalized over its (C / G) * S values (a contiguous block),
 * then each channel gets its own affine transform:
 *   y[n, c, s] = (x[n, c, s] - mean[n, g]) * rstd[n, g] * w[c] + b[c],  g = c / (C / G)
 * with the biased variance (divides by (C / G) S) and eps inside the square root.
 * InstanceNorm is G = C; LayerNorm over (C, S) with per-channel affine is G = 1.
 */
#include "nr_common.h"
#include "nr_norms.h"

#define NR_F32
#include "nr_typed.h"
#include "groupnorm_body.h"

#define NR_F64
#include "nr_typed.h"
#include "groupnorm_body.h"
