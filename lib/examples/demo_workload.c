/*
 * demo_workload.c - amm-demo: the seed's example, then a longer workload to
 * watch in amm-viz (`make run` streams it live).
 *
 * Phases (each ends with amm_check, which writes a CHECK record into the
 * trace, so a viewer can jump there with --at check:N; CHECK records in
 * order: 1 seed step 7, 2 seed done, 3 pools, 4 buffers shared, 5 shared
 * done, 6 churn (peak fragmentation), 7 faults, 8 compaction):
 *   1. the seed's example (steps 1-12) through <amm/mem_manager.h>
 *   2. pools: three pools filled and partly emptied
 *   3. shared buffers: refcounted blocks passed between owners and released
 *   4. churn: thousands of blocks, most movable, then a random 60% freed:
 *      a fragmented heap
 *   5. faults on purpose: a 3-byte overflow (found when the block is freed)
 *      and a double free; both are reported and refused, nothing crashes
 *   6. compaction: amm_defragment(AMM_DEFRAG_ALL) slides the movable blocks
 *      down; the move callback updates the program's pointers
 * then everything is freed and the manager destroyed.
 *
 * Tracing is the caller's choice: AMM_OPTIONS=trace=file:demo.trace or
 * trace=unix:/path/to/amm-viz.sock.  --slow sleeps between phases (and a
 * little inside the loops) so a live viewer shows the heap evolve;
 * --seed N changes the churn (default 1).
 */
#define _GNU_SOURCE
#define AMM_TRACK_SITES
#include <amm/mem_manager.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define DEMO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DEMO_ASAN 1
#endif
#endif
#ifdef DEMO_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#define CHURN_BLOCKS 3000
#define SHARED_BUFFERS 8

typedef struct demo {
    MemoryManager *m;
    int slow;
    uint64_t rng;
    size_t faults_seen;
    void *churn[CHURN_BLOCKS]; /* movable blocks hold their index in their first 4 bytes */
    size_t moves;
} demo;

static void pause_ms(const demo *d, long ms)
{
    if (!d->slow) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t demo_rand(demo *d)
{
    uint64_t z = (d->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void phase(demo *d, int n, const char *what)
{
    printf("\n== phase %d: %s\n", n, what);
    fflush(stdout);
    pause_ms(d, 600);
}

static void phase_end(demo *d)
{
    size_t problems = amm_check(d->m);
    amm_stats st;
    amm_get_stats(d->m, &st);
    printf("   live %zu blocks / %zu bytes, reserved %zu, external fragmentation %.1f%%, problems %zu\n",
           st.live_blocks, st.live_bytes, st.reserved_bytes, st.external_frag * 100.0, problems);
    fflush(stdout);
    pause_ms(d, 900);
}

/* Prints every fault (one line) without aborting, whatever on_error says. */
static void on_fault(const amm_report *r, void *user)
{
    demo *d = user;
    char line[512];
    amm_report_format(r, line, sizeof line);
    printf("   reported: %s\n", line);
    d->faults_seen++;
}

static void on_move(void *old_ptr, void *new_ptr, size_t size, void *user)
{
    demo *d = user;
    uint32_t idx;
    (void)old_ptr;
    if (size < sizeof idx) return;
    memcpy(&idx, new_ptr, sizeof idx);
    if (idx < CHURN_BLOCKS) d->churn[idx] = new_ptr;
    d->moves++;
}

static int seed_part(demo *d)
{
    MemoryManager *m = d->m;
    create_memory_pool(m, 32, 10, 8);
    create_memory_pool(m, 64, 5, 16);
    int *array = allocate_memory(m, 10 * sizeof(int), 16);
    if (!array) return -1;
    for (int i = 0; i < 10; i++) array[i] = i;
    increment_ref_count(m, array);
    int *grown = reallocate_memory(m, array, 20 * sizeof(int), 16);
    if (!grown) return -1;
    for (int i = 10; i < 20; i++) grown[i] = i;
    int *copy = copy_memory(m, grown, 20 * sizeof(int));
    if (!copy) return -1;
    printf("   reallocated array and its copy hold 0..19: %s\n",
           grown[19] == 19 && copy[19] == 19 && copy[0] == 0 ? "yes" : "no");
    print_memory_blocks(m);
    amm_check(m); /* CHECK 1: the seed's blocks at its step 7 */
    decrement_ref_count(m, grown);
    decrement_ref_count(m, grown);
    decrement_ref_count(m, copy);
    defragment_memory(m);
    return 0;
}

static void pools_part(demo *d)
{
    static const size_t sizes[3] = {16, 48, 128}, counts[3] = {256, 128, 64};
    void *got[3][256];
    memset(got, 0, sizeof got);
    for (int p = 0; p < 3; p++) create_memory_pool(d->m, sizes[p], counts[p], 16);
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < counts[p] * 3 / 4; i++) {
            got[p][i] = allocate_memory(d->m, sizes[p] - (i % 4), 0);
            if (i % 32 == 31) pause_ms(d, 15);
        }
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < counts[p]; i += 3) {
            deallocate_memory(d->m, got[p][i]);
            got[p][i] = NULL;
        }
    printf("   3 pools (16, 48, 128 bytes): 3/4 filled, every third slot freed again\n");
}

static void shared_part(demo *d)
{
    void *buf[SHARED_BUFFERS];
    unsigned owners[SHARED_BUFFERS];
    for (int i = 0; i < SHARED_BUFFERS; i++) {
        buf[i] = amm_alloc(d->m, 4096 + (size_t)i * 512, 64);
        if (!buf[i]) continue;
        owners[i] = 1 + (unsigned)(demo_rand(d) % 5);
        for (unsigned k = 1; k < owners[i]; k++) increment_ref_count(d->m, buf[i]);
        memset(buf[i], 'A' + i, 64);
    }
    amm_check(d->m); /* CHECK 4: every buffer shared by its owners */
    pause_ms(d, 400);
    /* half the buffers lose all their owners, the rest keep one */
    for (int i = 0; i < SHARED_BUFFERS; i++) {
        if (!buf[i]) continue;
        unsigned drop = i % 2 ? owners[i] : owners[i] - 1;
        for (unsigned k = 0; k < drop; k++) decrement_ref_count(d->m, buf[i]);
        pause_ms(d, 60);
    }
    printf("   %d shared buffers with 1-5 owners each; half released by all their owners\n", SHARED_BUFFERS);
}

static void churn_part(demo *d)
{
    size_t made = 0;
    for (uint32_t i = 0; i < CHURN_BLOCKS; i++) {
        size_t size = 24 + (size_t)(demo_rand(d) % 1500);
        /* the first blocks (long-lived, one in twenty) are pinned: compaction works around them */
        unsigned flags = i >= CHURN_BLOCKS / 20 ? AMM_ALLOC_MOVABLE | AMM_ALLOC_NO_POOL : AMM_ALLOC_NO_POOL;
        d->churn[i] = amm_alloc_flags(d->m, size, 0, flags);
        if (d->churn[i]) {
            memcpy(d->churn[i], &i, sizeof i);
            made++;
        }
        if (i % 100 == 99) pause_ms(d, 20);
    }
    size_t freed = 0;
    for (uint32_t i = 0; i < CHURN_BLOCKS; i++) {
        if (d->churn[i] && demo_rand(d) % 10 < 6) {
            amm_free(d->m, d->churn[i]);
            d->churn[i] = NULL;
            freed++;
        }
        if (i % 150 == 149) pause_ms(d, 20);
    }
    printf("   %zu blocks of 24..1523 bytes (70%% movable), then %zu of them freed at random\n", made, freed);
}

static void faults_part(demo *d)
{
    size_t before = d->faults_seen;
    /* 1: write 3 bytes past the end of a 40-byte block, then free it */
    unsigned char *p = amm_alloc(d->m, 40, 0);
    if (p) {
#ifdef DEMO_ASAN
        __asan_unpoison_memory_region(p + 40, 3);
#endif
        memset(p + 40, 0x5A, 3);
        amm_free(d->m, p);
    }
    pause_ms(d, 500);
    /* 2: free a block twice */
    void *q = amm_alloc(d->m, 100, 0);
    amm_free(d->m, q);
    amm_free(d->m, q);
    printf("   %zu faults reported and refused; the program goes on\n", d->faults_seen - before);
}

static void compact_part(demo *d)
{
    amm_defrag_report rep;
    amm_set_move_callback(d->m, on_move, d);
    amm_defragment(d->m, AMM_DEFRAG_ALL, &rep);
    size_t bad = 0;
    for (uint32_t i = 0; i < CHURN_BLOCKS; i++) {
        uint32_t idx;
        if (!d->churn[i]) continue;
        memcpy(&idx, d->churn[i], sizeof idx);
        bad += idx != i;
    }
    printf("   moved %zu blocks (%zu bytes), released %zu bytes; fragmentation %.1f%% -> %.1f%%; "
           "pointers updated by the callback: %zu, wrong afterwards: %zu\n",
           rep.blocks_moved, rep.bytes_moved, rep.bytes_released, rep.before.external_frag * 100.0,
           rep.after.external_frag * 100.0, d->moves, bad);
}

static void free_all(demo *d)
{
    for (uint32_t i = 0; i < CHURN_BLOCKS; i++)
        if (d->churn[i]) amm_free(d->m, d->churn[i]);
}

int main(int argc, char **argv)
{
    demo *d = calloc(1, sizeof *d);
    if (!d) return 1;
    d->rng = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--slow") == 0) {
            d->slow = 1;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            d->rng = strtoull(argv[++i], NULL, 0);
        } else {
            fprintf(stderr, "usage: amm-demo [--slow] [--seed N]   (trace with AMM_OPTIONS=trace=file:PATH or unix:PATH)\n");
            free(d);
            return 2;
        }
    }
    d->m = create_memory_manager();
    if (!d->m) {
        fprintf(stderr, "amm-demo: could not create the memory manager\n");
        free(d);
        return 1;
    }
    amm_set_error_handler(d->m, on_fault, d);
    phase(d, 1, "the seed's example (pools, aligned array, refcount, realloc, copy, defragment)");
    if (seed_part(d) != 0) fprintf(stderr, "amm-demo: the seed part failed\n");
    phase_end(d);
    phase(d, 2, "pools");
    pools_part(d);
    phase_end(d);
    phase(d, 3, "shared refcounted buffers");
    shared_part(d);
    phase_end(d);
    phase(d, 4, "churn: a fragmented heap");
    churn_part(d);
    phase_end(d);
    phase(d, 5, "faults on purpose");
    faults_part(d);
    phase_end(d);
    phase(d, 6, "compaction: amm_defragment(AMM_DEFRAG_ALL)");
    compact_part(d);
    phase_end(d);
    pause_ms(d, 1500); /* let a live viewer show the compacted heap before it empties */
    free_all(d);
    free_memory_manager(d->m);
    printf("\ndone: %zu faults reported (2 on purpose)\n", d->faults_seen);
    free(d);
    return 0;
}
