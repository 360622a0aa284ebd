/* A test contract that grows its memory by 100 pages (6.4 MiB) at run time, within the maximum it
 * declares but over the runner's limit of 1 MiB: it must be denied with memory-limit.
 * link: -Wl,--max-memory=67108864
 */
#include "medledger.h"

ML_EXPORT("decide") void decide(void) {
    if (__builtin_wasm_memory_grow(0, 100) == (__SIZE_TYPE__)-1) {
        ml_deny_text("memory.grow was refused");
        return;
    }
    ml_grant(ml_block_time() + 1000);
}
