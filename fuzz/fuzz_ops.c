/*
 * fuzz_ops.c - libFuzzer target: the input is an op list (ops.h byte format)
 * run against a fresh manager and its shadow model; see amm_fuzz_ops_input.
 * The basic ops only: every public operation, pools, compaction, stats and
 * allocation-failure injection (the inject op).
 */
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    amm_fuzz_ops_input(data, size, AMM_FUZZ_OPS);
    return 0;
}
