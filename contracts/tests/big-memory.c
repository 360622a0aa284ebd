/* A test contract that declares 2 MiB of initial memory, over the runner's limit of 1 MiB: it must
 * be denied with memory-limit before it runs.
 * link: -Wl,--initial-memory=2097152 -Wl,--max-memory=2097152
 */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) { ml_grant(ml_block_time() + 1000); }
