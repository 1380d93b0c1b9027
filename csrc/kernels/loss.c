/* Softmax cross-entropy with integer labels, mean over the batch:
 *   loss = mean_i (lse_i - logits[i, label_i]),  lse_i = log sum_j exp(logits[i, j])
 * computed as max + log sum exp(logits - max), so it is finite for logits of any size.
 * The exponentials are vexp.h's, at the tier's vector width. */
#include "nr_common.h"
#include "vexp.h"

#define NR_F32
#include "nr_typed.h"
#include "loss_body.h"

#define NR_F64
#include "nr_typed.h"
#include "loss_body.h"
