/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
 * a counter-based generator. Output depends only on (counter, key), so any element's
 * random word can be computed independently, by any thread, in any order. */
#include "nr_common.h"
#include "rng.h"

void
nr_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    uint32_t c0[1] = {ctr[0]}, c1[1] = {ctr[1]}, c2[1] = {ctr[2]}, c3[1] = {ctr[3]};
    nr_philox4x32_lanes(c0, c1, c2, c3, 1, key[0], key[1]);
    out[0] = c0[0];
    out[1] = c1[0];
    out[2] = c2[0];
    out[3] = c3[0];
}
