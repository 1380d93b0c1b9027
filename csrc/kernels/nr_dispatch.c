/* The CPU check and the dispatch table (see nr_dispatch.h). Compiled once, with the
 * baseline flags: it must run on every CPU, since it decides what else may run. */
#include <string.h>

#include "nr_dispatch.h"

#define NR_CAT2(a, b) a##_##b
#define NR_CAT(a, b) NR_CAT2(a, b)

/* the kernels of one tier, as compiled from the family files (name_<tier>) */
#define NR_DECLARE_TIER(name, tier) __typeof__(name) NR_CAT(name, tier);
#define NR_TABLE_ENTRY(name, tier) .name = NR_CAT(name, tier),
#define NR_TIER_TABLE(tier) {NR_DISPATCHED_KERNELS(NR_TABLE_ENTRY, tier)}

static const char *const nr_tier_names[NR_TIER_COUNT] = {
    [NR_TIER_AVX512] = "avx512",
    [NR_TIER_AVX2] = "avx2",
    [NR_TIER_BASELINE] = "baseline",
    [NR_TIER_NEON] = "neon",
};

#if defined(__x86_64__)
NR_DISPATCHED_KERNELS(NR_DECLARE_TIER, avx512)
NR_DISPATCHED_KERNELS(NR_DECLARE_TIER, avx2)
NR_DISPATCHED_KERNELS(NR_DECLARE_TIER, baseline)
static const struct nr_kernel_table nr_tables[NR_TIER_COUNT] = {
    [NR_TIER_AVX512] = NR_TIER_TABLE(avx512),
    [NR_TIER_AVX2] = NR_TIER_TABLE(avx2),
    [NR_TIER_BASELINE] = NR_TIER_TABLE(baseline),
};
#define NR_LOWEST_TIER NR_TIER_BASELINE
struct nr_kernel_table nr_dispatch = NR_TIER_TABLE(baseline);

/* The best tier this CPU runs. __builtin_cpu_supports (gcc and clang) reports a feature
 * only when the operating system also saves its registers (XGETBV), as a tier needs. */
static nr_tier
nr_cpu_best_tier(void)
{
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        return NR_TIER_AVX512;
    }
    return avx2 ? NR_TIER_AVX2 : NR_TIER_BASELINE;
}

int
nr_tier_compiled(nr_tier tier)
{
    return tier == NR_TIER_AVX512 || tier == NR_TIER_AVX2 || tier == NR_TIER_BASELINE;
}

/* the tiers a request may name, best first, and what they resolve to */
static const char *const nr_choice_names[] = {"avx512", "avx2", "baseline"};
static const nr_tier nr_choice_tiers[] = {NR_TIER_AVX512, NR_TIER_AVX2, NR_TIER_BASELINE};
#define NR_CHOICES "avx512, avx2, baseline"

#else
/* One tier: NEON on AArch64 (every CPU has it, and "baseline" names it too), the portable
 * baseline elsewhere. */
#if defined(__aarch64__)
#define NR_ONLY_TIER NR_TIER_NEON
#define NR_ONLY_SFX neon
static const char *const nr_choice_names[] = {"neon", "baseline"};
static const nr_tier nr_choice_tiers[] = {NR_TIER_NEON, NR_TIER_NEON};
#define NR_CHOICES "neon, baseline"
#else
#define NR_ONLY_TIER NR_TIER_BASELINE
#define NR_ONLY_SFX baseline
static const char *const nr_choice_names[] = {"baseline"};
static const nr_tier nr_choice_tiers[] = {NR_TIER_BASELINE};
#define NR_CHOICES "baseline"
#endif
NR_DISPATCHED_KERNELS(NR_DECLARE_TIER, NR_ONLY_SFX)
static const struct nr_kernel_table nr_tables[NR_TIER_COUNT] = {
    [NR_ONLY_TIER] = NR_TIER_TABLE(NR_ONLY_SFX),
};
#define NR_LOWEST_TIER NR_ONLY_TIER
struct nr_kernel_table nr_dispatch = NR_TIER_TABLE(NR_ONLY_SFX);

static nr_tier
nr_cpu_best_tier(void)
{
    return NR_ONLY_TIER;
}

int
nr_tier_compiled(nr_tier tier)
{
    return tier == NR_ONLY_TIER;
}
#endif

static int nr_chosen = 0;
static nr_tier nr_active = NR_LOWEST_TIER;
static nr_request_status nr_status = NR_REQUEST_NONE;

/* Tiers are ordered best first: a tier runs on this CPU when it is compiled and not better
 * than the CPU's best. */
int
nr_tier_supported(nr_tier tier)
{
    return nr_tier_compiled(tier) && tier >= nr_cpu_best_tier();
}

nr_request_status
nr_dispatch_init(const char *request)
{
    if (nr_chosen) {
        return nr_status;
    }
    nr_tier tier = nr_cpu_best_tier();
    nr_request_status status = NR_REQUEST_NONE;
    if (request != NULL && request[0] != '\0') {
        status = NR_REQUEST_UNKNOWN;
        for (size_t i = 0; i < sizeof(nr_choice_names) / sizeof(nr_choice_names[0]); i++) {
            if (strcmp(request, nr_choice_names[i]) == 0) {
                if (nr_tier_supported(nr_choice_tiers[i])) {
                    tier = nr_choice_tiers[i];
                    status = NR_REQUEST_USED;
                }
                else {
                    status = NR_REQUEST_UNSUPPORTED;
                }
                break;
            }
        }
    }
    nr_dispatch = nr_tables[tier];
    nr_active = tier;
    nr_status = status;
    nr_chosen = 1;
    return status;
}

nr_tier
nr_dispatch_tier(void)
{
    return nr_active;
}

const char *
nr_tier_name(nr_tier tier)
{
    return (unsigned)tier < NR_TIER_COUNT ? nr_tier_names[tier] : "unknown";
}

const char *
nr_tier_choices(void)
{
    return NR_CHOICES;
}
