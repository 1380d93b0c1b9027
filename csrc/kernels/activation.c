/* ReLU: y = max(x, 0); NaN passes through as NaN. */
#include "nr_common.h"

#define NR_F32
#include "nr_typed.h"
#include "activation_body.h"

#define NR_F64
#include "nr_typed.h"
#include "activation_body.h"
