/* A test contract that grants every request for an hour (tests of the serving rules use it). */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) { ml_grant(ml_block_time() + 60 * 60 * 1000); }
