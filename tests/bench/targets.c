/*
 * targets.c - issue 3's performance targets, checked against this run.
 *
 * Workloads report each figure a target is about (a ratio to a peer measured
 * in the same run, or a memory ratio); the worst one is kept with where it
 * came from, and the final table says which targets were met.  A missed
 * target is information, not a failure: the exit status is not affected.
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <string.h>

static const struct {
    double limit;
    const char *what;
} target_info[BENCH_TARGET_COUNT] = {
#define X(id, limit, what) {limit, what},
    BENCH_TARGETS(X)
#undef X
};

static struct {
    int seen;
    double worst;
    char where[48];
} g_targets[BENCH_TARGET_COUNT];

void bench_target_observe(bench_target t, double value, const char *where)
{
    if ((int)t < 0 || t >= BENCH_TARGET_COUNT || value < 0)
        return;
    if (!g_targets[t].seen || value > g_targets[t].worst) {
        g_targets[t].seen = 1;
        g_targets[t].worst = value;
        snprintf(g_targets[t].where, sizeof g_targets[t].where, "%s", where);
    }
}

void bench_targets_emit(void)
{
    bench_table t;
    bench_table_init(&t, "targets (issue 3): worst case of this run",
                     "a target is met when the worst figure is <= the limit; ratios are against peers "
                     "measured in this same run.");
    int c_what = bench_table_col(&t, "target");
    int c_limit = bench_table_col(&t, "limit");
    int c_worst = bench_table_col(&t, "worst");
    int c_where = bench_table_col(&t, "where");
    int c_met = bench_table_col(&t, "met");
    for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
        if (!g_targets[i].seen)
            continue;
        int row = bench_table_row(&t);
        bench_table_text(&t, row, c_what, "%s", target_info[i].what);
        bench_table_num(&t, row, c_limit, target_info[i].limit, 2);
        bench_table_num(&t, row, c_worst, g_targets[i].worst, 3);
        bench_table_text(&t, row, c_where, "%s", g_targets[i].where);
        bench_table_text(&t, row, c_met, "%s", g_targets[i].worst <= target_info[i].limit ? "yes" : "NO");
    }
    if (t.nrows > 0)
        bench_table_emit(&t);
}
