/*
 * test_viz_trace.c - the viewer's model fed by real traces: run the seed's
 * demo steps (and more) on a traced manager, read the trace back with the
 * trace reader, and compare the model with what amm_walk says is live.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <amm/mem_manager.h>
#include <amm/trace.h>
#include <unistd.h>

#include "model.h"

typedef struct tv_run {
    char path[256];
    amm_manager *m;
    vm_model model;
} tv_run;

static void tv_begin(tv_run *r, const char *extra)
{
    snprintf(r->path, sizeof r->path, "/tmp/amm-viz-test-%ld-%s.trace", (long)getpid(), h_st.current);
    char opts[512];
    snprintf(opts, sizeof opts, "trace=file:%s%s%s", r->path, extra ? "," : "", extra ? extra : "");
    r->m = h_new_manager(opts, NULL);
}

/* Reads the whole trace written so far into a fresh model.  Returns the events read. */
static size_t tv_read(tv_run *r)
{
    amm_trace_flush(r->m);
    vm_model_free(&r->model);
    if (vm_model_init(&r->model, NULL) != 0) {
        h_fail(__FILE__, __LINE__, "vm_model_init failed");
        h_bail();
    }
    char err[256] = "";
    amm_trace_reader *rd = amm_trace_open_file(r->path, 0, err, sizeof err);
    if (!rd) {
        h_fail(__FILE__, __LINE__, "cannot read %s: %s", r->path, err);
        h_bail();
    }
    amm_trace_event ev;
    size_t n = 0;
    amm_trace_status st;
    while ((st = amm_trace_next(rd, &ev)) == AMM_TRACE_OK) {
        vm_model_apply(&r->model, &ev);
        n++;
    }
    EXPECT_EQ(st, AMM_TRACE_END);
    amm_trace_close(rd);
    return n;
}

typedef struct tv_cmp {
    const vm_model *model;
    size_t seen, mismatches;
} tv_cmp;

static int tv_visit(const amm_block_info *b, void *user)
{
    tv_cmp *c = user;
    if (b->state == AMM_BLOCK_FREE) return 0;
    c->seen++;
    const vm_block *vb = vm_model_find(c->model, (uint64_t)(uintptr_t)b->user);
    if (!vb) {
        printf("    model lacks block %p (%zu B, state %d)\n", b->user, b->size, (int)b->state);
        c->mismatches++;
        return 0;
    }
    if (vb->size != b->size || vb->state != (uint8_t)b->state || (b->state == AMM_BLOCK_LIVE && vb->refcount != b->refcount) ||
        vm_block_raw(vb) != (uint64_t)(uintptr_t)b->raw || vb->origin != (uint8_t)b->origin) {
        printf("    block %p: model size %" PRIu64 " state %u refs %u raw 0x%" PRIx64 " origin %u; walk size %zu "
               "state %d refs %u raw %p origin %d\n",
               b->user, vb->size, vb->state, vb->refcount, vm_block_raw(vb), vb->origin, b->size, (int)b->state,
               b->refcount, b->raw, (int)b->origin);
        c->mismatches++;
    }
    return 0;
}

/* The model holds exactly the walker's live and quarantined blocks. */
static void tv_expect_matches(tv_run *r)
{
    tv_read(r);
    tv_cmp c = {&r->model, 0, 0};
    amm_walk(r->m, tv_visit, &c);
    EXPECT_EQ(c.mismatches, 0);
    EXPECT_EQ(c.seen, r->model.nblocks);
    amm_stats st;
    amm_get_stats(r->m, &st);
    EXPECT_EQ(r->model.live_blocks, st.live_blocks);
    EXPECT_EQ(r->model.live_bytes, st.live_bytes);
    EXPECT_EQ(r->model.anomalies, 0);
}

static void tv_end(tv_run *r)
{
    amm_destroy(r->m);
    vm_model_free(&r->model);
    unlink(r->path);
}

/* The seed's example (mem_manager.c steps 1-12), checked after each group of steps. */
TEST(seed_demo_trace)
{
    tv_run r;
    memset(&r, 0, sizeof r);
    tv_begin(&r, NULL);
    create_memory_pool(r.m, 32, 10, 8);
    create_memory_pool(r.m, 64, 5, 16);
    int *array = allocate_memory(r.m, 10 * sizeof(int), 16);
    ASSERT_NOT_NULL(array);
    increment_ref_count(r.m, array);
    tv_expect_matches(&r);
    size_t pools = 0;
    for (size_t i = 0; i < r.model.nregions; i++) pools += r.model.regions[i].kind == VM_REGION_POOL;
    EXPECT_EQ(pools, 2);
    EXPECT_EQ(vm_model_find(&r.model, (uintptr_t)array)->refcount, 2);
    int *grown = reallocate_memory(r.m, array, 20 * sizeof(int), 16);
    ASSERT_NOT_NULL(grown);
    int *copy = copy_memory(r.m, grown, 20 * sizeof(int));
    ASSERT_NOT_NULL(copy);
    tv_expect_matches(&r);
    EXPECT_EQ(vm_model_find(&r.model, (uintptr_t)grown)->refcount, 2);
    decrement_ref_count(r.m, grown);
    decrement_ref_count(r.m, grown);
    decrement_ref_count(r.m, copy);
    tv_expect_matches(&r);
    EXPECT_EQ(r.model.live_blocks, 0);
    defragment_memory(r.m);
    tv_expect_matches(&r);
    EXPECT_GE(r.model.defrags, 1);
    tv_end(&r);
}

/* Random churn with movable blocks, a fault, then compaction. */
TEST(churn_fault_compaction_trace)
{
    tv_run r;
    memset(&r, 0, sizeof r);
    h_faults faults;
    tv_begin(&r, "sample_every=50");
    h_faults_clear(&faults);
    amm_set_error_handler(r.m, h_fault_recorder, &faults);
    h_rng rng = h_rng_make(h_seed());
    enum { N = 600 };
    void *p[N];
    for (int i = 0; i < N; i++) p[i] = amm_alloc_flags(r.m, h_rand_range(&rng, 1, 900), 0, AMM_ALLOC_MOVABLE);
    for (int i = 0; i < N; i++)
        if (h_rand_range(&rng, 0, 1)) {
            amm_free(r.m, p[i]);
            p[i] = NULL;
        }
    tv_expect_matches(&r);
    EXPECT_GT(r.model.nsamples, 0);
    void *q = amm_alloc(r.m, 10, 0);
    amm_free(r.m, q);
    amm_free(r.m, q); /* double free: reported */
    amm_defragment(r.m, AMM_DEFRAG_ALL, NULL);
    tv_expect_matches(&r);
    EXPECT_EQ(r.model.faults_total, 1);
    EXPECT_EQ(faults.count, 1);
    const vm_fault *f = vm_model_fault_get(&r.model, 0);
    ASSERT_NOT_NULL(f);
    EXPECT_EQ(f->kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(f->ptr, (uint64_t)(uintptr_t)q);
    size_t markers = 0;
    for (size_t i = 0; i < r.model.nsamples; i++) markers += r.model.samples[i].marker != 0;
    EXPECT_GE(markers, 2);
    tv_end(&r);
}
