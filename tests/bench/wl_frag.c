/*
 * wl_frag.c - fragmentation, then compaction (amm) or trimming (peers).
 *
 * Allocates N blocks of random sizes (16 B - 4 KiB, seeded), each holding its
 * index in its first word and a pattern after it, then frees every other one:
 * half the memory is free but scattered in holes no allocator can return as
 * whole regions.  Then each allocator gives back what it can:
 *   amm       amm_defragment(AMM_DEFRAG_ALL), every block allocated
 *             AMM_ALLOC_MOVABLE; the move callback updates our pointer table;
 *   glibc     malloc_trim(0);
 *   mimalloc  mi_collect(true);
 *   jemalloc  mallctl("arena.<all>.purge").
 * Reported: RSS (process delta) after the allocations, after the frees and
 * after compaction/trim, the allocator's own reserved figure before and
 * after, and for amm external fragmentation and bytes moved.  Every remaining
 * block's contents are checked after compaction.  One fresh process per
 * allocator (memory figures are deterministic; one run).
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

typedef struct frag_state {
    bench_alloc *a;
    unsigned char **ptr;
    size_t *size;
    size_t n;
    size_t moves;     /* move callbacks received */
    size_t bad_moves; /* callbacks naming a pointer we do not hold */
} frag_state;

static unsigned char pattern_of(size_t index)
{
    return (unsigned char)(index * 7u + 1u);
}

static void fill(unsigned char *p, size_t size, size_t index)
{
    memcpy(p, &index, sizeof index);
    memset(p + sizeof index, pattern_of(index), size - sizeof index);
}

static int intact(const unsigned char *p, size_t size, size_t index)
{
    size_t stored;
    memcpy(&stored, p, sizeof stored);
    if (stored != index)
        return 0;
    for (size_t i = sizeof index; i < size; i++)
        if (p[i] != pattern_of(index))
            return 0;
    return 1;
}

/* The move callback: the block's index is in its first word; if the contents
 * are not there yet, find the old pointer the slow way. */
static void on_move(void *old_ptr, void *new_ptr, size_t size, void *user)
{
    frag_state *st = user;
    size_t idx;
    (void)size;
    memcpy(&idx, new_ptr, sizeof idx);
    if (idx >= st->n || st->ptr[idx] != old_ptr)
        for (idx = 0; idx < st->n && st->ptr[idx] != old_ptr; idx++) {
        }
    if (idx >= st->n) {
        st->bad_moves++;
        return;
    }
    st->ptr[idx] = new_ptr;
    st->moves++;
}

static void *frag_alloc(frag_state *st, size_t size)
{
    amm_manager *m = bench_alloc_amm(st->a);
    if (m != NULL)
        return amm_alloc_at(m, size, 0, AMM_ALLOC_MOVABLE, __FILE__, __LINE__);
    return st->a->alloc(st->a->ctx, size);
}

static int frag_fill(frag_state *st, bench_rng *rng)
{
    for (size_t i = 0; i < st->n; i++) {
        st->size[i] = bench_rng_range(rng, 16, 4096);
        st->ptr[i] = frag_alloc(st, st->size[i]);
        if (st->ptr[i] == NULL) {
            bench_fail("%s: frag: allocation of %zu bytes failed", st->a->name, st->size[i]);
            return -1;
        }
        fill(st->ptr[i], st->size[i], i);
    }
    return 0;
}

static size_t frag_free_odd(frag_state *st)
{
    size_t live = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (i % 2) {
            st->a->release(st->a->ctx, st->ptr[i]);
            st->ptr[i] = NULL;
        } else {
            live += st->size[i];
        }
    }
    return live;
}

/* Compacts (amm) or trims (peers); puts amm's figures into out. */
static void frag_give_back(frag_state *st, bench_kv *out)
{
    amm_manager *m = bench_alloc_amm(st->a);
    if (m == NULL) {
        bench_alloc_trim(st->a);
        return;
    }
    amm_defrag_report rep;
    memset(&rep, 0, sizeof rep);
    amm_set_move_callback(m, on_move, st);
    amm_defragment(m, AMM_DEFRAG_ALL, &rep);
    amm_set_move_callback(m, NULL, NULL);
    bench_kv_put(out, "frag_before", rep.before.external_frag);
    bench_kv_put(out, "frag_after", rep.after.external_frag);
    bench_kv_put(out, "moved", (double)rep.bytes_moved);
    bench_kv_put(out, "blocks_moved", (double)rep.blocks_moved);
    bench_kv_put(out, "regions_released", (double)rep.regions_released);
    if (st->bad_moves != 0 || st->moves != rep.blocks_moved)
        bench_fail("%s: frag: %zu move callbacks (%zu unknown pointers) but the report says %zu blocks moved",
                   st->a->name, st->moves, st->bad_moves, rep.blocks_moved);
}

static int frag_verify_and_free(frag_state *st)
{
    int rc = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->ptr[i] == NULL)
            continue;
        if (!intact(st->ptr[i], st->size[i], i)) {
            bench_fail("%s: frag: block %zu (%zu bytes) damaged after compaction/trim", st->a->name, i,
                       st->size[i]);
            rc = -1;
        }
        st->a->release(st->a->ctx, st->ptr[i]);
        st->ptr[i] = NULL;
    }
    return rc;
}

int wl_frag_child(bench_alloc *a, uint64_t seed, int quick, bench_kv *out)
{
    frag_state st;
    bench_rng rng;
    bench_footprint fp;
    memset(&st, 0, sizeof st);
    st.a = a;
    st.n = quick ? 400 : 20000;
    /* malloc + memset, not calloc: the tables must be resident before the
     * RSS baseline is taken. */
    st.ptr = malloc(st.n * sizeof *st.ptr);
    st.size = malloc(st.n * sizeof *st.size);
    bench_rng_seed(&rng, seed);
    if (st.ptr == NULL || st.size == NULL || bench_alloc_begin(a) != 0) {
        free(st.ptr);
        free(st.size);
        return -1;
    }
    memset(st.ptr, 0, st.n * sizeof *st.ptr);
    memset(st.size, 0, st.n * sizeof *st.size);
    double rss0 = bench_rss_now();
    int rc = frag_fill(&st, &rng);
    if (rc == 0) {
        bench_kv_put(out, "rss_full", bench_rss_now() - rss0);
        bench_kv_put(out, "live", (double)frag_free_odd(&st));
        bench_kv_put(out, "rss_holes", bench_rss_now() - rss0);
        bench_alloc_footprint(a, &fp);
        bench_kv_put(out, "reserved_before", fp.reserved);
        uint64_t t0 = bench_cpu_ns();
        frag_give_back(&st, out);
        bench_kv_put(out, "give_back_ns", (double)(bench_cpu_ns() - t0));
        bench_kv_put(out, "rss_after", bench_rss_now() - rss0);
        bench_alloc_footprint(a, &fp);
        bench_kv_put(out, "reserved_after", fp.reserved);
    }
    if (frag_verify_and_free(&st) != 0 || bench_alloc_end(a) != 0)
        rc = -1;
    free(st.ptr);
    free(st.size);
    return rc;
}

static void frag_row(bench_table *t, const int *col, const bench_kv *kv)
{
    int row = t->nrows - 1;
    const double mib = 1048576.0;
    bench_table_num(t, row, col[1], bench_kv_get(kv, "live", -1) / mib, 2);
    bench_table_num(t, row, col[2], bench_kv_get(kv, "rss_full", -1) / mib, 2);
    bench_table_num(t, row, col[3], bench_kv_get(kv, "rss_holes", -1) / mib, 2);
    bench_table_num(t, row, col[4], bench_kv_get(kv, "rss_after", -1) / mib, 2);
    double rb = bench_kv_get(kv, "reserved_before", -1), ra = bench_kv_get(kv, "reserved_after", -1);
    bench_table_num(t, row, col[5], rb < 0 ? -1 : rb / mib, 2);
    bench_table_num(t, row, col[6], ra < 0 ? -1 : ra / mib, 2);
    double fb = bench_kv_get(kv, "frag_before", -1), fa = bench_kv_get(kv, "frag_after", -1);
    if (fb >= 0)
        bench_table_text(t, row, col[7], "%.1f%% -> %.1f%%", fb * 100, fa * 100);
    else
        bench_table_text(t, row, col[7], "-");
    double moved = bench_kv_get(kv, "moved", -1);
    bench_table_num(t, row, col[8], moved < 0 ? -1 : moved / mib, 2);
    bench_table_num(t, row, col[9], bench_kv_get(kv, "give_back_ns", -1) / 1e6, 2);
}

void wl_frag(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    static const char *const names[] = {"allocator", "live MiB", "RSS full", "RSS holes", "RSS after",
                                        "reserved before", "reserved after", "ext frag", "moved MiB",
                                        "give-back ms"};
    bench_table t;
    char title[200];
    int col[10];
    snprintf(title, sizeof title,
             "fragmentation: %s blocks of 16 B-4 KiB, free every other, then compact/trim (seed %llu)",
             o->quick ? "400" : "20000", (unsigned long long)o->seed);
    bench_table_init(&t, title,
                     "RSS in MiB above the fresh process's start; reserved = allocator's own figure "
                     "(glibc arena+mmap, mimalloc committed, jemalloc mapped, amm reserved_bytes).");
    for (int c = 0; c < 10; c++)
        col[c] = bench_table_col(&t, names[c]);
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        int row = bench_table_row(&t);
        bench_kv kv;
        bench_table_text(&t, row, col[0], "%s", all[k].name);
        if (!all[k].available)
            bench_table_text(&t, row, col[1], "n/a");
        else if (bench_run_child("frag", all[k].name, o->seed, o->quick, &kv) == 0) {
            frag_row(&t, col, &kv);
            if (k == BENCH_AMM_FAST || k == BENCH_AMM_CHECKED)
                bench_target_observe(k == BENCH_AMM_FAST ? BENCH_TARGET_FRAG_FAST : BENCH_TARGET_FRAG_CHECKED,
                                     bench_kv_get(&kv, "frag_after", -1), "frag");
        }
    }
    bench_table_emit(&t);
}
