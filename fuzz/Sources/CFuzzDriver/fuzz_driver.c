// The declarations in include/fuzz_driver.h are implemented by libFuzzer's runtime.
#include "fuzz_driver.h"
