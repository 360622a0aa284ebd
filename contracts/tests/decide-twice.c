/* A test contract that decides twice: it must be denied with invalid-decision. */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    ml_deny_text("no");
    ml_grant(ml_block_time() + 1000);
}
