/* A test contract that computes with floating point (whose NaN bits differ between machines): it
 * must be denied with forbidden-feature before it runs. */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    volatile double x = (double)ml_block_time();
    ml_grant((int64_t)(x * 1.5));
}
