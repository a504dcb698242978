/*
 * fuzz_misuse.c - libFuzzer target: the input is an op list (ops.h byte format)
 * run against a fresh manager and its shadow model; see amm_fuzz_ops_input.
 * All ops, including deliberate faults (overflow, underflow, write after free,
 * double, interior, foreign and shared frees, over-long copies): each must be
 * reported once with the right kind, and the manager must stay consistent.
 */
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    amm_fuzz_ops_input(data, size, AMM_FUZZ_MISUSE);
    return 0;
}
