/* A test contract that traps (the unreachable instruction): it must be denied with trap. */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) { __builtin_trap(); }
