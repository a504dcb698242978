/*
 * wl_threads.c - threads sharing one allocator: two threads where one
 * allocates and the other frees, and 2 or 4 threads each allocating and
 * freeing its own blocks.
 *
 * The producer allocates a block, stamps it with its sequence number and
 * pushes the pointer into a lock-free single-producer single-consumer ring;
 * the consumer pops it, checks the stamp and frees it, so every free is a
 * cross-thread free.  The ring holds RING_SLOTS pointers; a side that finds it
 * full (or empty) spins briefly, then yields, since the machine may have
 * fewer free cores than threads.
 *
 * The two threads are pinned to two different CPUs (the first two the process
 * may run on), so the figure measures the cross-core case every run: left to
 * the scheduler, the pair sometimes shared one core (no contention, and 35 ns
 * a block for amm) and sometimes not (270 ns), run to run.  With one CPU they
 * are not pinned.
 *
 * Pairs in threads: each thread allocates a batch of 32 blocks (seeded
 * sizes), then frees them in order, again and again; the figure is wall time
 * over all the pairs of all the threads, so a lock that serialises them shows
 * as no gain from the second core.  These threads are not pinned.
 *
 * SPSC ring: head is written only by the producer, tail only by the consumer.
 * The producer stores the slot, then publishes head with release order; the
 * consumer reads head with acquire order before it reads the slot (and the
 * mirror for tail), so a slot is never read before it is written nor
 * overwritten before it is consumed.
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

enum { RING_SLOTS = 1024, SPIN_BEFORE_YIELD = 64 };

/* Wall time of two threads depends on whether the scheduler runs them on two
 * cores at once or time-slices them on one, which on a loaded machine flips
 * from run to run: three times the usual repeats (shorter ones) give a median
 * that does not flip with it. */
#define THREAD_REPEATS(o) ((o)->quick ? (o)->repeats : 3 * (o)->repeats)

typedef struct spsc_ring {
    _Alignas(64) atomic_size_t head; /* next slot to write (producer) */
    _Alignas(64) atomic_size_t tail; /* next slot to read (consumer) */
    _Alignas(64) void *slot[RING_SLOTS];
} spsc_ring;

typedef struct pc_run {
    spsc_ring ring;
    bench_alloc *a;
    size_t count;      /* blocks to pass through */
    size_t min_size, max_size;
    uint64_t seed;
    int cpu[2];        /* producer's and consumer's CPU, -1: not pinned */
    atomic_int failed; /* set by either side on a failure */
} pc_run;

/* The first two CPUs this process may run on, or -1s when it has fewer. */
static void pick_cpus(int cpu[2])
{
    cpu_set_t set;
    int n = 0;
    cpu[0] = cpu[1] = -1;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
        if (CPU_ISSET(c, &set))
            cpu[n++] = c;
    }
    if (n < 2)
        cpu[0] = cpu[1] = -1;
}

/* Pins the calling thread to cpu (nothing for -1; a refusal leaves it unpinned). */
static void pin_self(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void backoff(unsigned *spins)
{
    if (++*spins >= SPIN_BEFORE_YIELD) {
        *spins = 0;
        sched_yield();
    }
}

static size_t stamp_size(size_t min_size, size_t max_size, size_t i)
{
    return min_size + (i * 2654435761u) % (max_size - min_size + 1);
}

static void *producer(void *arg)
{
    pc_run *run = arg;
    pin_self(run->cpu[0]);
    for (size_t i = 0; i < run->count && !atomic_load_explicit(&run->failed, memory_order_relaxed); i++) {
        size_t size = stamp_size(run->min_size, run->max_size, i);
        size_t *p = run->a->alloc(run->a->ctx, size);
        if (p == NULL) {
            bench_fail("%s: threads: allocation of %zu bytes failed", run->a->name, size);
            atomic_store(&run->failed, 1);
            break;
        }
        p[0] = i;
        size_t head = atomic_load_explicit(&run->ring.head, memory_order_relaxed);
        unsigned spins = 0;
        while (head - atomic_load_explicit(&run->ring.tail, memory_order_acquire) == RING_SLOTS)
            backoff(&spins);
        run->ring.slot[head % RING_SLOTS] = p;
        atomic_store_explicit(&run->ring.head, head + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pc_run *run = arg;
    pin_self(run->cpu[1]);
    for (size_t i = 0; i < run->count; i++) {
        size_t tail = atomic_load_explicit(&run->ring.tail, memory_order_relaxed);
        unsigned spins = 0;
        while (atomic_load_explicit(&run->ring.head, memory_order_acquire) == tail) {
            if (atomic_load_explicit(&run->failed, memory_order_relaxed))
                return NULL;
            backoff(&spins);
        }
        size_t *p = run->ring.slot[tail % RING_SLOTS];
        atomic_store_explicit(&run->ring.tail, tail + 1, memory_order_release);
        if (p[0] != i) {
            bench_fail("%s: threads: block %zu arrived stamped %zu", run->a->name, i, p[0]);
            atomic_store(&run->failed, 1);
        }
        run->a->release(run->a->ctx, p);
    }
    return NULL;
}

/* One timed run: ns per block passed from producer to consumer, or -1. */
static double run_pc(pc_run *run)
{
    pthread_t tp, tc;
    atomic_init(&run->ring.head, 0);
    atomic_init(&run->ring.tail, 0);
    atomic_init(&run->failed, 0);
    uint64_t t0 = bench_now_ns();
    if (pthread_create(&tc, NULL, consumer, run) != 0) {
        bench_fail("pthread_create failed");
        return -1;
    }
    if (pthread_create(&tp, NULL, producer, run) != 0) {
        bench_fail("pthread_create failed");
        atomic_store(&run->failed, 1);
        pthread_join(tc, NULL);
        return -1;
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    uint64_t t1 = bench_now_ns();
    return atomic_load(&run->failed) ? -1 : (double)(t1 - t0) / (double)run->count;
}

typedef struct pc_arg {
    size_t min_size, max_size, count;
} pc_arg;

static double pc_run_fn(bench_alloc *a, void *arg)
{
    static pc_run run; /* large (the ring); one run at a time */
    const pc_arg *pa = arg;
    memset(&run, 0, sizeof run);
    run.a = a;
    run.min_size = pa->min_size;
    run.max_size = pa->max_size;
    run.count = pa->count;
    pick_cpus(run.cpu);
    return run_pc(&run);
}

static void thread_pairs_table(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);

void wl_threads(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    static const size_t ranges[][2] = {{64, 64}, {16, 1024}};
    bench_table t;
    int col[BENCH_KIND_COUNT];
    int cpu[2];
    char note[200];
    pick_cpus(cpu);
    if (cpu[0] >= 0)
        snprintf(note, sizeof note,
                 "blocks cross an SPSC ring of 1024 pointers; producer on CPU %d, consumer on CPU %d; wall time / "
                 "blocks; median of 3x the repeats.",
                 cpu[0], cpu[1]);
    else
        snprintf(note, sizeof note,
                 "blocks cross an SPSC ring of 1024 pointers; one CPU: not pinned; wall time / blocks; median of 3x "
                 "the repeats.");
    bench_table_init(&t, "two threads: one allocates, one frees (ns per block; ratio to glibc)", note);
    int c_size = bench_table_col(&t, "sizes");
    for (int k = 0; k < BENCH_KIND_COUNT; k++)
        col[k] = bench_table_col(&t, all[k].name);
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        int row = bench_table_row(&t);
        double ns[BENCH_KIND_COUNT];
        pc_arg arg = {ranges[r][0], ranges[r][1], o->quick ? 5000 : 200000};
        if (ranges[r][0] == ranges[r][1])
            bench_table_text(&t, row, c_size, "%zu", ranges[r][0]);
        else
            bench_table_text(&t, row, c_size, "%zu-%zu", ranges[r][0], ranges[r][1]);
        bench_measure_row(all, pc_run_fn, NULL, &arg, THREAD_REPEATS(o), ns);
        bench_table_ratios(&t, row, col, all, ns);
    }
    bench_table_emit(&t);
    thread_pairs_table(all, o);
}

enum { PAIR_BATCH = 32, MAX_PAIR_THREADS = 4 };

typedef struct pairs_run {
    bench_alloc *a;
    size_t pairs;          /* per thread */
    size_t min_size, max_size;
    uint64_t seed;
    atomic_int failed;
} pairs_run;

typedef struct pairs_thread {
    pairs_run *run;
    uint64_t seed;
} pairs_thread;

static void *pairs_main(void *arg)
{
    pairs_thread *pt = arg;
    pairs_run *run = pt->run;
    bench_rng rng;
    size_t size[PAIR_BATCH];
    void *p[PAIR_BATCH];
    bench_rng_seed(&rng, pt->seed);
    for (int i = 0; i < PAIR_BATCH; i++)
        size[i] = run->min_size + bench_rng_next(&rng) % (run->max_size - run->min_size + 1);
    for (size_t done = 0; done < run->pairs; done += PAIR_BATCH) {
        for (int i = 0; i < PAIR_BATCH; i++) {
            p[i] = run->a->alloc(run->a->ctx, size[i]);
            if (p[i] == NULL) {
                bench_fail("%s: thread pairs: allocation of %zu bytes failed", run->a->name, size[i]);
                atomic_store(&run->failed, 1);
                return NULL;
            }
            *(volatile char *)p[i] = 1;
        }
        for (int i = 0; i < PAIR_BATCH; i++)
            run->a->release(run->a->ctx, p[i]);
    }
    return NULL;
}

typedef struct pairs_arg {
    int threads;
    size_t min_size, max_size, pairs;
} pairs_arg;

/* One timed run: wall ns per pair over every thread's pairs, or -1. */
static double pairs_run_fn(bench_alloc *a, void *arg)
{
    const pairs_arg *pa = arg;
    pairs_run run = {a, pa->pairs, pa->min_size, pa->max_size, 0, 0};
    pairs_thread pt[MAX_PAIR_THREADS];
    pthread_t th[MAX_PAIR_THREADS];
    int started = 0;
    atomic_init(&run.failed, 0);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < pa->threads; i++) {
        pt[i] = (pairs_thread){&run, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)};
        if (pthread_create(&th[i], NULL, pairs_main, &pt[i]) != 0) {
            bench_fail("pthread_create failed");
            atomic_store(&run.failed, 1);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    uint64_t t1 = bench_now_ns();
    return atomic_load(&run.failed) ? -1 : (double)(t1 - t0) / (double)(pa->pairs * (size_t)pa->threads);
}

static void thread_pairs_table(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o)
{
    static const struct { int threads; size_t min, max; } rows[] = {
        {1, 64, 64}, {2, 64, 64}, {4, 64, 64}, {1, 16, 1024}, {4, 16, 1024}};
    bench_table t;
    int col[BENCH_KIND_COUNT];
    bench_table_init(&t, "threads doing alloc+free pairs each (ns per pair, wall time over all pairs; ratio to glibc)",
                     "each thread: batches of 32 seeded sizes, allocated then freed in order; not pinned; "
                     "median of 3x the repeats.");
    int c_threads = bench_table_col(&t, "threads");
    int c_size = bench_table_col(&t, "sizes");
    for (int k = 0; k < BENCH_KIND_COUNT; k++)
        col[k] = bench_table_col(&t, all[k].name);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        int row = bench_table_row(&t);
        double ns[BENCH_KIND_COUNT];
        pairs_arg arg = {rows[r].threads, rows[r].min, rows[r].max, o->quick ? 3200 : 320000};
        bench_table_text(&t, row, c_threads, "%d", rows[r].threads);
        if (rows[r].min == rows[r].max)
            bench_table_text(&t, row, c_size, "%zu", rows[r].min);
        else
            bench_table_text(&t, row, c_size, "%zu-%zu", rows[r].min, rows[r].max);
        bench_measure_row(all, pairs_run_fn, NULL, &arg, THREAD_REPEATS(o), ns);
        bench_table_ratios(&t, row, col, all, ns);
    }
    bench_table_emit(&t);
}
