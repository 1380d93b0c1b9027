/* Batch normalization per channel c of x (N, C, L), over the N * L values of that channel:
 *   y = w * (x - mean) / sqrt(var + eps) + b
 * Training uses the batch's mean and biased variance and updates the running estimates
 *   running_mean := (1 - m) running_mean + m mean
 *   running_var  := (1 - m) running_var  + m var * n / (n - 1)   (unbiased, as PyTorch)
 * Evaluation uses the running estimates. (N, C) input is L = 1.
 */
#include "nr_common.h"

#define NR_F32
#include "nr_typed.h"
#include "batchnorm_body.h"

#define NR_F64
#include "nr_typed.h"
#include "batchnorm_body.h"
