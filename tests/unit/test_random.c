/*
 * test_random.c - random operation sequences against a shadow model.
 *
 * The model holds NSLOTS slots; each live slot is a block with a size, an
 * alignment, a reference count and a pattern key derived from the slot and
 * its generation.  Every operation (alloc, free, realloc, retain, release,
 * copy, pool-sized alloc) is mirrored in the model and then checked: the
 * block touched keeps its pattern, every block is aligned, no two blocks
 * overlap (every 64 ops), the stats equal the model, and amm_check finds
 * nothing (every 4 ops: it walks the whole quarantine, the costly part).
 *
 * random_compaction* mix movable and pinned blocks, punch holes and
 * defragment; the move callback updates the model's pointers, and every
 * block must still hold its pattern afterwards.
 *
 * The seed comes from AMM_TEST_SEED or --seed and is printed; a failure
 * prints the op number too, so a run can be repeated exactly.
 */
#include "../harness.h"

#define NSLOTS 64
#define NOPS 2000
#define FULL_CHECK_EVERY 4 /* amm_check (a full walk) after every 4th op */

typedef struct slot {
    unsigned char *p;
    size_t size;
    size_t align;     /* the alignment the block must keep */
    unsigned refs;
    uint64_t key;
    uint64_t gen;
} slot;

typedef struct model {
    amm_manager *m;
    h_faults faults;
    h_rng rng;
    slot s[NSLOTS];
    size_t live_blocks, live_bytes;
    size_t expected_faults;
    size_t op;
    const char *last_op;
    size_t moves;         /* blocks compaction moved (run_compaction) */
} model;

static size_t pick_size(model *md)
{
    uint64_t r = h_rand(&md->rng) % 100;
    if (r < 55)
        return (size_t)h_rand_range(&md->rng, 0, 128);
    if (r < 85)
        return (size_t)h_rand_range(&md->rng, 129, 4096);
    if (r < 99)
        return (size_t)h_rand_range(&md->rng, 4097, 40000);
    return (size_t)h_rand_range(&md->rng, 65536, 140000); /* large_threshold=64K */
}

static size_t pick_align(model *md)
{
    uint64_t r = h_rand(&md->rng) % 100;
    if (r < 50)
        return 0;
    if (r < 97)
        return (size_t)1 << h_rand_range(&md->rng, 0, 12);
    return (size_t)1 << h_rand_range(&md->rng, 13, 16);
}

static size_t effective(size_t align) { return align ? align : AMM_DEFAULT_ALIGN; }

static uint64_t new_key(model *md, size_t i)
{
    md->s[i].gen++;
    return (uint64_t)i * 1000003u + md->s[i].gen;
}

static int find_slot(model *md, int live)
{
    size_t start = (size_t)(h_rand(&md->rng) % NSLOTS);
    for (size_t k = 0; k < NSLOTS; k++) {
        size_t i = (start + k) % NSLOTS;
        if ((md->s[i].p != NULL) == live)
            return (int)i;
    }
    return -1;
}

static void set_block(model *md, size_t i, void *p, size_t size, size_t align)
{
    slot *s = &md->s[i];
    s->p = (unsigned char *)p;
    s->size = size;
    s->align = align;
    s->refs = 1;
    s->key = new_key(md, i);
    h_fill(p, size, s->key);
    md->live_blocks++;
    md->live_bytes += size;
}

static void drop_block(model *md, size_t i)
{
    md->live_blocks--;
    md->live_bytes -= md->s[i].size;
    md->s[i].p = NULL;
}

static void op_alloc(model *md)
{
    int i = find_slot(md, 0);
    size_t size, align;
    void *p;
    if (i < 0)
        return;
    size = pick_size(md);
    align = pick_align(md);
    md->last_op = "alloc";
    p = amm_alloc(md->m, size, align);
    ASSERT_NOT_NULL(p);
    EXPECT_TRUE(h_is_aligned(p, effective(align)));
    set_block(md, (size_t)i, p, size, effective(align));
}

static void op_free(model *md)
{
    int i = find_slot(md, 1);
    slot *s;
    if (i < 0)
        return;
    s = &md->s[i];
    md->last_op = "free";
    EXPECT_EQ(h_verify(s->p, s->size, s->key), -1);
    if (s->refs > 1) {
        EXPECT_EQ(amm_free(md->m, s->p), -1); /* shared: refused */
        md->expected_faults++;
        EXPECT_EQ(md->faults.last.kind, AMM_ERR_SHARED_FREE);
        return;
    }
    EXPECT_EQ(amm_free(md->m, s->p), 0);
    drop_block(md, (size_t)i);
}

static void op_realloc(model *md)
{
    int i = find_slot(md, 1);
    slot *s;
    size_t size, align, keep;
    void *p;
    if (i < 0)
        return;
    s = &md->s[i];
    size = pick_size(md);
    align = h_rand(&md->rng) % 4 ? 0 : pick_align(md);
    md->last_op = "realloc";
    p = amm_realloc(md->m, s->p, size, align);
    ASSERT_NOT_NULL(p);
    if (align)
        s->align = effective(align);
    EXPECT_TRUE(h_is_aligned(p, s->align));
    keep = size < s->size ? size : s->size;
    EXPECT_EQ(h_verify(p, keep, s->key), -1);
    md->live_bytes = md->live_bytes - s->size + size;
    s->p = (unsigned char *)p;
    s->size = size;
    s->key = new_key(md, (size_t)i);
    h_fill(p, size, s->key);
    {
        amm_block_info info;
        ASSERT_TRUE(h_block_info(md->m, p, &info));
        EXPECT_EQ(info.refcount, s->refs); /* realloc carries the count */
    }
}

static void op_retain(model *md)
{
    int i = find_slot(md, 1);
    if (i < 0 || md->s[i].refs >= 4)
        return;
    md->last_op = "retain";
    md->s[i].refs++;
    EXPECT_EQ(amm_retain(md->m, md->s[i].p), md->s[i].refs);
}

static void op_release(model *md)
{
    int i = find_slot(md, 1);
    slot *s;
    if (i < 0)
        return;
    s = &md->s[i];
    md->last_op = "release";
    EXPECT_EQ(h_verify(s->p, s->size, s->key), -1);
    s->refs--;
    EXPECT_EQ(amm_release(md->m, s->p), s->refs);
    if (s->refs == 0)
        drop_block(md, (size_t)i);
}

static void op_copy(model *md)
{
    int from = find_slot(md, 1), to = find_slot(md, 0);
    slot *s;
    void *p;
    if (from < 0 || to < 0)
        return;
    s = &md->s[from];
    md->last_op = "copy";
    p = amm_copy(md->m, s->p, s->size);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(h_verify(p, s->size, s->key), -1);
    EXPECT_TRUE(h_is_aligned(p, AMM_DEFAULT_ALIGN));
    set_block(md, (size_t)to, p, s->size, AMM_DEFAULT_ALIGN);
}

static int by_address(const void *a, const void *b)
{
    const slot *x = *(const slot *const *)a, *y = *(const slot *const *)b;
    return (x->p > y->p) - (x->p < y->p);
}

/* Every block: pattern intact, aligned, no overlap with the next one. */
static void check_all(model *md)
{
    slot *live[NSLOTS];
    size_t n = 0;
    for (size_t i = 0; i < NSLOTS; i++)
        if (md->s[i].p) {
            EXPECT_EQ(h_verify(md->s[i].p, md->s[i].size, md->s[i].key), -1);
            EXPECT_TRUE(h_is_aligned(md->s[i].p, md->s[i].align));
            live[n++] = &md->s[i];
        }
    qsort(live, n, sizeof live[0], by_address);
    for (size_t i = 1; i < n; i++)
        EXPECT_LE((uintptr_t)live[i - 1]->p + live[i - 1]->size, (uintptr_t)live[i]->p);
}

/* The stats and the O(1) check after every op; the full walk every few. */
static void check_stats(model *md, int full)
{
    amm_stats st;
    amm_get_stats(md->m, &st);
    EXPECT_EQ(st.live_blocks, md->live_blocks);
    EXPECT_EQ(st.live_bytes, md->live_bytes);
    EXPECT_EQ(md->faults.count, md->expected_faults);
    EXPECT_EQ(amm_check_fast(md->m), 1);
    if (full)
        EXPECT_EQ(amm_check(md->m), 0);
}

static void run(const char *options, uint64_t seed, int with_pools)
{
    static model md; /* large: keep it off the stack */
    memset(&md, 0, sizeof md);
    md.m = h_new_manager(options, &md.faults);
    md.rng = h_rng_make(seed);
    if (with_pools) {
        ASSERT_NOT_NULL(amm_pool_create(md.m, 32, 16, 16));
        ASSERT_NOT_NULL(amm_pool_create(md.m, 64, 16, 64));
        ASSERT_NOT_NULL(amm_pool_create(md.m, 256, 8, 16));
    }
    for (md.op = 0; md.op < NOPS; md.op++) {
        int before = atomic_load(&h_st.failures);
        uint64_t r = h_rand(&md.rng) % 100;
        if (r < 35)
            op_alloc(&md);
        else if (r < 60)
            op_free(&md);
        else if (r < 75)
            op_realloc(&md);
        else if (r < 83)
            op_retain(&md);
        else if (r < 93)
            op_release(&md);
        else
            op_copy(&md);
        check_stats(&md, md.op % FULL_CHECK_EVERY == 0);
        if (md.op % 64 == 0)
            check_all(&md);
        if (atomic_load(&h_st.failures) != before) {
            printf("    at op %zu (%s), seed %" PRIu64 ", options \"%s\"\n", md.op, md.last_op, seed, options);
            h_faults_print(&md.faults);
            break;
        }
    }
    check_all(&md);
    for (size_t i = 0; i < NSLOTS; i++)
        while (md.s[i].p) {
            md.s[i].refs--;
            EXPECT_EQ(amm_release(md.m, md.s[i].p), md.s[i].refs);
            if (md.s[i].refs == 0)
                drop_block(&md, i);
        }
    check_stats(&md, 1);
    amm_destroy(md.m);
}

TEST(random_ops_heap)
{
    run("quarantine=16K,quarantine_blocks=32,large_threshold=64K,region_size=256K", h_seed(), 0);
}

TEST(random_ops_with_pools)
{
    run("quarantine=16K,quarantine_blocks=32,large_threshold=64K,region_size=256K", h_seed() ^ 0x5EED, 1);
}

TEST(random_ops_no_quarantine)
{
    run("quarantine=0,quarantine_blocks=0,large_threshold=64K,region_size=64K", h_seed() + 1, 1);
}

TEST(random_ops_wide_canary_no_fill)
{
    run("canary=48,fill=off,quarantine=16K,large_threshold=128K", h_seed() + 2, 1);
}

/* ---- compaction: random movable and pinned blocks, holes, defragment ---- */

static void on_move(void *old_ptr, void *new_ptr, size_t size, void *user)
{
    model *md = (model *)user;
    size_t hits = 0;
    for (size_t i = 0; i < NSLOTS; i++)
        if (md->s[i].p == old_ptr) {
            EXPECT_EQ(md->s[i].size, size);
            md->s[i].p = (unsigned char *)new_ptr;
            hits++;
        }
    EXPECT_EQ(hits, 1);                      /* told only of blocks it owns, once */
    md->moves++;
}

static void run_compaction(const char *options, uint64_t seed)
{
    static model md;
    unsigned movable[NSLOTS];
    memset(&md, 0, sizeof md);
    memset(movable, 0, sizeof movable);
    md.m = h_new_manager(options, &md.faults);
    md.rng = h_rng_make(seed);
    amm_set_move_callback(md.m, on_move, &md);
    for (int round = 0; round < 12; round++) {
        amm_defrag_report rep;
        size_t moved_before = md.moves;
        unsigned flags = h_rand(&md.rng) % 3 == 0 ? AMM_DEFRAG_COMPACT : AMM_DEFRAG_ALL;
        for (int k = 0; k < 40; k++) {
            int i = find_slot(&md, 0);
            size_t size = (size_t)h_rand_range(&md.rng, 1, 6000);
            size_t align = h_rand(&md.rng) % 4 ? 0 : (size_t)1 << h_rand_range(&md.rng, 0, 9);
            void *p;
            if (i < 0)
                break;
            movable[i] = h_rand(&md.rng) % 4 != 0;
            p = amm_alloc_flags(md.m, size, align, movable[i] ? AMM_ALLOC_MOVABLE : 0u);
            ASSERT_NOT_NULL(p);
            set_block(&md, (size_t)i, p, size, effective(align));
        }
        for (int k = 0; k < 30; k++)
            op_free(&md);
        md.last_op = "defragment";
        amm_defragment(md.m, flags, &rep);
        EXPECT_EQ(rep.after.live_blocks, md.live_blocks);
        EXPECT_EQ(rep.after.live_bytes, md.live_bytes);
        EXPECT_LE(rep.after.reserved_bytes, rep.before.reserved_bytes);
        EXPECT_EQ(rep.blocks_moved + moved_before, md.moves);
        check_all(&md);                      /* contents, alignment, no overlap */
        check_stats(&md, 1);
        if (atomic_load(&h_st.failures)) {
            printf("    in round %d (flags %u), seed %" PRIu64 ", options \"%s\"\n", round, flags, seed, options);
            break;
        }
    }
    EXPECT_GT(md.moves, 0);                  /* the holes were there: something moved */
    for (size_t i = 0; i < NSLOTS; i++)
        if (md.s[i].p) {
            EXPECT_EQ(amm_free(md.m, md.s[i].p), 0);
            drop_block(&md, i);
        }
    check_stats(&md, 1);
    amm_destroy(md.m);
}

TEST(random_compaction)
{
    run_compaction("quarantine=0,quarantine_blocks=0,region_size=64K,large_threshold=64K", h_seed() + 3);
}

TEST(random_compaction_with_quarantine)
{
    run_compaction("quarantine=32K,region_size=64K,large_threshold=64K", h_seed() + 4);
}
