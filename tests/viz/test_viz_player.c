/*
 * test_viz_player.c - the ingest thread, the event store and the player:
 * a recorded trace is read by the real ingest thread; seeking anywhere (back
 * and forth, through checkpoints) must give exactly the state a fresh model
 * reaches by applying the same events in order; a store smaller than the
 * trace must evict applied events and never stall the stream.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <amm/trace.h>
#include <unistd.h>

#include "ingest.h"
#include "player.h"

/* Records a churn trace (about 4 records per iteration) with one double free in the middle. */
static void record(const char *path, int iterations, uint64_t seed)
{
    char opts[512];
    snprintf(opts, sizeof opts, "trace=file:%s,sample_every=500", path);
    h_faults faults;
    amm_manager *m = h_new_manager(opts, &faults);
    enum { LIVE = 2000 };
    void *live[LIVE] = {0};
    h_rng rng = h_rng_make(seed);
    for (int i = 0; i < iterations; i++) {
        size_t k = (size_t)h_rand_range(&rng, 0, LIVE - 1);
        if (live[k]) amm_free(m, live[k]);
        live[k] = amm_alloc(m, h_rand_range(&rng, 1, 300), 0);
        if (i == iterations / 2 && live[k]) {
            amm_free(m, live[k]);
            amm_free(m, live[k]); /* the fault */
            live[k] = NULL;
        }
    }
    for (size_t k = 0; k < LIVE; k++)
        if (live[k]) amm_free(m, live[k]);
    amm_destroy(m);
    EXPECT_EQ(faults.count, 1);
}

static vz_ingest *open_file(const char *path, uint64_t max_events)
{
    char err[256] = "";
    vz_ingest *g = vz_ingest_new(VZ_SRC_FILE, path, 0, max_events, err, sizeof err);
    if (!g || vz_ingest_start(g, err, sizeof err) != 0) {
        h_fail(__FILE__, __LINE__, "ingest: %s", err);
        h_bail();
    }
    return g;
}

/* Applies everything the source holds; returns when it ended and all is applied. */
static void drain(vp_player *p, vz_ingest *g)
{
    for (;;) {
        size_t n = vp_advance(p, 16384, 0, UINT64_MAX);
        vz_stat st;
        vz_get_stat(g, &st);
        if (n == 0 && st.finished && p->cursor >= st.count) return;
        if (n == 0) usleep(1000); /* waiting for the reader thread, not timing anything */
    }
}

/* Ground truth: a fresh model fed events [0, target) straight from the store. */
static void truth(vz_ingest *g, uint64_t target, vm_model *out)
{
    ASSERT_EQ(vm_model_init(out, NULL), 0);
    vm_event buf[1024];
    amm_trace_event ev;
    for (uint64_t at = 0; at < target;) {
        size_t want = target - at < 1024 ? (size_t)(target - at) : 1024;
        size_t n = vz_read(g, at, buf, want);
        ASSERT_GT(n, 0);
        for (size_t i = 0; i < n; i++) {
            vz_event_expand(g, &buf[i], &ev);
            vm_model_apply(out, &ev);
        }
        at += n;
    }
}

static int same_state(const vm_model *a, const vm_model *b)
{
    if (a->nblocks != b->nblocks || a->live_bytes != b->live_bytes || a->quar_bytes != b->quar_bytes ||
        a->last_seq != b->last_seq || a->nregions != b->nregions || a->faults_total != b->faults_total ||
        a->events != b->events || a->nsamples != b->nsamples)
        return 0;
    char pa[8192], pb[8192];
    for (size_t i = 0; i < a->nregions; i++) {
        vm_model_picture(a, i, pa, sizeof pa);
        vm_model_picture(b, i, pb, sizeof pb);
        if (strcmp(pa, pb) != 0) return 0;
    }
    return 1;
}

TEST(seek_anywhere_matches_sequential_apply)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/amm-viz-player-%ld-a.trace", (long)getpid());
    record(path, 12000, h_seed());
    vz_ingest *g = open_file(path, 0);
    vp_player p;
    ASSERT_EQ(vp_init(&p, g, NULL), 0);
    p.interval = 1500; /* many checkpoints (the player raises it to 4 per live block) */
    drain(&p, g);
    vz_stat st;
    vz_get_stat(g, &st);
    EXPECT_EQ(st.base, 0);
    EXPECT_GT(st.count, 30000);
    EXPECT_GE(p.ncps, 3);
    h_rng rng = h_rng_make(h_seed() ^ 0x5eed);
    uint64_t targets[12] = {0, st.count, st.count / 2, 1};
    for (int i = 4; i < 12; i++) targets[i] = h_rand_range(&rng, 0, st.count);
    for (int i = 0; i < 12; i++) {
        ASSERT_EQ(vp_seek(&p, targets[i]), 0);
        EXPECT_EQ(p.cursor, targets[i]);
        vm_model t;
        truth(g, targets[i], &t);
        if (!same_state(&p.model, &t)) h_fail(__FILE__, __LINE__, "state after seeking to %llu differs", (unsigned long long)targets[i]);
        vm_model_free(&t);
    }
    /* the fault: found from the start, the cursor lands right after it */
    ASSERT_EQ(vp_seek(&p, 0), 0);
    uint64_t f = vp_next_fault(&p);
    ASSERT_NE(f, UINT64_MAX);
    ASSERT_EQ(vp_seek(&p, f), 0);
    EXPECT_EQ(p.model.faults_total, 1);
    const vm_event *last = vm_model_log_get(&p.model, 0);
    ASSERT_NOT_NULL(last);
    EXPECT_EQ(last->rec.op, AMM_TOP_FAULT);
    /* by seq: the index just after a record */
    EXPECT_EQ(vp_index_after_seq(&p, last->seq), f);
    vp_free(&p);
    vz_ingest_free(g);
    unlink(path);
}

TEST(small_store_evicts_and_never_stalls)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/amm-viz-player-%ld-b.trace", (long)getpid());
    record(path, 80000, h_seed());
    vz_ingest *g = open_file(path, VZ_CHUNK); /* the smallest store: one chunk of history */
    vp_player p;
    ASSERT_EQ(vp_init(&p, g, NULL), 0);
    drain(&p, g); /* before the fix this waited forever: the store kept events for checkpoint 0 */
    vz_stat st;
    vz_get_stat(g, &st);
    EXPECT_GT(st.count, 3 * VZ_CHUNK);
    EXPECT_EQ(p.cursor, st.count);
    EXPECT_GT(st.base, 0);                      /* old events were freed */
    EXPECT_LE(st.count - st.base, 3 * VZ_CHUNK); /* and memory stayed bounded */
    EXPECT_EQ(p.model.live_blocks, 0);          /* the trace ends with everything freed */
    EXPECT_EQ(p.model.anomalies, 0);
    /* seeking before the retained history clamps to the oldest reachable point */
    EXPECT_EQ(vp_seek(&p, 0), 0);
    EXPECT_GE(p.cursor, st.base);
    EXPECT_LE(p.cursor, st.count);
    vp_free(&p);
    vz_ingest_free(g);
    unlink(path);
}
