/*
 * test_viz_model.c - the viewer's heap model: synthetic records in, state out.
 *
 * States are compared as text pictures (vm_model_picture): one token per
 * block or gap of a region, e.g. "heap#0 [U64 F64 Q64 F*]".
 */
#define _GNU_SOURCE
#include "harness.h"
#include "viz_events.h"

#define BASE 0x100000u
#define REGION 4096u

static int pic_match(const vm_model *m, size_t ri, const char *want)
{
    char got[4096];
    vm_model_picture(m, ri, got, sizeof got);
    if (h_picture_match(want, got)) return 1;
    printf("    want %s\n    got  %s\n", want, got);
    return 0;
}

#define EXPECT_PIC(m, ri, want) EXPECT_TRUE(pic_match((m), (ri), (want)))

/* Checks the model's counters against its block array (the model's invariants). */
static void expect_consistent(const vm_model *m)
{
    uint64_t live = 0, quar = 0;
    size_t nl = 0, nq = 0;
    for (size_t i = 0; i < m->nblocks; i++) {
        const vm_block *b = &m->blocks[i];
        EXPECT_EQ(vm_model_find(m, b->user), b);
        if (b->state == AMM_BLOCK_LIVE) {
            live += b->size;
            nl++;
        } else {
            quar += b->size;
            nq++;
        }
    }
    EXPECT_EQ(live, m->live_bytes);
    EXPECT_EQ(quar, m->quar_bytes);
    EXPECT_EQ(nl, m->live_blocks);
    EXPECT_EQ(nq, m->quar_blocks);
    for (size_t i = 1; i < m->nregions; i++)
        EXPECT_LE(m->regions[i - 1].base + m->regions[i - 1].size, m->regions[i].base);
}

static vm_model *new_model(ve_stream *s)
{
    static vm_model model;
    vm_model_free(&model);
    if (vm_model_init(&model, NULL) != 0) {
        h_fail(__FILE__, __LINE__, "vm_model_init failed");
        h_bail();
    }
    s->m = &model;
    s->seq = 0;
    return &model;
}

TEST(alloc_free_picture)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_manager(&s, 16);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 32, 16);        /* chunk 0..64 */
    ve_alloc(&s, BASE + 64 + 16, 40, 16);   /* chunk 64..144 (40+16+16 = 72, rounded 80) */
    ve_alloc(&s, BASE + 144 + 16, 8, 16);   /* chunk 144..184 -> 192 */
    EXPECT_PIC(m, 0, "heap#0 [U64 U80 U48 F3904]");
    EXPECT_EQ(m->live_blocks, 3);
    EXPECT_EQ(m->live_bytes, 80);
    ve_free(&s, BASE + 80, 40, 0);
    EXPECT_PIC(m, 0, "heap#0 [U64 F80 U48 F3904]");
    EXPECT_EQ(m->regions[0].used, 2);
    EXPECT_EQ(m->regions[0].high_water, 3);
    EXPECT_EQ(m->anomalies, 0);
    expect_consistent(m);
}

TEST(quarantine_then_release)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_manager(&s, 16);
    ve_region(&s, BASE, REGION, 3);
    ve_alloc(&s, BASE + 16, 32, 16);
    ve_free(&s, BASE + 16, 32, 1);
    EXPECT_PIC(m, 0, "heap#3 [Q64 F*]");
    EXPECT_EQ(m->quar_blocks, 1);
    EXPECT_EQ(m->live_blocks, 0);
    ve_simple(&s, AMM_TOP_QUARANTINE_RELEASE, BASE + 16, 32, 0);
    EXPECT_PIC(m, 0, "heap#3 [F4096]");
    EXPECT_EQ(m->quar_blocks, 0);
    expect_consistent(m);
}

TEST(pool_slots_use_the_stride)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_manager(&s, 16);
    ve_pool(&s, BASE, 32, 8, 1, 64, 16); /* 8 slots of 64 bytes, user at +16 */
    ASSERT_EQ(m->nregions, 1);
    EXPECT_EQ(m->regions[0].kind, VM_REGION_POOL);
    EXPECT_EQ(m->regions[0].size, 512);
    ve_alloc_o(&s, BASE + 64 + 16, 20, 16, 0, AMM_ORIGIN_POOL);
    ve_alloc_o(&s, BASE + 3 * 64 + 16, 32, 16, 0, AMM_ORIGIN_POOL);
    EXPECT_PIC(m, 0, "pool#1 [F64 U64 F64 U64 F256]");
    EXPECT_EQ(m->regions[0].used, 2);
    ve_free(&s, BASE + 64 + 16, 20, 1);
    EXPECT_EQ(m->regions[0].used, 1);
    EXPECT_EQ(m->regions[0].quarantined, 1);
    EXPECT_EQ(m->regions[0].high_water, 2);
    expect_consistent(m);
}

TEST(realloc_keeps_refcount_and_move_keeps_identity)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_manager(&s, 16);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 32, 16);
    ve_simple(&s, AMM_TOP_RETAIN, BASE + 16, 0, 2);
    ve_resize(&s, AMM_TOP_REALLOC, BASE + 1024 + 16, 100, 16, BASE + 16, 32);
    const vm_block *b = vm_model_find(m, BASE + 1024 + 16);
    ASSERT_NOT_NULL(b);
    EXPECT_EQ(b->refcount, 2);
    EXPECT_EQ(b->size, 100);
    /* the old block was retired into quarantine (the manager has one) */
    EXPECT_PIC(m, 0, "heap#0 [Q64 F960 U144x2 F*]");
    ve_simple(&s, AMM_TOP_QUARANTINE_RELEASE, BASE + 16, 32, 0);
    EXPECT_NULL(vm_model_find(m, BASE + 16));
    EXPECT_PIC(m, 0, "heap#0 [F1024 U144x2 F*]");
    uint64_t born = b->born_seq;
    ve_resize(&s, AMM_TOP_MOVE, BASE + 16, 100, 16, BASE + 1024 + 16, 0);
    b = vm_model_find(m, BASE + 16);
    ASSERT_NOT_NULL(b);
    EXPECT_EQ(b->moved_from, BASE + 1024 + 16);
    EXPECT_EQ(b->born_seq, born);
    EXPECT_EQ(m->moves, 1);
    EXPECT_PIC(m, 0, "heap#0 [U144x2 F*]");
    ve_simple(&s, AMM_TOP_RELEASE, BASE + 16, 0, 1);
    EXPECT_EQ(vm_model_find(m, BASE + 16)->refcount, 1);
    expect_consistent(m);
}

TEST(realloc_without_quarantine_frees_the_old_block)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    amm_trace_event ev = ve_make(&s, AMM_TOP_MANAGER_CREATE, 1, 0, 16, 0); /* quarantine limit 0 */
    vm_model_apply(m, &ev);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 32, 16);
    ve_resize(&s, AMM_TOP_REALLOC, BASE + 1024 + 16, 100, 16, BASE + 16, 32);
    EXPECT_PIC(m, 0, "heap#0 [F1024 U144 F*]");
    /* in place: same pointer, new size, same birth */
    uint64_t born = vm_model_find(m, BASE + 1024 + 16)->born_seq;
    ve_resize(&s, AMM_TOP_REALLOC, BASE + 1024 + 16, 20, 16, BASE + 1024 + 16, 100);
    EXPECT_PIC(m, 0, "heap#0 [F1024 U64 F*]");
    EXPECT_EQ(vm_model_find(m, BASE + 1024 + 16)->born_seq, born);
    EXPECT_EQ(m->anomalies, 0);
    expect_consistent(m);
}

TEST(pool_region_map_then_pool_create)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    amm_trace_event ev = ve_make(&s, AMM_TOP_REGION_MAP, BASE, 4096, AMM_ORIGIN_POOL, 9);
    vm_model_apply(m, &ev);
    ve_pool(&s, BASE, 32, 8, 2, 64, 16);
    ASSERT_EQ(m->nregions, 1);
    EXPECT_EQ(m->regions[0].kind, VM_REGION_POOL);
    EXPECT_EQ(m->regions[0].size, 4096);
    EXPECT_EQ(m->regions[0].slots, 8);
    EXPECT_EQ(m->regions[0].stride, 64);
    EXPECT_EQ(m->anomalies, 0);
}

TEST(fault_marks_block_and_range)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_manager(&s, 16);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 24, 16);
    ve_fault(&s, AMM_ERR_OVERFLOW, BASE + 16, BASE + 16, 24, 24, 3);
    EXPECT_PIC(m, 0, "heap#0 [U64! F*]");
    EXPECT_EQ(m->faults_total, 1);
    const vm_fault *f = vm_model_fault_get(m, 0);
    ASSERT_NOT_NULL(f);
    EXPECT_EQ(f->kind, AMM_ERR_OVERFLOW);
    EXPECT_EQ(f->lo, BASE + 16 + 24);
    EXPECT_EQ(f->hi, BASE + 16 + 27);
    ve_fault(&s, AMM_ERR_UNDERFLOW, BASE + 16, BASE + 16, 24, -2, 2);
    f = vm_model_fault_get(m, 0);
    EXPECT_EQ(f->lo, BASE + 14);
    EXPECT_EQ(f->hi, BASE + 16);
    ve_fault(&s, AMM_ERR_DOUBLE_FREE, BASE + 999, 0, 0, 0, 0);
    EXPECT_EQ(vm_model_fault_get(m, 0)->lo, BASE + 999);
    EXPECT_EQ(vm_model_fault_get(m, 2)->kind, AMM_ERR_OVERFLOW);
    EXPECT_NULL(vm_model_fault_get(m, 3));
}

TEST(snapshot_rebuilds_state)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_manager(&s, 16);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 32, 16);
    ve_simple(&s, AMM_TOP_SNAPSHOT_BEGIN, 0, 0, 2);
    EXPECT_EQ(m->nblocks, 0);
    ve_region(&s, BASE, REGION, 0);
    amm_trace_event ev = ve_make(&s, AMM_TOP_LIVE, BASE + 272, 64, 16, 0);
    ve_args(&ev, 0, 0, 3, AMM_BLOCK_LIVE);
    vm_model_apply(m, &ev);
    ev = ve_make(&s, AMM_TOP_LIVE, BASE + 16, 32, 16, 0);
    ve_args(&ev, 0, 0, 1, AMM_BLOCK_QUARANTINED);
    vm_model_apply(m, &ev);
    ve_simple(&s, AMM_TOP_SNAPSHOT_END, 0, 0, 0);
    EXPECT_PIC(m, 0, "heap#0 [Q64 F192 U96x3 F*]");
    EXPECT_EQ(m->in_snapshot, 0);
    expect_consistent(m);
}

TEST(inconsistent_streams_are_counted_not_fatal)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_free(&s, 0x1234, 8, 0);                                  /* unknown block */
    ve_simple(&s, AMM_TOP_QUARANTINE_RELEASE, 0x1234, 8, 0);    /* unknown block */
    ve_simple(&s, AMM_TOP_RETAIN, 0x5678, 0, 2);                /* unknown block */
    ve_simple(&s, AMM_TOP_REGION_UNMAP, 0x9999, 10, 0);         /* unknown region */
    ve_alloc(&s, 0, 10, 0);                                     /* null pointer */
    EXPECT_EQ(m->anomalies, 5);
    ve_alloc(&s, 0x7000, 10, 0x8000);                           /* front past address 0: clamped */
    ve_alloc(&s, UINT64_MAX - 4, 100, 16);                      /* wraps the address space */
    EXPECT_EQ(m->live_blocks, 2);
    /* blocks outside every region get an inferred one */
    EXPECT_GE(m->nregions, 1);
    EXPECT_EQ(m->regions[0].kind, VM_REGION_INFERRED);
    expect_consistent(m);
}

TEST(region_map_replaces_inferred_region)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_alloc(&s, BASE + 16, 32, 16);
    ASSERT_EQ(m->nregions, 1);
    EXPECT_EQ(m->regions[0].kind, VM_REGION_INFERRED);
    ve_region(&s, BASE, REGION, 7);
    ASSERT_EQ(m->nregions, 1);
    EXPECT_EQ(m->regions[0].kind, VM_REGION_HEAP);
    EXPECT_EQ(m->reserved, REGION);
    ve_simple(&s, AMM_TOP_REGION_UNMAP, BASE, REGION, 0);
    EXPECT_EQ(m->nregions, 0);
    EXPECT_EQ(m->reserved, 0);
}

TEST(copy_is_a_deep_checkpoint)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    vm_model cp;
    memset(&cp, 0, sizeof cp);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 32, 16);
    ASSERT_EQ(vm_model_copy(&cp, m), 0);
    ve_alloc(&s, BASE + 80, 32, 16);
    ve_free(&s, BASE + 16, 32, 0);
    EXPECT_PIC(&cp, 0, "heap#0 [U64 F*]");
    EXPECT_PIC(m, 0, "heap#0 [F64 U64 F*]");
    EXPECT_EQ(cp.events, 2);
    EXPECT_EQ(m->events, 4);
    vm_model_free(&cp);
}

TEST(samples_decimate_and_keep_markers)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    vm_limits lim;
    vm_limits_default(&lim);
    lim.sample_capacity = 16;
    vm_model_free(m);
    ASSERT_EQ(vm_model_init(m, &lim), 0);
    ve_defrag(&s, AMM_TOP_DEFRAG_BEGIN, 4096, 2048, 500000);
    for (int i = 0; i < 100; i++) ve_sample(&s, (uint64_t)i * 10, 4096, (uint32_t)i * 1000, (uint32_t)i);
    ve_defrag(&s, AMM_TOP_DEFRAG_END, 4096, 2048, 0);
    EXPECT_LE(m->nsamples, 16);
    EXPECT_EQ(m->samples[0].marker, 1);
    EXPECT_EQ(m->samples[m->nsamples - 1].marker, 2);
    for (size_t i = 1; i < m->nsamples; i++) EXPECT_LT(m->samples[i - 1].seq, m->samples[i].seq);
    EXPECT_EQ(m->last_sample.ext_frag_ppm, 0);
}

TEST(log_ring_is_bounded)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    vm_limits lim;
    vm_limits_default(&lim);
    lim.log_capacity = 8;
    vm_model_free(m);
    ASSERT_EQ(vm_model_init(m, &lim), 0);
    ve_region(&s, BASE, REGION, 0);
    for (int i = 0; i < 20; i++) ve_alloc(&s, BASE + 16 + (uint64_t)i * 64, 8, 16);
    EXPECT_EQ(m->log_count, 8);
    EXPECT_EQ(vm_model_log_get(m, 0)->seq, 21);
    EXPECT_EQ(vm_model_log_get(m, 7)->seq, 14);
    EXPECT_NULL(vm_model_log_get(m, 8));
    char line[256];
    vm_event_format(m, vm_model_log_get(m, 0), line, sizeof line);
    EXPECT_CONTAINS(line, "alloc");
}

TEST(site_names_resolve)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_site(&s, 5, 42, "/src/app/demo.c");
    ve_region(&s, BASE, REGION, 0);
    ve_alloc_o(&s, BASE + 16, 8, 16, 5, AMM_ORIGIN_HEAP);
    const vm_site *site = vm_model_site(m, 5);
    ASSERT_NOT_NULL(site);
    EXPECT_EQ(site->line, 42);
    EXPECT_STREQ(site->file, "/src/app/demo.c");
    EXPECT_EQ(vm_model_find(m, BASE + 16)->site, 5);
    char line[256];
    vm_event_format(m, vm_model_log_get(m, 0), line, sizeof line);
    EXPECT_CONTAINS(line, "demo.c:42");
}

/* Line 0 means no line is known (the LD_PRELOAD shim's sites): no ":0". */
TEST(site_without_line_prints_its_name)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_site(&s, 6, 0, "victim!make_it+0x1c");
    char line[256];
    vm_event_format(m, vm_model_log_get(m, 0), line, sizeof line);
    EXPECT_CONTAINS(line, " #6 victim!make_it+0x1c");
    EXPECT_TRUE(strstr(line, ":0") == NULL);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc_o(&s, BASE + 16, 8, 16, 6, AMM_ORIGIN_HEAP);
    vm_event_format(m, vm_model_log_get(m, 0), line, sizeof line);
    EXPECT_CONTAINS(line, " at victim!make_it+0x1c");
    EXPECT_TRUE(strstr(line, ":0") == NULL);
}

/* A random alloc/free/realloc stream against a shadow list of live blocks. */
TEST(random_stream_matches_shadow)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    h_rng rng = h_rng_make(h_seed());
    enum { SLOTS = 512 };
    uint64_t shadow[SLOTS] = {0}, sizes[SLOTS] = {0};
    ve_region(&s, BASE, SLOTS * 256, 0);
    for (int step = 0; step < 20000; step++) {
        size_t i = (size_t)h_rand_range(&rng, 0, SLOTS - 1);
        uint64_t user = BASE + i * 256 + 16;
        unsigned what = (unsigned)h_rand_range(&rng, 0, 3);
        if (!shadow[i]) {
            sizes[i] = h_rand_range(&rng, 1, 200);
            ve_alloc(&s, user, sizes[i], 16);
            shadow[i] = user;
        } else if (what == 0) {
            uint64_t ns = h_rand_range(&rng, 1, 200);
            ve_resize(&s, AMM_TOP_REALLOC, user, ns, 16, user, sizes[i]);
            sizes[i] = ns;
        } else {
            ve_free(&s, user, sizes[i], what == 1);
            if (what == 1) ve_simple(&s, AMM_TOP_QUARANTINE_RELEASE, user, sizes[i], 0);
            shadow[i] = 0;
        }
    }
    uint64_t live = 0;
    size_t n = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        const vm_block *b = vm_model_find(m, BASE + i * 256 + 16);
        EXPECT_EQ(b != NULL, shadow[i] != 0);
        if (shadow[i]) {
            live += sizes[i];
            n++;
            if (b) EXPECT_EQ(b->size, sizes[i]);
        }
    }
    EXPECT_EQ(m->live_bytes, live);
    EXPECT_EQ(m->live_blocks, n);
    EXPECT_EQ(m->anomalies, 0);
    expect_consistent(m);
}

TEST(stream_start_clears_heap_keeps_history)
{
    ve_stream s;
    vm_model *m = new_model(&s);
    ve_region(&s, BASE, REGION, 0);
    ve_alloc(&s, BASE + 16, 8, 16);
    ve_free(&s, 0x1234, 8, 0); /* an anomaly of the first program */
    ve_fault(&s, AMM_ERR_DOUBLE_FREE, BASE + 16, BASE + 16, 8, 0, 0);
    ve_simple(&s, VM_OP_STREAM_START, 0, 0, 0);
    EXPECT_EQ(m->nblocks, 0);
    EXPECT_EQ(m->anomalies, 0);
    EXPECT_EQ(m->faults_total, 0);
    EXPECT_EQ(m->fault_count, 0);
    EXPECT_EQ(m->nregions, 0);
    EXPECT_EQ(m->streams, 1);
    EXPECT_EQ(m->log_count, 5);
}
