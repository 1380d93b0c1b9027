/* Synchronized batch norm over a batch split across processes. Each process holds rows of
 * x (N, C, L); the statistics of channel c are over all processes' N L values.
 *
 * Forward: each process computes its channel means and M2 = sum (x - mean)^2 (two passes,
 * double accumulators); the caller merges (count, mean, M2) across processes with Chan's
 * formula and normalizes with the global statistics. The global mean stays in double: rounded
 * to float32, a mean of 1e6 would be off by up to 0.03, an error every xhat would carry.
 * Backward, with xhat = (x - mean) rstd and n the global count:
 *   dx = w rstd (dy - sum(dy) / n - xhat sum(dy xhat) / n)
 * where the two sums run over the global batch: each process computes its partial sums
 * (nr_syncbn_grad_sums), the caller adds them across processes, then nr_syncbn_backward.
 */
#include "nr_common.h"
#include "nr_syncbn.h"

#define NR_F32
#include "nr_typed.h"
#include "syncbn_body.h"

#define NR_F64
#include "nr_typed.h"
#include "syncbn_body.h"
