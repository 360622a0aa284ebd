/* A test contract that never returns: it must be denied with out-of-fuel, promptly. */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    volatile int32_t counter = 0;
    for (;;) counter++;
}
