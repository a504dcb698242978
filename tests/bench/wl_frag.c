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
        bench_kv_put(out, "resident_before", fp.resident);
        uint64_t t0 = bench_cpu_ns();
        frag_give_back(&st, out);
        bench_kv_put(out, "give_back_ns", (double)(bench_cpu_ns() - t0));
        bench_kv_put(out, "rss_after", bench_rss_now() - rss0);
        bench_alloc_footprint(a, &fp);
        bench_kv_put(out, "reserved_after", fp.reserved);
        bench_kv_put(out, "resident_after", fp.resident);
    }
    if (frag_verify_and_free(&st) != 0 || bench_alloc_end(a) != 0)
        rc = -1;
    free(st.ptr);
    free(st.size);
    return rc;
}

/* The table's numeric columns: a child's key, shown divided by scale. */
static const struct {
    const char *title;
    const char *key;
    double scale;
} frag_cols[] = {
    {"live MiB", "live", 1048576.0},
    {"RSS full", "rss_full", 1048576.0},
    {"RSS holes", "rss_holes", 1048576.0},
    {"RSS after", "rss_after", 1048576.0},
    {"own reserved before", "reserved_before", 1048576.0},
    {"own reserved after", "reserved_after", 1048576.0},
    {"own resident before", "resident_before", 1048576.0},
    {"own resident after", "resident_after", 1048576.0},
    {"moved MiB", "moved", 1048576.0},
    {"give-back ms", "give_back_ns", 1e6},
};
enum { FRAG_NCOLS = sizeof frag_cols / sizeof frag_cols[0] };

static void frag_row(bench_table *t, int row, const int *col, int c_frag, const bench_kv *kv)
{
    for (int c = 0; c < FRAG_NCOLS; c++) {
        double v = bench_kv_get(kv, frag_cols[c].key, -1);
        bench_table_num(t, row, col[c], v < 0 ? -1 : v / frag_cols[c].scale, 2);
    }
    double fb = bench_kv_get(kv, "frag_before", -1), fa = bench_kv_get(kv, "frag_after", -1);
    if (fb >= 0)
        bench_table_text(t, row, c_frag, "%.1f%% -> %.1f%%", fb * 100, fa * 100);
    else
        bench_table_text(t, row, c_frag, "-");
}

void wl_frag(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    bench_table t;
    char title[200];
    int col[FRAG_NCOLS];
    snprintf(title, sizeof title,
             "fragmentation: %s blocks of 16 B-4 KiB, free every other, then compact/trim (seed %llu)",
             o->quick ? "400" : "20000", (unsigned long long)o->seed);
    bench_table_init(&t, title,
                     "MiB. RSS: the fresh process's growth. own = the allocator's figure: reserved = glibc "
                     "arena+mmap, mimalloc committed, jemalloc mapped, amm reserved_bytes; resident = "
                     "jemalloc stats.resident, amm resident_bytes.");
    int c_name = bench_table_col(&t, "allocator");
    for (int c = 0; c < FRAG_NCOLS; c++)
        col[c] = bench_table_col(&t, frag_cols[c].title);
    int c_frag = bench_table_col(&t, "ext frag");
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        int row = bench_table_row(&t);
        bench_kv kv;
        bench_table_text(&t, row, c_name, "%s", all[k].name);
        if (!all[k].available) {
            bench_table_text(&t, row, col[0], "n/a");
        } else if (bench_run_child("frag", all[k].name, o->seed, o->quick, &kv) == 0) {
            frag_row(&t, row, col, c_frag, &kv);
            if (k == BENCH_AMM_FAST || k == BENCH_AMM_CHECKED)
                bench_target_observe(k == BENCH_AMM_FAST ? BENCH_TARGET_FRAG_FAST : BENCH_TARGET_FRAG_CHECKED,
                                     bench_kv_get(&kv, "frag_after", -1), "frag");
        }
    }
    bench_table_emit(&t);
}
