/*
 * wl_mixed.c - mixed workload: random sizes, realloc growth, seeded random
 * lifetimes; reports ops/s and peak resident memory over peak live bytes.
 *
 * A table of `slots` pointers; each op picks a random slot: an empty slot gets
 * a new block (70% 8-128 B, 25% 129-2048 B, 5% 2-32 KiB), an occupied one is
 * grown by realloc (1 in 4, by half plus up to 63 bytes, below 64 KiB) or
 * freed.  A block's lifetime is therefore random (geometric), set by the seed.
 * The program writes every byte it allocates (a per-block tag) and checks the
 * tag before each realloc and free, so resident memory is really used and a
 * corrupting allocator fails the run.
 *
 * Each measurement runs in a fresh process (bench_run_child) so the peak RSS
 * delta (VmHWM after clear_refs, minus RSS at the start) belongs to this
 * workload and allocator only.
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

typedef struct mixed_slot {
    unsigned char *ptr;
    size_t size;
    unsigned char tag;
} mixed_slot;

typedef struct mixed_state {
    bench_alloc *a;
    bench_rng rng;
    mixed_slot *slot;
    size_t nslots;
    size_t live, peak_live;
    size_t ops;
    unsigned char next_tag;
} mixed_state;

static size_t mixed_size(bench_rng *r)
{
    size_t pick = bench_rng_range(r, 0, 99);
    if (pick < 70)
        return bench_rng_range(r, 8, 128);
    if (pick < 95)
        return bench_rng_range(r, 129, 2048);
    return bench_rng_range(r, 2049, 32768);
}

static int tag_ok(const mixed_slot *s)
{
    return s->ptr[0] == s->tag && s->ptr[s->size - 1] == s->tag && s->ptr[s->size / 2] == s->tag;
}

static int mixed_alloc(mixed_state *st, mixed_slot *s)
{
    s->size = mixed_size(&st->rng);
    s->tag = ++st->next_tag;
    s->ptr = st->a->alloc(st->a->ctx, s->size);
    if (s->ptr == NULL) {
        bench_fail("%s: mixed: allocation of %zu bytes failed", st->a->name, s->size);
        return -1;
    }
    memset(s->ptr, s->tag, s->size);
    st->live += s->size;
    return 0;
}

static int mixed_grow(mixed_state *st, mixed_slot *s)
{
    size_t grown = s->size + s->size / 2 + bench_rng_range(&st->rng, 0, 63);
    unsigned char *q = st->a->resize(st->a->ctx, s->ptr, grown);
    if (q == NULL) {
        bench_fail("%s: mixed: realloc %zu -> %zu failed", st->a->name, s->size, grown);
        return -1;
    }
    if (q[0] != s->tag || q[s->size - 1] != s->tag) {
        bench_fail("%s: mixed: realloc %zu -> %zu lost the contents", st->a->name, s->size, grown);
        return -1;
    }
    memset(q + s->size, s->tag, grown - s->size);
    st->live += grown - s->size;
    s->ptr = q;
    s->size = grown;
    return 0;
}

static int mixed_release(mixed_state *st, mixed_slot *s)
{
    if (!tag_ok(s)) {
        bench_fail("%s: mixed: a %zu-byte block changed while live", st->a->name, s->size);
        return -1;
    }
    st->a->release(st->a->ctx, s->ptr);
    st->live -= s->size;
    s->ptr = NULL;
    return 0;
}

static int mixed_step(mixed_state *st)
{
    mixed_slot *s = &st->slot[bench_rng_next(&st->rng) % st->nslots];
    int rc;
    if (s->ptr == NULL)
        rc = mixed_alloc(st, s);
    else if (bench_rng_range(&st->rng, 0, 3) == 0 && s->size < 65536)
        rc = mixed_grow(st, s);
    else
        rc = mixed_release(st, s);
    st->peak_live = st->live > st->peak_live ? st->live : st->peak_live;
    st->ops++;
    return rc;
}

static void amm_figures(bench_alloc *a, bench_kv *out)
{
    amm_manager *m = bench_alloc_amm(a);
    if (m == NULL)
        return;
    amm_stats s;
    amm_get_stats(m, &s);
    bench_kv_put(out, "amm_peak_live", (double)s.peak_live_bytes);
    bench_kv_put(out, "amm_resident_end", (double)s.resident_bytes);
    bench_kv_put(out, "amm_reserved_end", (double)s.reserved_bytes);
    bench_kv_put(out, "amm_live_end", (double)s.live_bytes);
    bench_kv_put(out, "amm_free_end", (double)s.free_bytes);
    bench_kv_put(out, "amm_quarantine_end", (double)s.quarantine_bytes);
    bench_kv_put(out, "amm_regions_end", (double)s.region_count);
    bench_kv_put(out, "amm_large_end", (double)s.large_count);
}

int wl_mixed_child(bench_alloc *a, uint64_t seed, int quick, bench_kv *out)
{
    mixed_state st;
    size_t total_ops = quick ? 20000 : 2000000;
    memset(&st, 0, sizeof st);
    st.a = a;
    st.nslots = quick ? 256 : 20000;
    bench_rng_seed(&st.rng, seed);
    /* malloc + memset, not calloc: the table must be resident before the
     * RSS baseline is taken. */
    st.slot = malloc(st.nslots * sizeof *st.slot);
    if (st.slot == NULL || bench_alloc_begin(a) != 0) {
        free(st.slot);
        return -1;
    }
    memset(st.slot, 0, st.nslots * sizeof *st.slot);
    int reset_ok = bench_rss_peak_reset() == 0;
    double rss0 = bench_rss_now();
    uint64_t t0 = bench_cpu_ns();
    int rc = 0;
    while (rc == 0 && st.ops < total_ops)
        rc = mixed_step(&st);
    uint64_t t1 = bench_cpu_ns();
    double peak = bench_rss_peak();
    amm_figures(a, out);
    for (size_t i = 0; i < st.nslots; i++)
        if (st.slot[i].ptr != NULL && mixed_release(&st, &st.slot[i]) != 0)
            rc = -1;
    if (bench_alloc_end(a) != 0)
        rc = -1;
    free(st.slot);
    bench_kv_put(out, "ns", (double)(t1 - t0));
    bench_kv_put(out, "ops", (double)st.ops);
    bench_kv_put(out, "peak_live", (double)st.peak_live);
    bench_kv_put(out, "peak_rss", peak - rss0);
    bench_kv_put(out, "peak_reset", reset_ok);
    return rc;
}

/* Per allocator: the repeats' figures (ms, Mops/s, peak live, peak RSS). */
typedef struct mixed_runs {
    int n;
    double ms[16], mops[16], live[16], rss[16];
    double own[16]; /* amm only: amm_get_stats resident / live at the end */
} mixed_runs;

static void mixed_collect(bench_alloc *a, const bench_opts *o, mixed_runs *runs)
{
    bench_kv kv;
    if (!a->available || bench_run_child("mixed", a->name, o->seed, o->quick, &kv) != 0)
        return;
    double ns = bench_kv_get(&kv, "ns", -1);
    runs->ms[runs->n] = ns / 1e6;
    runs->mops[runs->n] = bench_kv_get(&kv, "ops", 0) / (ns / 1e9) / 1e6;
    runs->live[runs->n] = bench_kv_get(&kv, "peak_live", -1);
    runs->rss[runs->n] = bench_kv_get(&kv, "peak_rss", -1);
    double live_end = bench_kv_get(&kv, "amm_live_end", -1);
    runs->own[runs->n] = live_end > 0 ? bench_kv_get(&kv, "amm_resident_end", -1) / live_end : -1;
    runs->n++;
}

void wl_mixed(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    bench_table t;
    char title[200];
    mixed_runs runs[BENCH_KIND_COUNT];
    double base_ms = -1;
    snprintf(title, sizeof title,
             "mixed workload: random sizes, realloc growth, random lifetimes (seed %llu; ratio to glibc)",
             (unsigned long long)o->seed);
    bench_table_init(&t, title,
                     "one fresh process per run, allocators interleaved; peak RSS = VmHWM - RSS at start "
                     "(includes amm's out-of-band records); medians of the repeats.");
    int c_name = bench_table_col(&t, "allocator");
    int c_ms = bench_table_col(&t, "time ms");
    int c_mops = bench_table_col(&t, "Mops/s");
    int c_live = bench_table_col(&t, "peak live MiB");
    int c_rss = bench_table_col(&t, "peak RSS MiB");
    int c_ratio = bench_table_col(&t, "RSS/live");
    int c_own = bench_table_col(&t, "amm stats resident/live (end)");
    memset(runs, 0, sizeof runs);
    for (int r = 0; r < o->repeats && r < 16; r++)
        for (int k = 0; k < BENCH_KIND_COUNT; k++)
            mixed_collect(&all[k], o, &runs[k]);
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        int row = bench_table_row(&t);
        int n = runs[k].n;
        bench_table_text(&t, row, c_name, "%s", all[k].name);
        if (n == 0) {
            bench_table_text(&t, row, c_ms, all[k].available ? "failed" : "n/a");
            continue;
        }
        double med_ms = bench_median(runs[k].ms, (size_t)n), med_live = bench_median(runs[k].live, (size_t)n);
        double med_rss = bench_median(runs[k].rss, (size_t)n);
        if (k == BENCH_GLIBC)
            base_ms = med_ms;
        bench_table_ratio(&t, row, c_ms, med_ms, base_ms, 1);
        bench_table_num(&t, row, c_mops, bench_median(runs[k].mops, (size_t)n), 2);
        bench_table_num(&t, row, c_live, med_live / 1048576.0, 2);
        bench_table_num(&t, row, c_rss, med_rss / 1048576.0, 2);
        bench_table_num(&t, row, c_ratio, med_live > 0 ? med_rss / med_live : -1, 2);
        bench_table_num(&t, row, c_own, bench_median(runs[k].own, (size_t)n), 2);
        if (k == BENCH_AMM_FAST || k == BENCH_AMM_CHECKED)
            bench_target_observe(k == BENCH_AMM_FAST ? BENCH_TARGET_RSS_FAST : BENCH_TARGET_RSS_CHECKED,
                                 med_live > 0 ? med_rss / med_live : -1, "mixed");
    }
    bench_table_emit(&t);
}
