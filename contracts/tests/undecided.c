/* A test contract that returns without deciding: it must be denied with no-decision. */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) { (void)ml_requester_role(); }
