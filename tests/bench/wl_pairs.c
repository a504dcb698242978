/*
 * wl_pairs.c - single-thread alloc+free pairs, from the heap and from pools.
 *
 * One round allocates `batch` blocks of one size (writing their first and
 * last byte), then frees them in allocation order.  batch 1 is the classic
 * malloc/free pair (the best case of every free list); batch 100 makes the
 * allocator hand out distinct blocks.  Each cell is the median over
 * opts->repeats timed runs (after one untimed warm-up) of ns per pair; the
 * columns of a row are measured interleaved (bench_interleave).
 *
 * The last row, "16-1024 random", draws each block's size from 16-1024 B
 * (seeded) and frees a batch in a shuffled order: the pattern of a real
 * program, where a freed block's neighbours and the next request's size are
 * anyone's, and the one a per-size cache helps least.
 *
 * The pool table runs the same loop on an amm pool (amm_pool_alloc_at +
 * amm_free) against the peers' malloc of the same size.
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_BATCH = 100 };

static const size_t pair_sizes[] = {16, 64, 256, 4096};
static const size_t pool_sizes[] = {16, 64, 256};
static const size_t batches[] = {1, MAX_BATCH};

/* Total pairs per timed run for a block size. */
static size_t pairs_per_run(const bench_opts *o, size_t size)
{
    size_t n = o->quick ? 2000 : 1000000;
    return size >= 4096 ? n / 4 : n;
}

/* One timed run: returns ns per pair, or -1 after a reported failure. */
static double run_pairs(bench_alloc *a, size_t size, size_t batch, size_t pairs)
{
    void *slot[MAX_BATCH];
    size_t rounds = pairs / batch;
    uint64_t t0 = bench_cpu_ns();
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < batch; i++) {
            unsigned char *p = a->alloc(a->ctx, size);
            if (p == NULL) {
                bench_fail("%s: allocation of %zu bytes failed", a->name, size);
                return -1;
            }
            p[0] = (unsigned char)i;
            p[size - 1] = (unsigned char)r;
            slot[i] = p;
        }
        for (size_t i = 0; i < batch; i++) {
            unsigned char *p = slot[i];
            if (p[0] != (unsigned char)i || p[size - 1] != (unsigned char)r) {
                bench_fail("%s: block of %zu bytes changed while live", a->name, size);
                return -1;
            }
            a->release(a->ctx, p);
        }
    }
    return (double)(bench_cpu_ns() - t0) / (double)(rounds * batch);
}

enum { RANDOM_MIN = 16, RANDOM_MAX = 1024 };

/* One timed run of the random row: sizes from RANDOM_MIN-RANDOM_MAX B, each
 * batch freed in a shuffled order; ns per pair, or -1 after a failure. */
static double run_pairs_random(bench_alloc *a, size_t batch, size_t pairs, uint64_t seed)
{
    void *slot[MAX_BATCH];
    size_t size[MAX_BATCH];
    size_t order[MAX_BATCH];
    bench_rng rng;
    bench_rng_seed(&rng, seed);
    size_t rounds = pairs / batch;
    uint64_t t0 = bench_cpu_ns();
    for (size_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < batch; i++) {
            size[i] = bench_rng_range(&rng, RANDOM_MIN, RANDOM_MAX);
            unsigned char *p = a->alloc(a->ctx, size[i]);
            if (p == NULL) {
                bench_fail("%s: allocation of %zu bytes failed", a->name, size[i]);
                return -1;
            }
            p[0] = (unsigned char)i;
            p[size[i] - 1] = (unsigned char)r;
            slot[i] = p;
            order[i] = i;
        }
        for (size_t i = batch; i > 1; i--) { /* Fisher-Yates */
            size_t j = bench_rng_range(&rng, 0, i - 1), t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        for (size_t k = 0; k < batch; k++) {
            size_t i = order[k];
            unsigned char *p = slot[i];
            if (p[0] != (unsigned char)i || p[size[i] - 1] != (unsigned char)r) {
                bench_fail("%s: block of %zu bytes changed while live", a->name, size[i]);
                return -1;
            }
            a->release(a->ctx, p);
        }
    }
    return (double)(bench_cpu_ns() - t0) / (double)(rounds * batch);
}

/* ---- amm pools behind the vtable ---- */

typedef struct pool_ctx {
    amm_manager *m;
    amm_pool *pool;
} pool_ctx;

typedef struct pairs_arg {
    size_t size, batch, pairs; /* size 0: the random row */
    uint64_t seed;
    pool_ctx pool[BENCH_KIND_COUNT]; /* the pool columns' pools */
} pairs_arg;

static double pairs_run(bench_alloc *a, void *arg)
{
    const pairs_arg *p = arg;
    if (p->size == 0)
        return run_pairs_random(a, p->batch, p->pairs, p->seed);
    return run_pairs(a, p->size, p->batch, p->pairs);
}

static void *pool_alloc(void *ctx, size_t size)
{
    pool_ctx *pc = ctx;
    return amm_pool_alloc_at(pc->m, pc->pool, size, 0, __FILE__, __LINE__);
}

static void pool_release(void *ctx, void *ptr)
{
    pool_ctx *pc = ctx;
    (void)amm_free_at(pc->m, ptr, __FILE__, __LINE__);
}

/* bench_prepare_fn: turns a begun amm column into its pool column: a pool of
 * `size`-byte slots, enough for the batch plus a full quarantine (4096 blocks
 * by default).  Peers keep their malloc. */
static int use_pool(bench_alloc *timed, void *arg)
{
    pairs_arg *p = arg;
    pool_ctx *pc = &p->pool[timed->kind];
    pc->m = bench_alloc_amm(timed);
    if (pc->m == NULL)
        return 0;
    pc->pool = amm_pool_create(pc->m, p->size, 8192 + p->batch, 0);
    if (pc->pool == NULL) {
        bench_fail("%s: amm_pool_create(%zu bytes x %zu) failed", timed->name, p->size, 8192 + p->batch);
        return -1;
    }
    timed->alloc = pool_alloc;
    timed->release = pool_release;
    timed->resize = NULL;
    timed->ctx = pc;
    return 0;
}

/* value / base when both were measured, else -1. */
static double ratio_of(double value, double base)
{
    return value >= 0 && base > 0 ? value / base : -1;
}

static void observe_targets(int pools, const pairs_arg *arg, const double ns[BENCH_KIND_COUNT])
{
    char where[48];
    if (arg->size == 0)
        snprintf(where, sizeof where, "pairs %d-%d B random", RANDOM_MIN, RANDOM_MAX);
    else
        snprintf(where, sizeof where, "%s %zu B batch %zu", pools ? "pool" : "pairs", arg->size, arg->batch);
    if (pools) {
        bench_target_observe(BENCH_TARGET_POOL_FAST, ratio_of(ns[BENCH_AMM_FAST], ns[BENCH_MIMALLOC]), where);
        bench_target_observe(BENCH_TARGET_POOL_CHECKED, ratio_of(ns[BENCH_AMM_CHECKED], ns[BENCH_MIMALLOC]), where);
    } else {
        bench_target_observe(BENCH_TARGET_FAST_PAIRS, ratio_of(ns[BENCH_AMM_FAST], ns[BENCH_GLIBC]), where);
        bench_target_observe(BENCH_TARGET_CHECKED_PAIRS, ratio_of(ns[BENCH_AMM_CHECKED], ns[BENCH_GLIBC]), where);
    }
}

/* One row: measures arg in every column and notes the targets. */
static void pairs_row(bench_table *t, const int col[BENCH_KIND_COUNT], int row, bench_alloc all[BENCH_KIND_COUNT],
                      int pools, pairs_arg *arg, const bench_opts *o)
{
    double ns[BENCH_KIND_COUNT];
    bench_measure_row(all, pairs_run, pools ? use_pool : NULL, arg, o->repeats, ns);
    bench_table_ratios(t, row, col, all, ns);
    observe_targets(pools, arg, ns);
}

/* Fills one table: rows size x batch (then the random row, heap only: a pool
 * has one size), a column per allocator. */
static void pairs_table(bench_table *t, bench_alloc all[BENCH_KIND_COUNT], const size_t *sizes, size_t nsizes,
                        int pools, const bench_opts *o)
{
    int col[BENCH_KIND_COUNT];
    int c_size = bench_table_col(t, "size");
    int c_batch = bench_table_col(t, "batch");
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        char name[40];
        snprintf(name, sizeof name, "%s%s", pools && k >= BENCH_AMM_CHECKED ? "pool-" : "", all[k].name);
        col[k] = bench_table_col(t, name);
    }
    for (size_t s = 0; s < nsizes; s++) {
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            int row = bench_table_row(t);
            pairs_arg arg = {sizes[s], batches[b], pairs_per_run(o, sizes[s]), o->seed, {{NULL, NULL}}};
            bench_table_num(t, row, c_size, (double)sizes[s], 0);
            bench_table_num(t, row, c_batch, (double)batches[b], 0);
            pairs_row(t, col, row, all, pools, &arg, o);
        }
    }
    if (!pools) {
        int row = bench_table_row(t);
        pairs_arg arg = {0, MAX_BATCH, pairs_per_run(o, RANDOM_MAX), o->seed, {{NULL, NULL}}};
        bench_table_text(t, row, c_size, "%d-%d random", RANDOM_MIN, RANDOM_MAX);
        bench_table_num(t, row, c_batch, (double)MAX_BATCH, 0);
        pairs_row(t, col, row, all, pools, &arg, o);
    }
}

void wl_pairs(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    bench_table t;
    bench_table_init(&t, "alloc+free pairs, single thread (ns per pair; ratio to glibc)",
                     "batch 1: alloc then free; batch 100: 100 allocs then 100 frees; 16-1024 random: seeded sizes, "
                     "each batch freed in a shuffled order. Median of the repeats.");
    pairs_table(&t, all, pair_sizes, sizeof pair_sizes / sizeof pair_sizes[0], 0, o);
    bench_table_emit(&t);
}

void wl_pool(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    bench_table t;
    bench_table_init(&t, "pool alloc+free pairs vs malloc of the same size (ns per pair; ratio to glibc)",
                     "amm columns: amm_pool_alloc_at + amm_free on a pool of that slot size; peers: malloc+free.");
    pairs_table(&t, all, pool_sizes, sizeof pool_sizes / sizeof pool_sizes[0], 1, o);
    bench_table_emit(&t);
}
