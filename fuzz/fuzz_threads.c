/*
 * fuzz_threads.c - libFuzzer target: the input is an op list (ops.h byte format)
 * run against a fresh manager and its shadow model; see amm_fuzz_ops_input.
 * The ops are split over two threads sharing one manager (by slot parity),
 * for the lock paths; build it with -fsanitize=thread as well.
 */
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    amm_fuzz_ops_input(data, size, AMM_FUZZ_THREADS);
    return 0;
}
