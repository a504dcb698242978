/*
 * fuzz_trace.c - libFuzzer target: arbitrary bytes as a trace stream.
 *
 * 1. The reader (<amm/trace.h>) must yield events, damage reports or a fatal
 *    error, never crash, and always move forward: the offset it reports never
 *    goes back and never passes the input's end.
 * 2. The trace adapter turns the same bytes into an op list (amm-replay's
 *    path); when that works and the list is small, the executor replays it,
 *    and any fault it finds is a bug (every list is valid by construction).
 * Memory stays bounded: the reader works in place, the adapter's maps are
 * capped, and large replays are not run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amm/trace.h>

#include "ops.h"

#define REPLAY_MAX_OPS 512
#define REPLAY_MAX_BYTES ((uint64_t)4 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const uint8_t *data, size_t size) {
    char err[256];
    amm_trace_reader *r = amm_trace_open_mem(data, size, err, sizeof err);
    if (!r) {
        if (!err[0]) {
            fprintf(stderr, "fuzz_trace: open failed without an error text\n");
            abort();
        }
        return;
    }
    amm_trace_event ev;
    uint64_t last = 0;
    for (size_t n = 0; n < size + 16; n++) {
        amm_trace_status s = amm_trace_next(r, &ev);
        uint64_t off = amm_trace_offset(r);
        if (off < last || off > size) {
            fprintf(stderr, "fuzz_trace: reader offset went from %llu to %llu (input %zu bytes)\n",
                    (unsigned long long)last, (unsigned long long)off, size);
            abort();
        }
        if (s == AMM_TRACE_DAMAGED && !amm_trace_error(r)[0]) {
            fprintf(stderr, "fuzz_trace: damage reported without an error text\n");
            abort();
        }
        if (s == AMM_TRACE_END || s == AMM_TRACE_FATAL || s == AMM_TRACE_AGAIN) break;
        last = off;
    }
    amm_trace_close(r);
}

static int small_enough(const amm_op_list *l) {
    uint64_t bytes = 0;
    if (l->count > REPLAY_MAX_OPS) return 0;
    for (size_t i = 0; i < l->count; i++) {
        uint64_t n = l->ops[i].kind == AMM_OP_POOL_CREATE ? l->ops[i].n : 1; /* a pool maps size * count */
        if (l->ops[i].size > REPLAY_MAX_BYTES || n > 4096) return 0;
        bytes += l->ops[i].size * n;
    }
    return bytes <= 8 * REPLAY_MAX_BYTES;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    read_all(data, size);
    amm_op_list l = {0};
    char err[256];
    if (amm_ops_from_trace(data, size, &l, NULL, NULL, NULL, err, sizeof err) == 0 && small_enough(&l)) {
        amm_exec_options o;
        amm_exec_result r;
        amm_exec_options_default(&o);
        o.check_every = 8;
        if (amm_exec_run(&l, &o, &r) == AMM_EXEC_FAULT) {
            fprintf(stderr, "\nfuzz_trace: replay FAULT at op #%zu: %s\n"
                            "replay: amm-replay print CRASH_FILE; amm-replay run CRASH_FILE\n",
                    r.op_index, r.message);
            abort();
        }
    }
    amm_ops_free(&l);
    return 0;
}
