#ifndef MEDLEDGER_FUZZ_DRIVER_H
#define MEDLEDGER_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (in clang's fuzzer runtime, linked by -sanitize=fuzzer). SwiftPM links an
/// executable target with `main` aliased to `<module>_main`, so each fuzz target defines that
/// function and hands control to this driver, which then calls LLVMFuzzerInitialize and
/// LLVMFuzzerTestOneInput as libFuzzer's own main would.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
