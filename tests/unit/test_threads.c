/*
 * test_threads.c - one manager shared by 8 threads doing mixed operations
 * (alloc, realloc, retain/release, copy, free, pool-sized blocks), with
 * blocks handed between threads through a shared mailbox so that frees and
 * releases often happen on another thread than the allocation.  Every block
 * carries its key in its first bytes and a pattern after it; whoever takes a
 * block checks the pattern.  At the end amm_check finds 0 problems, no fault
 * was reported and nothing is live.  A ninth thread may run amm_check, the
 * stats, the JSON dump, the printer and amm_defragment all along.
 */
#include "../harness.h"

#include <errno.h>
#include <pthread.h>

#define NTHREADS 8
#define NOPS 3000
#define NBOX 32
#define NLOCAL 16

typedef struct shared {
    amm_manager *m;
    h_faults faults;
    _Atomic(unsigned char *) box[NBOX];
    uint64_t seed;
    atomic_int done;      /* the workers have finished */
} shared;

/* Walks the manager while the workers run: amm_check must find nothing at
 * any moment, and the walker, stats, printers and defragmentation (nothing
 * is movable here, so it only releases memory) must not race them. */
static void *checker(void *arg)
{
    shared *sh = (shared *)arg;
    FILE *sink = fopen("/dev/null", "w");
    size_t rounds = 0;
    while (!atomic_load(&sh->done) || rounds == 0) {
        amm_stats st;
        EXPECT_EQ(amm_check(sh->m), 0);
        EXPECT_EQ(amm_check_fast(sh->m), 1);
        amm_get_stats(sh->m, &st);
        EXPECT_LE(st.live_bytes + st.quarantine_bytes, st.reserved_bytes);
        if (sink && rounds % 8 == 0) {
            amm_dump_json(sh->m, sink);
            amm_print(sh->m, sink);
        }
        if (rounds % 4 == 1)                 /* unmaps empty regions under the workers' feet */
            amm_defragment(sh->m, AMM_DEFRAG_ALL, NULL);
        rounds++;
    }
    if (sink)
        fclose(sink);
    return NULL;
}

typedef struct worker {
    shared *sh;
    int id;
} worker;

/* Block layout: [key (8 bytes)][pattern(key) ...]; size >= 8. */
static unsigned char *make_block(amm_manager *m, h_rng *r, uint64_t key)
{
    size_t size = 8 + (size_t)(h_rand(r) % 4 == 0 ? h_rand_range(r, 0, 3000) : h_rand_range(r, 0, 60));
    size_t align = h_rand(r) % 4 == 0 ? (size_t)1 << h_rand_range(r, 0, 8) : 0;
    unsigned char *p = (unsigned char *)amm_alloc(m, size, align);
    if (!p)
        return NULL;
    memcpy(p, &key, 8);
    h_fill(p + 8, size - 8, key);
    return p;
}

static int block_ok(amm_manager *m, const unsigned char *p)
{
    uint64_t key;
    size_t size = amm_size(m, p);
    if (size < 8)
        return 0;
    memcpy(&key, p, 8);
    return h_verify(p + 8, size - 8, key) == -1;
}

static void *work(void *arg)
{
    worker *w = (worker *)arg;
    shared *sh = w->sh;
    amm_manager *m = sh->m;
    h_rng r = h_rng_make(sh->seed + (uint64_t)w->id * 7919);
    unsigned char *mine[NLOCAL] = {0};
    uint64_t next_key = (uint64_t)w->id << 40;

    for (int op = 0; op < NOPS; op++) {
        size_t i = (size_t)(h_rand(&r) % NLOCAL);
        uint64_t what = h_rand(&r) % 10;
        if (!mine[i]) {
            mine[i] = make_block(m, &r, next_key++);
            EXPECT_NOT_NULL(mine[i]);
            continue;
        }
        EXPECT_TRUE(block_ok(m, mine[i]));
        if (what < 3) {                      /* free here */
            EXPECT_EQ(amm_free(m, mine[i]), 0);
            mine[i] = NULL;
        } else if (what < 5) {               /* hand it over; free what was there */
            unsigned char *old = atomic_exchange(&sh->box[h_rand(&r) % NBOX], mine[i]);
            mine[i] = NULL;
            if (old) {
                EXPECT_TRUE(block_ok(m, old));
                EXPECT_EQ(amm_free(m, old), 0);
            }
        } else if (what < 6) {               /* grow or shrink, keeping the pattern */
            size_t size = amm_size(m, mine[i]);
            size_t nsize = 8 + (size_t)h_rand_range(&r, 0, 2000);
            unsigned char *p = (unsigned char *)amm_realloc(m, mine[i], nsize, 0);
            EXPECT_NOT_NULL(p);
            if (p) {
                uint64_t key;
                memcpy(&key, p, 8);
                EXPECT_EQ(h_verify(p + 8, (nsize < size ? nsize : size) - 8, key), -1);
                h_fill(p + 8, nsize - 8, key);
                mine[i] = p;
            }
        } else if (what < 7) {               /* shared with another owner for a moment */
            EXPECT_EQ(amm_retain(m, mine[i]), 2u);
            EXPECT_EQ(amm_release(m, mine[i]), 1u);
        } else if (what < 8) {               /* a copy, freed at once */
            unsigned char *c = (unsigned char *)amm_copy(m, mine[i], amm_size(m, mine[i]));
            EXPECT_NOT_NULL(c);
            if (c) {
                EXPECT_TRUE(block_ok(m, c));
                EXPECT_EQ(amm_release(m, c), 0u);
            }
        } else if (what < 9) {               /* take one from the mailbox */
            unsigned char *got = atomic_exchange(&sh->box[h_rand(&r) % NBOX], NULL);
            if (got) {
                EXPECT_TRUE(block_ok(m, got));
                EXPECT_EQ(amm_free(m, got), 0);
            }
        } else if (op % 500 == 0) {
            EXPECT_EQ(amm_check_fast(m), 1);
        }
    }
    for (size_t i = 0; i < NLOCAL; i++)
        if (mine[i])
            EXPECT_EQ(amm_free(m, mine[i]), 0);
    return NULL;
}

static void run(const char *options, int with_checker)
{
    static shared sh;
    pthread_t th[NTHREADS], check_thread;
    worker w[NTHREADS];
    amm_stats st;
    memset(&sh, 0, sizeof sh);
    sh.m = h_new_manager(options, &sh.faults);
    sh.seed = h_seed();
    ASSERT_NOT_NULL(amm_pool_create(sh.m, 32, 64, 16));
    ASSERT_NOT_NULL(amm_pool_create(sh.m, 64, 64, 16));
    for (int t = 0; t < NTHREADS; t++) {
        w[t].sh = &sh;
        w[t].id = t;
        ASSERT_EQ(pthread_create(&th[t], NULL, work, &w[t]), 0);
    }
    if (with_checker)
        ASSERT_EQ(pthread_create(&check_thread, NULL, checker, &sh), 0);
    for (int t = 0; t < NTHREADS; t++)
        EXPECT_EQ(pthread_join(th[t], NULL), 0);
    atomic_store(&sh.done, 1);
    if (with_checker)
        EXPECT_EQ(pthread_join(check_thread, NULL), 0);
    for (int b = 0; b < NBOX; b++) {
        unsigned char *p = atomic_exchange(&sh.box[b], NULL);
        if (p) {
            EXPECT_TRUE(block_ok(sh.m, p));
            EXPECT_EQ(amm_free(sh.m, p), 0);
        }
    }
    EXPECT_EQ(amm_check(sh.m), 0);
    EXPECT_EQ(amm_check_fast(sh.m), 1);
    EXPECT_FAULTS(&sh.faults, 0);
    amm_get_stats(sh.m, &st);
    EXPECT_EQ(st.live_blocks, 0);
    EXPECT_EQ(st.live_bytes, 0);
    EXPECT_EQ(st.pool_slots_used, 0);
    amm_destroy(sh.m);
}

TEST(eight_threads_shared_manager)
{
    run("quarantine=256K", 0);
}

TEST(eight_threads_no_quarantine)
{
    run("quarantine=0,quarantine_blocks=0,region_size=64K", 0);
}

TEST(eight_threads_and_a_checker)
{
    run("quarantine=64K", 1);
}

/* ---- faults from many threads at once, and pools created meanwhile ---- */

typedef struct fault_worker {
    amm_manager *m;
    int id;
    size_t provoked;   /* faults this thread caused on purpose */
} fault_worker;

static void *fault_work(void *arg)
{
    fault_worker *w = (fault_worker *)arg;
    h_rng r = h_rng_make(h_seed() + (uint64_t)w->id);
    long local = 0;
    for (int op = 0; op < 400; op++) {
        unsigned char *p = (unsigned char *)amm_alloc(w->m, (size_t)h_rand_range(&r, 1, 200), 0);
        EXPECT_NOT_NULL(p);
        if (!p)
            continue;
        switch (h_rand(&r) % 5) {
        case 0:                              /* double free */
            EXPECT_EQ(amm_free(w->m, p), 0);
            EXPECT_EQ(amm_free(w->m, p), -1);
            w->provoked++;
            break;
        case 1:                              /* interior, then the real free */
            EXPECT_EQ(amm_free(w->m, p + 1), -1);
            EXPECT_EQ(amm_free(w->m, p), 0);
            w->provoked++;
            break;
        case 2:                              /* a stack pointer */
            EXPECT_EQ(amm_free(w->m, &local), -1);
            EXPECT_EQ(amm_free(w->m, p), 0);
            w->provoked++;
            break;
        case 3:                              /* shared, freed directly */
            EXPECT_EQ(amm_retain(w->m, p), 2u);
            EXPECT_EQ(amm_free(w->m, p), -1);
            EXPECT_EQ(amm_release(w->m, p), 1u);
            EXPECT_EQ(amm_release(w->m, p), 0u);
            w->provoked++;
            break;
        default:                             /* an honest free */
            EXPECT_EQ(amm_free(w->m, p), 0);
            break;
        }
    }
    return NULL;
}

static void *pool_maker(void *arg)
{
    amm_manager *m = (amm_manager *)arg;
    for (int i = 0; i < 40; i++)
        EXPECT_NOT_NULL(amm_pool_create(m, 16 + (size_t)i * 8, 8, 16));
    return NULL;
}

TEST(faults_from_eight_threads_while_pools_appear)
{
    h_faults f;
    /* a quarantine big enough for every block freed here: a double-freed
     * address is never handed to another thread in between */
    amm_manager *m = h_new_manager("quarantine=4M,quarantine_blocks=8192", &f);
    pthread_t th[NTHREADS], maker;
    fault_worker w[NTHREADS];
    size_t provoked = 0;
    ASSERT_EQ(pthread_create(&maker, NULL, pool_maker, m), 0);
    for (int t = 0; t < NTHREADS; t++) {
        w[t].m = m;
        w[t].id = t;
        w[t].provoked = 0;
        ASSERT_EQ(pthread_create(&th[t], NULL, fault_work, &w[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        EXPECT_EQ(pthread_join(th[t], NULL), 0);
        provoked += w[t].provoked;
    }
    EXPECT_EQ(pthread_join(maker, NULL), 0);
    EXPECT_EQ(f.count, provoked);            /* each fault reported exactly once */
    EXPECT_EQ(amm_fault_count(m), provoked);
    EXPECT_EQ(amm_pool_count(m), 40);
    EXPECT_EQ(amm_check(m), 0);
    {
        amm_stats st;
        amm_get_stats(m, &st);
        EXPECT_EQ(st.live_blocks, 0);
        EXPECT_EQ(st.pool_slots_used, 0);
    }
    amm_destroy(m);
}

/* errno is the caller's: a contended lock (futex calls that fail with EAGAIN
 * or EINTR) must not change it, as pthread_mutex_lock never did. */
typedef struct errno_worker {
    amm_manager *m;
    size_t changed;
} errno_worker;

static void *errno_work(void *arg)
{
    errno_worker *w = (errno_worker *)arg;
    for (int i = 0; i < 200000; i++) {
        errno = 12345;
        void *p = amm_alloc(w->m, 32, 0);
        int rc = amm_free(w->m, p);
        if (errno != 12345 || !p || rc != 0)
            w->changed++;
    }
    return NULL;
}

TEST(contended_lock_leaves_errno_alone)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    pthread_t th[4];
    errno_worker w[4];
    for (int t = 0; t < 4; t++) {
        w[t].m = m;
        w[t].changed = 0;
        ASSERT_EQ(pthread_create(&th[t], NULL, errno_work, &w[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        EXPECT_EQ(pthread_join(th[t], NULL), 0);
        EXPECT_EQ(w[t].changed, 0);
    }
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}
