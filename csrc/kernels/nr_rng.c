/* Philox4x32-10 for one counter (rng.h): the generator's reference entry point, which the
 * tests check against published known-answer vectors. */
#include "nr_kernels.h"
#include "rng.h"

void
nr_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    nr_philox_v c[1][4] = {{{ctr[0]}, {ctr[1]}, {ctr[2]}, {ctr[3]}}}; /* in lane 0 */
    nr_philox4x32_v(c, 1, key[0], key[1]);
    for (int w = 0; w < 4; w++) {
        out[w] = (uint32_t)c[0][w][0];
    }
}
