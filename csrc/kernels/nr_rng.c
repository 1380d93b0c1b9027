/* Philox4x32-10 for one counter (rng.h): the generator's reference entry point, which the
 * tests check against published known-answer vectors. */
#include "nr_kernels.h"
#include "rng.h"

void
nr_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    uint64_t c0[1] = {ctr[0]}, c1[1] = {ctr[1]}, c2[1] = {ctr[2]}, c3[1] = {ctr[3]};
    nr_philox4x32_lanes(c0, c1, c2, c3, 1, key[0], key[1]);
    out[0] = (uint32_t)c0[0];
    out[1] = (uint32_t)c1[0];
    out[2] = (uint32_t)c2[0];
    out[3] = (uint32_t)c3[0];
}
