/* Optimizer updates: one fused pass over a parameter buffer per step, as PyTorch's
 * single-tensor SGD and Adam/AdamW compute them (see optim_body.h for the formulas).
 * Step counts and bias corrections are the caller's: the kernels see only scalars. */
#include "nr_common.h"

#define NR_F32
#include "nr_typed.h"
#include "optim_body.h"

#define NR_F64
#include "nr_typed.h"
#include "optim_body.h"
