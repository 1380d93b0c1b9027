/* CPU dispatch: one table of kernel pointers, filled once at import with the best tier the
 * CPU supports (or the lower one NORMREG_CPU_CAPABILITY asks for), as ATen's and NumPy's
 * dispatchers do.
 *
 * The kernels declared in nr_kernels.h, nr_norms.h, nr_syncbn.h and nr_conv.h are
 * contracts: each is compiled once per tier under its name plus the tier's suffix
 * (nr_relu_forward_f32_avx2, see nr_tier.h), and called through this table's member of the same name:
 *   nr_dispatch.nr_relu_forward_f32(y, x, n);
 * A new kernel is added to the contract headers and to NR_DISPATCHED_KERNELS below. */
#ifndef NR_DISPATCH_H
#define NR_DISPATCH_H

#include "nr_conv.h"
#include "nr_kernels.h"
#include "nr_norms.h"
#include "nr_syncbn.h"

/* X(name, arg) for every kernel that has a body per tier, by family: a forward and a
 * backward (FB), the same with the backward's workspace size (FWB), and the rest by name
 * (kept out of clang-format, which would fold the list into a staircase) */
/* clang-format off */
#define NR_FB(X, A, op, SFX) X(op##_forward_##SFX, A) X(op##_backward_##SFX, A)
#define NR_FWB(X, A, op, SFX) NR_FB(X, A, op, SFX) X(op##_backward_workspace_##SFX, A)
#define NR_DISPATCHED_TYPED(X, A, SFX)                                                      \
    NR_FB(X, A, nr_linear, SFX) NR_FB(X, A, nr_relu, SFX) NR_FB(X, A, nr_dropout, SFX)      \
    NR_FB(X, A, nr_cross_entropy, SFX) NR_FB(X, A, nr_max_pool2d, SFX)                      \
    NR_FB(X, A, nr_avg_pool2d, SFX) NR_FB(X, A, nr_adaptive_avg_pool2d, SFX)                \
    NR_FWB(X, A, nr_layernorm, SFX) NR_FWB(X, A, nr_rmsnorm, SFX)                           \
    NR_FWB(X, A, nr_groupnorm, SFX) NR_FWB(X, A, nr_conv2d, SFX)                            \
    X(nr_conv2d_forward_workspace_##SFX, A) X(nr_sgd_step_##SFX, A) X(nr_adam_step_##SFX, A) \
    X(nr_batchnorm_workspace_##SFX, A) X(nr_batchnorm_forward_train_##SFX, A)               \
    X(nr_batchnorm_forward_eval_##SFX, A) X(nr_batchnorm_backward_##SFX, A)                 \
    X(nr_batchnorm_apply_grad_##SFX, A) X(nr_exp_##SFX, A) X(nr_syncbn_workspace_##SFX, A)   \
    X(nr_syncbn_stats_##SFX, A) X(nr_syncbn_forward_##SFX, A)                               \
    X(nr_syncbn_grad_sums_##SFX, A) X(nr_syncbn_backward_##SFX, A)
#define NR_DISPATCHED_KERNELS(X, A)                                                         \
    NR_DISPATCHED_TYPED(X, A, f32) NR_DISPATCHED_TYPED(X, A, f64)                           \
    X(nr_dropout_mask, A) X(nr_copy_f32, A) X(nr_index_out_of_range, A)
/* clang-format on */

struct nr_kernel_table {
#define NR_TABLE_MEMBER(name, unused) __typeof__(name) *name;
    NR_DISPATCHED_KERNELS(NR_TABLE_MEMBER, ~)
#undef NR_TABLE_MEMBER
};

/* The active tier's kernels. Filled by nr_dispatch_init; before that, the lowest tier's. */
extern struct nr_kernel_table nr_dispatch;

/* Tiers, best first on each architecture. */
typedef enum {
    NR_TIER_AVX512,
    NR_TIER_AVX2,
    NR_TIER_BASELINE,
    NR_TIER_NEON,
    NR_TIER_COUNT
} nr_tier;

/* What nr_dispatch_init did with the request. */
typedef enum {
    NR_REQUEST_NONE,        /* no request (NULL or ""): the best tier the CPU supports */
    NR_REQUEST_USED,        /* the requested tier */
    NR_REQUEST_UNKNOWN,     /* not a tier name of this architecture: the best tier instead */
    NR_REQUEST_UNSUPPORTED, /* more than this CPU supports: the best tier instead */
} nr_request_status;

/* Chooses the tier and fills nr_dispatch; only the first call chooses, later ones return
 * what it chose (the table never changes while kernels may run). `request` is the value of
 * NORMREG_CPU_CAPABILITY or NULL. */
nr_request_status nr_dispatch_init(const char *request);
/* The active tier. */
nr_tier nr_dispatch_tier(void);
/* The tier's name ("avx512", "avx2", "baseline", "neon"). */
const char *nr_tier_name(nr_tier tier);
/* Whether this build compiled the tier, and whether this CPU can run it. */
int nr_tier_compiled(nr_tier tier);
int nr_tier_supported(nr_tier tier);
/* The names a request may use on this architecture, e.g. "avx512, avx2, baseline". */
const char *nr_tier_choices(void);

#endif
