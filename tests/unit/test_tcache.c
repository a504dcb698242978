/*
 * test_tcache.c - the per-thread caches of a manager that threads share
 * (lib/src/tcache.c).  A manager becomes shared when a second thread calls
 * in; from then on each thread that allocates gets a cache of small heap
 * chunks.  What is checked here, through the public API only:
 *  - a cache holds what its owner frees and hands it out again, and the
 *    stats say so (cached_bytes: neither live nor free), exactly;
 *  - chunks freed on another thread go back to the cache that handed them out;
 *  - a second free of a chunk a cache holds is a double free, a pointer to a
 *    cached chunk never handed out an invalid pointer, and an overflow is
 *    reported by a free that skips the manager's lock;
 *  - a new pool gets first pick of the sizes it fits, and a trace stops the
 *    caches (it sees every alloc and free);
 *  - a thread that exits leaves no chunk behind (and does not deadlock with a
 *    callback that destroys a manager); a manager destroyed under a thread's
 *    cache is let go;
 *  - the peak never shows more than was live at once;
 *  - pool slots are cached too: counts, double free, a free on another
 *    thread, a write into a cached slot found by amm_check;
 *  - the counters are exact after threads allocate and free across each other,
 *    while another thread checks, walks, reads the stats and defragments.
 * tcache=0 turns it all off, which the first test checks too.
 */
#include "../harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "amm/trace.h"

static void *touch_main(void *arg)
{
    amm_manager *m = (amm_manager *)arg;
    EXPECT_EQ(amm_free(m, amm_alloc(m, 16, 0)), 0);
    return NULL;
}

/* Another thread calls in once: m is shared from now on. */
static void share(amm_manager *m)
{
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, touch_main, m), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
}

static amm_stats stats_of(amm_manager *m)
{
    amm_stats st;
    amm_get_stats(m, &st);
    return st;
}

static amm_pool_info pool_info_of(amm_manager *m, amm_pool *p)
{
    amm_pool_info pi;
    memset(&pi, 0, sizeof pi);
    EXPECT_EQ(amm_pool_info_get(m, p, &pi), 0);
    return pi;
}

/* A manager whose threads may have caches (no quarantine) with a pool of
 * slots 64-byte slots; NULL if either is refused. */
static amm_manager *with_pool(h_faults *f, size_t slots, amm_pool **pool)
{
    amm_manager *m = h_new_manager("canary=16,quarantine=0", f);
    *pool = m ? amm_pool_create(m, 64, slots, 0) : NULL;
    if (m && !*pool)
        amm_destroy(m);
    return *pool ? m : NULL;
}

/* The end of a test: warm freed, nothing live, amm_check clean, faults reports in all. */
static void finish(amm_manager *m, void *warm, h_faults *f, size_t faults)
{
    EXPECT_EQ(amm_free(m, warm), 0);
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_EQ(stats_of(m).live_blocks, 0);
    EXPECT_FAULTS(f, faults);
    amm_destroy(m);
}

/* The chunk a 48-byte block takes with 16-byte canaries: 16 + 48 + 16. */
#define CHUNK48 80u

static void owner_round_trip(const char *options, int cached)
{
    h_faults f;
    amm_manager *m = h_new_manager(options, &f);
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 48, 0); /* this thread's first alloc since: its cache is made */
    void *p = amm_alloc(m, 48, 0);
    ASSERT_NOT_NULL(warm);
    ASSERT_NOT_NULL(p);
    amm_stats a = stats_of(m);
    EXPECT_EQ(a.live_blocks, 2);
    EXPECT_EQ(a.live_bytes, 96);
    EXPECT_EQ(amm_free(m, p), 0);
    amm_stats b = stats_of(m);
    EXPECT_EQ(b.live_blocks, 1);
    EXPECT_EQ(b.live_bytes, 48);
    EXPECT_EQ(b.total_frees, a.total_frees + 1);
    if (cached) { /* into the cache: not free space */
        EXPECT_EQ(b.cached_bytes, a.cached_bytes + CHUNK48);
        EXPECT_EQ(b.free_bytes, a.free_bytes);
    } else { /* free space (kept for reuse) */
        EXPECT_EQ(b.cached_bytes, 0);
        EXPECT_EQ(a.cached_bytes, 0);
        EXPECT_EQ(b.free_bytes, a.free_bytes + CHUNK48);
    }
    /* the chunk comes back soon, either way (first, when the free took the
     * cache's short way; after the rest of the cache's run under a sanitizer) */
    void *again[64];
    int n = 0, found = 0;
    while (n < 64 && !found) {
        again[n] = amm_alloc(m, 48, 0);
        found = again[n++] == p;
    }
    EXPECT_TRUE(found);
    while (n > 0)
        EXPECT_EQ(amm_free(m, again[--n]), 0);
    EXPECT_EQ(amm_free(m, warm), 0);
    EXPECT_EQ(amm_check(m), 0);
    amm_stats c = stats_of(m);
    EXPECT_EQ(c.cached_bytes, 0); /* a check empties every cache */
    EXPECT_EQ(c.live_blocks, 0);
    EXPECT_EQ(c.live_bytes, 0);
    EXPECT_EQ(c.total_allocs, c.total_frees);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(a_cache_holds_what_its_owner_frees)
{
    owner_round_trip("canary=16,quarantine=0", 1);
}

TEST(tcache_0_turns_the_caches_off)
{
    owner_round_trip("canary=16,quarantine=0,tcache=0", 0);
}

#define HANDED 64

typedef struct handoff {
    amm_manager *m;
    void *blocks[HANDED];
} handoff;

static void *free_all_main(void *arg)
{
    handoff *h = (handoff *)arg;
    for (int i = 0; i < HANDED; i++)
        EXPECT_EQ(amm_free(h->m, h->blocks[i]), 0);
    return NULL;
}

TEST(frees_on_another_thread_go_back_to_the_owner)
{
    h_faults f;
    handoff h;
    pthread_t t;
    h.m = h_new_manager("canary=16,quarantine=0", &f);
    ASSERT_NOT_NULL(h.m);
    share(h.m);
    amm_free(h.m, amm_alloc(h.m, 100, 0)); /* the cache is made */
    for (int i = 0; i < HANDED; i++) {
        h.blocks[i] = amm_alloc(h.m, 100, 0);
        ASSERT_NOT_NULL(h.blocks[i]);
    }
    amm_stats a = stats_of(h.m);
    ASSERT_EQ(pthread_create(&t, NULL, free_all_main, &h), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    amm_stats b = stats_of(h.m);
    /* 100 bytes take 16 + 112 + 16 = 144: every chunk is back in this thread's cache */
    EXPECT_EQ(b.cached_bytes, a.cached_bytes + HANDED * 144u);
    EXPECT_EQ(b.reuse_bytes, a.reuse_bytes);
    EXPECT_EQ(b.live_blocks, a.live_blocks - HANDED);
    size_t again = 0;
    void *mine[HANDED];
    for (int i = 0; i < HANDED; i++) {
        mine[i] = amm_alloc(h.m, 100, 0);
        for (int j = 0; j < HANDED; j++)
            again += mine[i] == h.blocks[j];
    }
    EXPECT_EQ(again, HANDED); /* and handed out again from there */
    for (int i = 0; i < HANDED; i++)
        EXPECT_EQ(amm_free(h.m, mine[i]), 0);
    EXPECT_EQ(amm_check(h.m), 0);
    EXPECT_EQ(stats_of(h.m).live_blocks, 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(h.m);
}

TEST(a_cached_chunk_is_no_block)
{
    h_faults f;
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 48, 0);
    /* a refill carves a run of chunks; the cache hands out the last first */
    unsigned char *p1 = (unsigned char *)amm_alloc(m, 48, 0);
    unsigned char *p2 = (unsigned char *)amm_alloc(m, 48, 0);
    ASSERT_NOT_NULL(p1);
    ASSERT_NOT_NULL(p2);
    ASSERT_EQ((size_t)(p1 - p2), CHUNK48);
    EXPECT_EQ(amm_free(m, p2 - CHUNK48), -1); /* the next chunk of the run: in the cache, never a block */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_INVALID_POINTER);
    EXPECT_EQ(amm_free(m, p1), 0);
    EXPECT_EQ(amm_free(m, p1), -1); /* a block the cache took back */
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(f.last.block, (const void *)p1);
    EXPECT_EQ(f.last.block_size, 48);
    EXPECT_NULL(amm_realloc(m, p1, 64, 0)); /* nor is it a block to anything else */
    EXPECT_FAULTS(&f, 3);
    EXPECT_EQ(amm_free(m, p2), 0);
    finish(m, warm, &f, 3);
}

TEST(an_overflow_is_reported_by_the_owner_s_free)
{
    h_faults f;
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 40, 0);
    for (size_t at = 0; at < 16; at += 5) { /* the last bytes of the slack and canary */
        unsigned char *p = (unsigned char *)amm_alloc(m, 40, 0);
        ASSERT_NOT_NULL(p);
        h_faults_clear(&f);
        h_unpoison(p + 40 + at, 1);
        p[40 + at] ^= 0xFF;
        EXPECT_EQ(amm_free(m, p), 0); /* reported, and freed */
        EXPECT_FAULTS(&f, 1);
        EXPECT_EQ(f.last.kind, AMM_ERR_OVERFLOW);
        EXPECT_EQ(f.last.offset, (long long)(40 + at));
    }
    finish(m, warm, &f, 1); /* the last damage's report */
}

TEST(a_new_pool_has_first_pick_of_its_sizes)
{
    h_faults f;
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    amm_block_info info;
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 64, 0);
    EXPECT_EQ(amm_free(m, amm_alloc(m, 64, 0)), 0);
    EXPECT_GT(stats_of(m).cached_bytes, 0);
    ASSERT_NOT_NULL(amm_pool_create(m, 64, 8, 0));
    EXPECT_EQ(stats_of(m).cached_bytes, 0); /* what the caches held goes back */
    void *p = amm_alloc(m, 64, 0); /* the pool's size: the pool has it */
    ASSERT_NOT_NULL(p);
    ASSERT_TRUE(h_block_info(m, p, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_POOL);
    EXPECT_EQ(amm_free(m, p), 0);
    p = amm_alloc(m, 100, 0); /* larger than any pool: the heap, through the cache again */
    ASSERT_NOT_NULL(p);
    ASSERT_TRUE(h_block_info(m, p, &info)); /* (a walk: it empties the caches) */
    EXPECT_EQ(info.origin, AMM_ORIGIN_HEAP);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_EQ(amm_free(m, amm_alloc(m, 100, 0)), 0);
    EXPECT_GT(stats_of(m).cached_bytes, 0);
    p = amm_alloc_at(m, 64, 0, AMM_ALLOC_NO_POOL, __FILE__, __LINE__); /* no pool asked: the heap */
    ASSERT_TRUE(h_block_info(m, p, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_HEAP);
    EXPECT_EQ(amm_free(m, p), 0);
    for (int i = 0; i < 2; i++) { /* a 64-byte heap chunk in the cache now, and still the pool first */
        p = amm_alloc_at(m, 64, 0, AMM_ALLOC_NO_POOL, __FILE__, __LINE__);
        EXPECT_EQ(amm_free(m, p), 0);
    }
    p = amm_alloc(m, 64, 0);
    ASSERT_TRUE(h_block_info(m, p, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_POOL);
    EXPECT_EQ(amm_free(m, p), 0);
    finish(m, warm, &f, 0);
}

TEST(a_trace_sees_every_alloc_and_free)
{
    h_faults f;
    char path[] = "/tmp/amm-test-tcache-XXXXXX", dest[64], err[256];
    int fd = mkstemp(path);
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 48, 0);
    for (int i = 0; i < 20; i++) /* the cache holds chunks of that size */
        EXPECT_EQ(amm_free(m, amm_alloc(m, 48, 0)), 0);
    snprintf(dest, sizeof dest, "file:%s", path);
    ASSERT_EQ(amm_trace_start(m, dest), 0);
    for (int i = 0; i < 50; i++)
        EXPECT_EQ(amm_free(m, amm_alloc(m, 48, 0)), 0);
    EXPECT_EQ(amm_free(m, warm), 0);
    amm_trace_stop(m);
    amm_trace_reader *r = amm_trace_open_file(path, 0, err, sizeof err);
    ASSERT_NOT_NULL(r);
    amm_trace_event ev;
    size_t allocs = 0, frees = 0;
    while (amm_trace_next(r, &ev) == AMM_TRACE_OK) {
        if (ev.in_snapshot)
            continue;
        allocs += ev.rec.op == AMM_TOP_ALLOC;
        frees += ev.rec.op == AMM_TOP_FREE;
    }
    amm_trace_close(r);
    unlink(path);
    EXPECT_EQ(allocs, 50);
    EXPECT_EQ(frees, 51);
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

typedef struct worker {
    amm_manager *m;
    uint64_t seed;
    void *kept[100];   /* half of what it allocated, for the main thread to free */
    size_t allocs;
} worker;

static void *alloc_some_main(void *arg)
{
    worker *w = (worker *)arg;
    h_rng rng = h_rng_make(w->seed);
    for (int i = 0; i < 200; i++) {
        void *p = amm_alloc(w->m, h_rand_range(&rng, 1, 1000), 0);
        EXPECT_NOT_NULL(p);
        w->allocs++;
        if (i % 2)
            w->kept[i / 2] = p;
        else
            EXPECT_EQ(amm_free(w->m, p), 0);
    }
    return NULL;
}

TEST(a_thread_that_exits_leaves_nothing_behind)
{
    h_faults f;
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    ASSERT_NOT_NULL(m);
    share(m);
    size_t allocs = 1;
    for (int round = 0; round < 20; round++) {
        worker w = {m, h_seed() + (uint64_t)round, {0}, 0};
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, alloc_some_main, &w), 0);
        ASSERT_EQ(pthread_join(t, NULL), 0);
        allocs += w.allocs;
        EXPECT_EQ(stats_of(m).cached_bytes, 0); /* its cache went back whole */
        for (int i = 0; i < 100; i++)
            EXPECT_EQ(amm_free(m, w.kept[i]), 0); /* its blocks, freed after it is gone */
        EXPECT_EQ(stats_of(m).cached_bytes, 0);
    }
    amm_stats st = stats_of(m);
    EXPECT_EQ(st.live_blocks, 0);
    EXPECT_EQ(st.total_allocs, allocs);
    EXPECT_EQ(st.total_frees, allocs);
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

typedef struct late {
    amm_manager *m;
    pthread_barrier_t *go;
} late;

static void *outlive_main(void *arg)
{
    late *l = (late *)arg;
    for (int i = 0; i < 100; i++) /* a cache of l->m */
        EXPECT_EQ(amm_free(l->m, amm_alloc(l->m, 32, 0)), 0);
    pthread_barrier_wait(l->go); /* the main thread destroys l->m */
    pthread_barrier_wait(l->go);
    for (int round = 0; round < 3; round++) { /* new managers, maybe at the same address */
        amm_manager *m2 = amm_create(NULL);
        EXPECT_NOT_NULL(m2);
        for (int i = 0; i < 100; i++)
            EXPECT_EQ(amm_free(m2, amm_alloc(m2, 32, 0)), 0);
        EXPECT_EQ(amm_check(m2), 0);
        amm_destroy(m2);
    }
    return NULL;
}

TEST(a_manager_destroyed_under_a_thread_s_cache)
{
    h_faults f;
    pthread_barrier_t go;
    pthread_t t;
    late l;
    ASSERT_EQ(pthread_barrier_init(&go, NULL, 2), 0);
    l.m = h_new_manager("canary=16,quarantine=0", &f);
    l.go = &go;
    ASSERT_NOT_NULL(l.m);
    EXPECT_EQ(amm_free(l.m, amm_alloc(l.m, 32, 0)), 0); /* this thread first: the other one shares it */
    ASSERT_EQ(pthread_create(&t, NULL, outlive_main, &l), 0);
    pthread_barrier_wait(&go);
    EXPECT_GT(stats_of(l.m).cached_bytes, 0);
    amm_destroy(l.m);
    pthread_barrier_wait(&go);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    pthread_barrier_destroy(&go);
    EXPECT_FAULTS(&f, 0);
}

#define NWORK 8
#define NOPS 4000

typedef struct mixer {
    amm_manager *m;
    _Atomic(void *) *box; /* NWORK * 8 slots shared by every thread */
    atomic_int *done;     /* set once every worker has finished */
    amm_pool *pool;       /* a quarter of the allocs come from it */
    uint64_t seed;
    size_t allocs, frees;
} mixer;

static void *mix_main(void *arg)
{
    mixer *x = (mixer *)arg;
    h_rng rng = h_rng_make(x->seed);
    void *mine[16] = {0};
    for (int i = 0; i < NOPS; i++) {
        size_t k = h_rand_range(&rng, 0, 15);
        if (!mine[k]) {
            mine[k] = h_rand_range(&rng, 0, 3) ? amm_alloc(x->m, h_rand_range(&rng, 1, 1100), 0)
                                               : amm_pool_alloc_at(x->m, x->pool, h_rand_range(&rng, 1, 64), 0,
                                                                   __FILE__, __LINE__);
            EXPECT_NOT_NULL(mine[k]);
            x->allocs++;
        } else if (h_rand_range(&rng, 0, 1)) { /* freed by the thread that allocated it */
            EXPECT_EQ(amm_free(x->m, mine[k]), 0);
            x->frees++;
            mine[k] = NULL;
        } else { /* into the box; what was there (another thread's, likely) freed here */
            void *other = atomic_exchange(&x->box[h_rand_range(&rng, 0, NWORK * 8 - 1)], mine[k]);
            if (other) {
                EXPECT_EQ(amm_free(x->m, other), 0);
                x->frees++;
            }
            mine[k] = NULL;
        }
    }
    for (int k = 0; k < 16; k++) {
        if (mine[k]) {
            EXPECT_EQ(amm_free(x->m, mine[k]), 0);
            x->frees++;
        }
    }
    return NULL;
}

/* Everything that looks at the whole manager, all along: each empties the
 * caches (or adds their counters in) while their owners allocate and free. */
static void *checker_main(void *arg)
{
    mixer *x = (mixer *)arg;
    FILE *sink = fopen("/dev/null", "w");
    size_t rounds = 0;
    while (!atomic_load(x->done) || rounds == 0) {
        amm_stats st;
        EXPECT_EQ(amm_check(x->m), 0);
        EXPECT_EQ(amm_check_fast(x->m), 1);
        amm_get_stats(x->m, &st);
        EXPECT_LE(st.live_bytes, st.reserved_bytes);
        EXPECT_LE(st.cached_bytes, st.reserved_bytes);
        if (sink && rounds % 8 == 0)
            amm_dump_json(x->m, sink);
        if (rounds % 4 == 1)
            amm_defragment(x->m, AMM_DEFRAG_ALL, NULL);
        rounds++;
    }
    if (sink)
        fclose(sink);
    return NULL;
}

TEST(counters_are_exact_after_threads_mix)
{
    h_faults f;
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    _Atomic(void *) box[NWORK * 8];
    atomic_int done = 0;
    mixer x[NWORK], watcher;
    pthread_t t[NWORK], checker;
    ASSERT_NOT_NULL(m);
    amm_pool *pool = amm_pool_create(m, 64, 2048, 0);
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < NWORK * 8; i++)
        atomic_init(&box[i], NULL);
    watcher = (mixer){m, box, &done, pool, 0, 0, 0};
    ASSERT_EQ(pthread_create(&checker, NULL, checker_main, &watcher), 0);
    for (int i = 0; i < NWORK; i++) {
        x[i] = (mixer){m, box, &done, pool, h_seed() + (uint64_t)i * 7919, 0, 0};
        ASSERT_EQ(pthread_create(&t[i], NULL, mix_main, &x[i]), 0);
    }
    size_t allocs = 0, frees = 0;
    for (int i = 0; i < NWORK; i++) {
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
        allocs += x[i].allocs;
        frees += x[i].frees;
    }
    atomic_store(&done, 1);
    ASSERT_EQ(pthread_join(checker, NULL), 0);
    amm_stats mid = stats_of(m);
    EXPECT_EQ(mid.total_allocs, allocs);
    EXPECT_EQ(mid.total_frees, frees);
    EXPECT_EQ(mid.live_blocks, allocs - frees); /* the ones left in the box */
    for (int i = 0; i < NWORK * 8; i++) {
        void *p = atomic_load(&box[i]);
        if (p)
            EXPECT_EQ(amm_free(m, p), 0);
    }
    amm_stats end = stats_of(m);
    EXPECT_EQ(end.live_blocks, 0);
    EXPECT_EQ(end.live_bytes, 0);
    EXPECT_LE(end.peak_live_bytes, end.reserved_bytes);
    EXPECT_EQ(end.total_allocs, end.total_frees);
    EXPECT_EQ(end.pool_slots_used, 0);
    amm_pool_info pi = pool_info_of(m, pool);
    EXPECT_EQ(pi.used, 0);
    EXPECT_EQ(pi.free, pi.block_count);
    EXPECT_LE(pi.high_water, pi.block_count);
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

typedef struct peaker {
    amm_manager *m;
    void *p[200];
} peaker;

static void *alloc_200_main(void *arg)
{
    peaker *k = (peaker *)arg;
    for (int i = 0; i < 200; i++)
        k->p[i] = amm_alloc(k->m, 500, 0);
    return NULL;
}

static void *free_200_main(void *arg)
{
    peaker *k = (peaker *)arg;
    for (int i = 0; i < 200; i++)
        EXPECT_EQ(amm_free(k->m, k->p[i]), 0);
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, fn, arg), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
}

/* Caches fold their counters at different times: the peak must never show a
 * figure that was not live at once (one cache's frees are not yet counted when
 * another's allocs are). */
TEST(the_peak_is_never_more_than_was_live)
{
    h_faults f;
    amm_manager *m = h_new_manager("canary=16,quarantine=0", &f);
    peaker k;
    ASSERT_NOT_NULL(m);
    share(m);
    k.m = m;
    void *warm = amm_alloc(m, 1, 0); /* this thread's cache */
    alloc_200_main(&k);              /* 100000 bytes live, from it */
    EXPECT_EQ(stats_of(m).peak_live_bytes, 100001);
    free_200_main(&k);               /* freed into it: the manager does not know yet */
    run_thread(alloc_200_main, &k);  /* another thread's cache: as much again */
    amm_stats st = stats_of(m);
    EXPECT_EQ(st.live_bytes, 100001);
    EXPECT_EQ(st.peak_live_bytes, 100001);
    free_200_main(&k);
    finish(m, warm, &f, 0);
}

typedef struct exiter {
    amm_manager *m1, *m2;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;
    int destroyed;
} exiter;

static void *exit_later_main(void *arg)
{
    exiter *x = (exiter *)arg;
    for (int i = 0; i < 10; i++) /* a cache of m1, to give back at exit */
        EXPECT_EQ(amm_free(x->m1, amm_alloc(x->m1, 64, 0)), 0);
    pthread_mutex_lock(&x->mu);
    while (!x->go)
        pthread_cond_wait(&x->cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* m1's error handler (m1's lock held): lets the thread exit, gives its exit a
 * moment, then destroys another manager. */
static void destroy_other(const amm_report *r, void *user)
{
    exiter *x = (exiter *)user;
    (void)r;
    pthread_mutex_lock(&x->mu);
    x->go = 1;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    usleep(100000);
    amm_destroy(x->m2);
    x->destroyed = 1;
}

/* A thread giving its cache back at exit must not wait for a manager's lock
 * while it holds what amm_destroy needs: a callback holding that lock may be
 * destroying another manager. */
TEST(a_thread_exits_while_a_callback_destroys_a_manager)
{
    exiter x = {NULL, NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t t;
    int on_stack;
    amm_config cfg;
    amm_config_defaults(&cfg);
    cfg.quarantine = 0; /* thread caches */
    x.m1 = amm_create(&cfg);
    x.m2 = amm_create(&cfg);
    ASSERT_NOT_NULL(x.m1);
    ASSERT_NOT_NULL(x.m2);
    amm_set_error_handler(x.m1, destroy_other, &x);
    EXPECT_EQ(amm_free(x.m1, amm_alloc(x.m1, 64, 0)), 0);
    ASSERT_EQ(pthread_create(&t, NULL, exit_later_main, &x), 0);
    usleep(50000);
    alarm(20); /* a deadlock fails the test (SIGALRM) */
    EXPECT_EQ(amm_free(x.m1, &on_stack), -1); /* the fault: the handler runs */
    ASSERT_EQ(pthread_join(t, NULL), 0);
    alarm(0);
    EXPECT_EQ(x.destroyed, 1);
    EXPECT_EQ(amm_check(x.m1), 0);
    amm_destroy(x.m1);
}

static void *free_one_main(void *arg)
{
    void **pair = (void **)arg; /* {manager, block} */
    EXPECT_EQ(amm_free((amm_manager *)pair[0], pair[1]), 0);
    return NULL;
}

TEST(pool_slots_are_cached_too)
{
    h_faults f;
    amm_pool *pool;
    amm_manager *m = with_pool(&f, 64, &pool);
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 200, 0); /* this thread's cache */
    unsigned char *p[10];
    for (int i = 0; i < 10; i++) {
        p[i] = (unsigned char *)amm_pool_alloc_at(m, pool, 64, 0, __FILE__, __LINE__);
        ASSERT_NOT_NULL(p[i]);
    }
    amm_pool_info pi = pool_info_of(m, pool);
    EXPECT_EQ(pi.used, 10);
    EXPECT_EQ(pi.high_water, 10);
    EXPECT_EQ(pi.used + pi.quarantined + pi.free, pi.block_count);
    for (int i = 0; i < 9; i++)
        EXPECT_EQ(amm_free(m, p[i]), 0); /* into the cache */
    amm_stats st = stats_of(m);
    EXPECT_GE(st.cached_bytes, 9 * pi.stride);
    EXPECT_EQ(st.pool_slots_used, 1);
    pi = pool_info_of(m, pool);
    EXPECT_EQ(pi.used, 1);
    EXPECT_EQ(pi.free, pi.block_count - 1);
    EXPECT_EQ(pi.high_water, 10);
    EXPECT_EQ(amm_free(m, p[0]), -1); /* a slot the cache holds: a double free */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(f.last.block, (const void *)p[0]);
    /* from the cache again: the slot freed last when the owner's free took
     * the short way (under a sanitizer it does not: then one never used) */
    void *again = amm_pool_alloc_at(m, pool, 64, 0, __FILE__, __LINE__);
    ASSERT_NOT_NULL(again);
    EXPECT_EQ(pool_info_of(m, pool).used, 2);
#ifndef H_ASAN
    EXPECT_EQ(again, (void *)p[8]);
#endif
    unsigned char *victim = again == (void *)p[1] ? p[2] : p[1]; /* freed, and still so */
    /* freed on another thread: back to this thread's cache */
    void *pair[2] = {m, p[9]};
    pthread_t t;
    size_t before = stats_of(m).cached_bytes;
    ASSERT_EQ(pthread_create(&t, NULL, free_one_main, pair), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    EXPECT_EQ(stats_of(m).cached_bytes, before + pi.stride);
    /* a write into a cached slot after its free is found once the caches are emptied */
    h_unpoison(victim + 5, 1);
    victim[5] ^= 0x5A;
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(amm_free(m, again), 0);
    pi = pool_info_of(m, pool);
    EXPECT_EQ(pi.used, 0);
    EXPECT_EQ(pi.free, pi.block_count);
    finish(m, warm, &f, 2);
}

typedef struct holder {
    amm_manager *m;
    amm_pool *pool;
    pthread_barrier_t *hold;
} holder;

static void *hold_a_slot_main(void *arg)
{
    holder *h = (holder *)arg;
    /* its cache (made at the first alloc) takes slots of the pool (one: an eighth of 8) and keeps them */
    for (int i = 0; i < 2; i++)
        EXPECT_EQ(amm_free(h->m, amm_pool_alloc_at(h->m, h->pool, 64, 0, __FILE__, __LINE__)), 0);
    pthread_barrier_wait(h->hold);
    pthread_barrier_wait(h->hold); /* alive (its cache too) until the main thread is done */
    return NULL;
}

TEST(a_pool_s_last_slots_come_back_from_the_caches)
{
    h_faults f;
    pthread_barrier_t hold;
    pthread_t t;
    amm_pool *pool;
    amm_manager *m = with_pool(&f, 8, &pool);
    ASSERT_NOT_NULL(m);
    ASSERT_EQ(pthread_barrier_init(&hold, NULL, 2), 0);
    holder h = {m, pool, &hold};
    ASSERT_EQ(pthread_create(&t, NULL, hold_a_slot_main, &h), 0);
    pthread_barrier_wait(&hold);
    EXPECT_GT(stats_of(m).cached_bytes, 0);
    void *p[8];
    for (int i = 0; i < 8; i++) { /* every slot, though another thread's cache held one */
        p[i] = amm_pool_alloc_at(m, pool, 64, 0, __FILE__, __LINE__);
        EXPECT_NOT_NULL(p[i]);
    }
    EXPECT_EQ(pool_info_of(m, pool).used, 8);
    for (int i = 0; i < 8; i++)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    pthread_barrier_wait(&hold);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    pthread_barrier_destroy(&hold);
    finish(m, amm_alloc(m, 1, 0), &f, 0);
}

TEST(a_pool_no_cache_keeps_counts_its_peak_at_once)
{
    h_faults f;
    amm_pool *pool;
    amm_manager *m = with_pool(&f, 64, &pool);
    ASSERT_NOT_NULL(m);
    share(m);
    void *warm = amm_alloc(m, 200, 0); /* the manager has a cache now, which keeps no pool */
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = amm_alloc(m, 64, 0); /* the pool has first pick */
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    amm_pool_info pi = pool_info_of(m, pool);
    EXPECT_EQ(pi.used, 0);
    EXPECT_EQ(pi.high_water, 10);
    finish(m, warm, &f, 0);
}

#if defined(__SANITIZE_THREAD__)
#define TC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TC_TSAN 1
#endif
#endif

#ifndef TC_TSAN /* a double free at once is a data race in the program: TSan says so, rightly */
typedef struct racer {
    amm_manager *m;
    _Atomic(void *) slot;
    atomic_int turn;
    int won;
} racer;

enum { RACES = 20000 };

static void *race_free_main(void *arg)
{
    racer *r = (racer *)arg;
    for (int i = 0; i < RACES; i++) {
        while (atomic_load(&r->turn) != 2 * i + 1)
            ;
        r->won += amm_free(r->m, atomic_load(&r->slot)) == 0;
        atomic_store(&r->turn, 2 * i + 2);
    }
    return NULL;
}

/* The program frees a slot twice at the same moment: on the thread whose
 * cache handed it out (the short way) and on another (the manager's way).
 * Exactly one free wins each time, the other is reported; nothing breaks. */
TEST(two_frees_of_one_slot_at_once)
{
    h_faults f;
    pthread_t t;
    amm_pool *pool;
    amm_manager *m = with_pool(&f, 64, &pool);
    ASSERT_NOT_NULL(m);
    racer r = {m, NULL, 0, 0};
    ASSERT_EQ(pthread_create(&t, NULL, race_free_main, &r), 0);
    void *warm = amm_alloc(m, 200, 0);
    size_t won = 0;
    for (int i = 0; i < RACES; i++) {
        void *p = amm_pool_alloc_at(m, pool, 64, 0, __FILE__, __LINE__);
        ASSERT_NOT_NULL(p);
        atomic_store(&r.slot, p);
        atomic_store(&r.turn, 2 * i + 1);
        won += amm_free(m, p) == 0;
        while (atomic_load(&r.turn) != 2 * i + 2)
            ;
    }
    ASSERT_EQ(pthread_join(t, NULL), 0);
    EXPECT_EQ(won + (size_t)r.won, RACES); /* one winner per slot */
    EXPECT_EQ(f.count, RACES);              /* and one report */
    EXPECT_EQ(f.kinds[AMM_ERR_DOUBLE_FREE], RACES);
    amm_pool_info pi = pool_info_of(m, pool);
    EXPECT_EQ(pi.used, 0);
    EXPECT_EQ(pi.free, pi.block_count);
    finish(m, warm, &f, RACES);
}
#endif
