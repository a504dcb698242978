/*
 * test_heap.c - the managed heap: allocation, freeing and coalescing shown as
 * pictures, alignment from 1 byte to 64 KiB (and up to AMM_MAX_ALIGN),
 * realloc in place and moving (content, alignment, flags and site kept),
 * refusals that leave the block alone, large blocks, zero-size blocks, fill
 * patterns, 20000 live blocks, defragmentation (release, and compaction of
 * movable blocks told to the move callback), and out-of-memory under an
 * address-space limit.  The full check (amm_check) runs after every operation.
 *
 * Chunk sizes in the pictures follow from the defaults (canary=16, granule
 * 16): a chunk is 16 front canary bytes + the size + at least 16 back canary
 * bytes, rounded up to 16.  So 16 -> 48, 24 -> 64, 100 -> 144.
 */
#include "../harness.h"

#include <sys/resource.h>
#include <sys/wait.h>

/* no quarantine, no reuse lists: every free merges at once, as the pictures show */
#define NOQ "quarantine=0,quarantine_blocks=0,region_size=64K,reuse=0"

/* Allocates and checks the heap at once. */
#define ALLOC_OK(m, var, size, align)                                             \
    do {                                                                          \
        (var) = amm_alloc((m), (size), (align));                                  \
        ASSERT_NOT_NULL(var);                                                     \
        EXPECT_HEALTHY(m);                                                        \
    } while (0)

#define FREE_OK(m, p)                                                             \
    do {                                                                          \
        EXPECT_EQ(amm_free((m), (p)), 0);                                         \
        EXPECT_HEALTHY(m);                                                        \
    } while (0)

TEST(alloc_pictures)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b, *c;
    ALLOC_OK(m, a, 16, 0);
    EXPECT_HEAP(m, "[U48 F*]");
    ALLOC_OK(m, b, 24, 0);
    ALLOC_OK(m, c, 100, 0);
    EXPECT_HEAP(m, "[U48 U64 U144 F*]");
    EXPECT_LT((uintptr_t)a, (uintptr_t)b);
    EXPECT_LT((uintptr_t)b, (uintptr_t)c);
    FREE_OK(m, a);
    FREE_OK(m, b);
    FREE_OK(m, c);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(coalescing_pictures)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b, *c, *d;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 16, 0);
    ALLOC_OK(m, c, 16, 0);
    ALLOC_OK(m, d, 16, 0);
    EXPECT_HEAP(m, "[U48 U48 U48 U48 F*]");
    FREE_OK(m, b);                          /* a hole between two live chunks */
    EXPECT_HEAP(m, "[U48 F48 U48 U48 F*]");
    FREE_OK(m, a);                          /* merges with the free chunk after it */
    EXPECT_HEAP(m, "[F96 U48 U48 F*]");
    FREE_OK(m, d);                          /* merges with the free tail */
    EXPECT_HEAP(m, "[F96 U48 F*]");
    FREE_OK(m, c);                          /* merges on both sides: one span */
    EXPECT_HEAP(m, "[F65536]");
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(quarantine_pictures)
{
    h_faults f;
    amm_manager *m = h_new_manager("region_size=64K,quarantine=1M,quarantine_blocks=2", &f);
    void *a, *b, *c, *d;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 16, 0);
    ALLOC_OK(m, c, 16, 0);
    ALLOC_OK(m, d, 16, 0);
    FREE_OK(m, a);
    EXPECT_HEAP(m, "[Q48 U48 U48 U48 F*]");
    FREE_OK(m, c);
    EXPECT_HEAP(m, "[Q48 U48 Q48 U48 F*]");
    FREE_OK(m, b); /* quarantine holds 2 blocks: a, the oldest, leaves it */
    EXPECT_HEAP(m, "[F48 Q48 Q48 U48 F*]");
    FREE_OK(m, d); /* c leaves: its neighbours are both still quarantined */
    EXPECT_HEAP(m, "[F48 Q48 F48 Q48 F*]");
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(hole_is_reused)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b, *c, *b2;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 40, 0);
    ALLOC_OK(m, c, 16, 0);
    FREE_OK(m, b);
    EXPECT_HEAP(m, "[U48 F80 U48 F*]");
    ALLOC_OK(m, b2, 40, 0);                 /* exactly the hole's size */
    EXPECT_EQ(b2, b);
    EXPECT_HEAP(m, "[U48 U80 U48 F*]");
    FREE_OK(m, a);
    FREE_OK(m, b2);
    FREE_OK(m, c);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(zero_size_blocks_are_unique)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b;
    ALLOC_OK(m, a, 0, 0);
    ALLOC_OK(m, b, 0, 0);
    EXPECT_NE(a, b);
    EXPECT_EQ(amm_size(m, a), 0);
    EXPECT_EQ(amm_owns(m, a), 1);
    FREE_OK(m, a);
    FREE_OK(m, b);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* Every power of two from 1 to 64 KiB, a few sizes each, all live at once. */
TEST(alignments_1_to_64k)
{
    static const size_t sizes[] = {1, 7, 24, 100, 4097};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void *live[17][NS];
    h_faults f;
    amm_manager *m = h_new_manager("region_size=1M", &f);
    for (unsigned k = 0; k <= 16; k++) {
        size_t align = (size_t)1 << k;
        for (unsigned s = 0; s < NS; s++) {
            void *p;
            ALLOC_OK(m, p, sizes[s], align);
            EXPECT_TRUE(h_is_aligned(p, align));
            h_fill(p, sizes[s], k * 100 + s);
            live[k][s] = p;
        }
    }
    for (unsigned k = 0; k <= 16; k++)
        for (unsigned s = 0; s < NS; s++) {
            amm_block_info info;
            EXPECT_EQ(h_verify(live[k][s], sizes[s], k * 100 + s), -1);
            ASSERT_TRUE(h_block_info(m, live[k][s], &info));
            EXPECT_GE(info.alignment, (size_t)1 << k);
            EXPECT_EQ(info.size, sizes[s]);
            EXPECT_EQ(info.canary_ok, 1);
            FREE_OK(m, live[k][s]);
        }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(alignments_above_64k)
{
    h_faults f;
    amm_manager *m = h_new_manager("region_size=1M", &f);
    for (size_t align = (size_t)1 << 17; align <= AMM_MAX_ALIGN; align <<= 1) {
        void *p;
        ALLOC_OK(m, p, 100, align);
        EXPECT_TRUE(h_is_aligned(p, align));
        h_fill(p, 100, align);
        EXPECT_EQ(h_verify(p, 100, align), -1);
        FREE_OK(m, p);
    }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(bad_alignments_refused)
{
    static const size_t bad[] = {3, 6, 24, 100, 4095, AMM_MAX_ALIGN * 2, (size_t)1 << 40, SIZE_MAX};
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = amm_alloc(m, 32, bad[i]);
        EXPECT_NULL(p);
        EXPECT_EQ(f.count, i + 1);
        EXPECT_EQ(f.last.kind, AMM_ERR_BAD_ALIGNMENT);
        EXPECT_EQ(f.last.alignment, bad[i]);
        EXPECT_HEALTHY(m);
    }
    EXPECT_EQ(amm_fault_count(m), f.count);
    amm_destroy(m);
}

TEST(impossible_sizes_refused)
{
    static const size_t bad[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1};
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = amm_alloc(m, bad[i], 0);
        EXPECT_NULL(p);
        EXPECT_EQ(f.count, i + 1);
        EXPECT_TRUE(f.last.kind == AMM_ERR_BAD_SIZE || f.last.kind == AMM_ERR_OUT_OF_MEMORY);
        EXPECT_HEALTHY(m);
    }
    amm_destroy(m);
}

TEST(realloc_grows_in_place)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b;
    ALLOC_OK(m, a, 16, 0);
    h_fill(a, 16, 1);
    b = amm_realloc(m, a, 40, 0);           /* the free tail follows: grow in place */
    EXPECT_HEALTHY(m);
    EXPECT_EQ(b, a);
    EXPECT_EQ(h_verify(b, 16, 1), -1);
    EXPECT_EQ(amm_size(m, b), 40);
    EXPECT_HEAP(m, "[U80 F*]");
    FREE_OK(m, b);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_shrinks_in_place)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b, *c;
    ALLOC_OK(m, a, 200, 0);                 /* 16 + 200 + 16 -> 240 */
    ALLOC_OK(m, c, 16, 0);
    EXPECT_HEAP(m, "[U240 U48 F*]");
    h_fill(a, 200, 2);
    b = amm_realloc(m, a, 24, 0);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(b, a);
    EXPECT_EQ(h_verify(b, 24, 2), -1);
    EXPECT_HEAP(m, "[U64 F176 U48 F*]");   /* the cut-off part is a free span */
    FREE_OK(m, b);
    FREE_OK(m, c);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_grows_into_free_neighbour)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b, *c, *a2;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 100, 0);
    ALLOC_OK(m, c, 16, 0);
    FREE_OK(m, b);
    EXPECT_HEAP(m, "[U48 F144 U48 F*]");
    h_fill(a, 16, 3);
    a2 = amm_realloc(m, a, 80, 0);          /* 16 + 80 + 16 = 112 <= 48 + 144 */
    EXPECT_HEALTHY(m);
    EXPECT_EQ(a2, a);
    EXPECT_EQ(h_verify(a2, 16, 3), -1);
    EXPECT_HEAP(m, "[U112 F80 U48 F*]");
    FREE_OK(m, a2);
    FREE_OK(m, c);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_moves_keeping_content)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a, *b, *a2;
    ALLOC_OK(m, a, 24, 0);
    ALLOC_OK(m, b, 16, 0);                  /* pins a's end */
    h_fill(a, 24, 4);
    a2 = amm_realloc(m, a, 1000, 0);
    EXPECT_HEALTHY(m);
    ASSERT_NOT_NULL(a2);
    EXPECT_NE(a2, a);
    EXPECT_EQ(h_verify(a2, 24, 4), -1);
    EXPECT_EQ(amm_size(m, a2), 1000);
    EXPECT_EQ(amm_owns(m, a), 0);
    EXPECT_HEAP(m, "[F64 U48 U1040 F*]");
    FREE_OK(m, a2);
    FREE_OK(m, b);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_keeps_alignment)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    for (size_t align = 1; align <= ((size_t)1 << 16); align <<= 1) {
        void *a, *pin, *b, *c;
        ALLOC_OK(m, a, 40, align);
        ALLOC_OK(m, pin, 16, 0);
        h_fill(a, 40, align);
        b = amm_realloc(m, a, 3000, 0);     /* align 0: keep the block's alignment */
        EXPECT_HEALTHY(m);
        ASSERT_NOT_NULL(b);
        EXPECT_TRUE(h_is_aligned(b, align));
        EXPECT_EQ(h_verify(b, 40, align), -1);
        c = amm_realloc(m, b, 20, 0);       /* shrink keeps it too */
        EXPECT_HEALTHY(m);
        ASSERT_NOT_NULL(c);
        EXPECT_TRUE(h_is_aligned(c, align));
        EXPECT_EQ(h_verify(c, 20, align), -1);
        FREE_OK(m, c);
        FREE_OK(m, pin);
    }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_to_new_alignment)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    for (size_t align = 32; align <= ((size_t)1 << 16); align <<= 1) {
        void *a, *b;
        amm_block_info info;
        ALLOC_OK(m, a, 40, 0);
        h_fill(a, 40, align);
        b = amm_realloc(m, a, 60, align);
        EXPECT_HEALTHY(m);
        ASSERT_NOT_NULL(b);
        EXPECT_TRUE(h_is_aligned(b, align));
        EXPECT_EQ(h_verify(b, 40, align), -1);
        ASSERT_TRUE(h_block_info(m, b, &info));
        EXPECT_GE(info.alignment, align);
        FREE_OK(m, b);
    }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_null_allocates_and_zero_keeps)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *a = amm_realloc(m, NULL, 32, 0), *b;
    ASSERT_NOT_NULL(a);
    EXPECT_EQ(amm_size(m, a), 32);
    b = amm_realloc(m, a, 0, 0);            /* size 0 keeps a valid zero-length block */
    ASSERT_NOT_NULL(b);
    EXPECT_EQ(amm_owns(m, b), 1);
    EXPECT_EQ(amm_size(m, b), 0);
    EXPECT_HEALTHY(m);
    FREE_OK(m, b);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

typedef struct origin_count {
    amm_origin origin;
    size_t n;
} origin_count;

static int origin_visit(const amm_block_info *b, void *user)
{
    origin_count *c = (origin_count *)user;
    if (b->state == AMM_BLOCK_LIVE && b->origin == c->origin)
        c->n++;
    return 0;
}

static size_t count_origin(amm_manager *m, amm_origin origin)
{
    origin_count c = {origin, 0};
    amm_walk(m, origin_visit, &c);
    return c.n;
}

TEST(large_blocks)
{
    h_faults f;
    amm_manager *m = h_new_manager("large_threshold=64K,region_size=256K,quarantine=0,quarantine_blocks=0", &f);
    amm_block_info info;
    amm_stats st;
    void *a, *b, *c;
    ALLOC_OK(m, a, 100000, 0);
    ASSERT_TRUE(h_block_info(m, a, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_LARGE);
    EXPECT_GE(info.raw_size, (size_t)100000 + 32);
    h_fill(a, 100000, 5);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.large_count, 1);
    EXPECT_EQ(st.live_bytes, 100000);

    b = amm_realloc(m, a, 300000, 0);       /* large grows: content kept */
    EXPECT_HEALTHY(m);
    ASSERT_NOT_NULL(b);
    EXPECT_EQ(h_verify(b, 100000, 5), -1);
    h_fill(b, 300000, 6);

    c = amm_realloc(m, b, 1000, 0);         /* shrinks (in place or into the heap) */
    EXPECT_HEALTHY(m);
    ASSERT_NOT_NULL(c);
    EXPECT_EQ(h_verify(c, 1000, 6), -1);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.large_count, count_origin(m, AMM_ORIGIN_LARGE));
    EXPECT_EQ(st.live_bytes, 1000);

    b = amm_realloc(m, c, 70000, 0);        /* and grows again */
    EXPECT_HEALTHY(m);
    ASSERT_NOT_NULL(b);
    EXPECT_EQ(h_verify(b, 1000, 6), -1);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.large_count, count_origin(m, AMM_ORIGIN_LARGE));
    FREE_OK(m, b);
    EXPECT_EQ(count_origin(m, AMM_ORIGIN_LARGE), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(large_aligned_blocks)
{
    h_faults f;
    amm_manager *m = h_new_manager("large_threshold=4096,quarantine=0,quarantine_blocks=0", &f);
    for (size_t align = 1; align <= AMM_MAX_ALIGN; align <<= 1) {
        void *p;
        amm_block_info info;
        ALLOC_OK(m, p, 5000, align);
        EXPECT_TRUE(h_is_aligned(p, align));
        ASSERT_TRUE(h_block_info(m, p, &info));
        EXPECT_EQ(info.origin, AMM_ORIGIN_LARGE);
        h_fill(p, 5000, align);
        EXPECT_EQ(h_verify(p, 5000, align), -1);
        FREE_OK(m, p);
    }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(many_regions)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *p[64];
    amm_stats st;
    for (int i = 0; i < 64; i++) {
        ALLOC_OK(m, p[i], 4000, 0);         /* 16 per 64 KiB region at most */
        h_fill(p[i], 4000, (uint64_t)i);
    }
    amm_get_stats(m, &st);
    EXPECT_GE(st.region_count, 4);
    EXPECT_EQ(st.live_blocks, 64);
    for (int i = 0; i < 64; i++) {
        EXPECT_EQ(h_verify(p[i], 4000, (uint64_t)i), -1);
        FREE_OK(m, p[i]);
    }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(defragment_releases_memory)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_defrag_report rep;
    void *keep, *p[40];
    ALLOC_OK(m, keep, 16, 0);
    for (int i = 0; i < 40; i++)
        ALLOC_OK(m, p[i], 4000, 0);
    for (int i = 0; i < 40; i++)
        FREE_OK(m, p[i]);
    memset(&rep, 0, sizeof rep);
    amm_defragment(m, AMM_DEFRAG_RELEASE, &rep);
    EXPECT_HEALTHY(m);
    EXPECT_GE(rep.before.region_count, 2);
    EXPECT_LT(rep.after.reserved_bytes, rep.before.reserved_bytes);
    EXPECT_GE(rep.regions_released, 1);
    EXPECT_GT(rep.bytes_released, 0);
    EXPECT_EQ(rep.after.live_blocks, 1);
    EXPECT_EQ(rep.blocks_moved, 0);         /* nothing was marked movable */
    EXPECT_EQ(amm_owns(m, keep), 1);
    FREE_OK(m, keep);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(destroy_with_live_blocks)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    for (int i = 0; i < 20; i++)
        EXPECT_NOT_NULL(amm_alloc(m, (size_t)i * 37, 0));
    EXPECT_NOT_NULL(amm_alloc(m, 1 << 19, 0));
    EXPECT_NOT_NULL(amm_pool_create(m, 32, 8, 0));
    EXPECT_HEALTHY(m);
    amm_destroy(m);                         /* LeakSanitizer checks nothing is left */
    amm_destroy(NULL);
    EXPECT_FAULTS(&f, 0);
}

TEST(fill_patterns)
{
    h_faults f;
    amm_manager *m = h_new_manager("fill=on,quarantine=1M", &f);
    unsigned char *p, *z;
    size_t bad = 0;
    ALLOC_OK(m, p, 100, 0);
    for (size_t i = 0; i < 100; i++)
        bad += p[i] != AMM_FILL_NEW;
    EXPECT_EQ(bad, 0);
    z = (unsigned char *)amm_alloc_flags(m, 100, 0, AMM_ALLOC_ZERO);
    ASSERT_NOT_NULL(z);
    for (size_t i = 0; i < 100; i++)
        bad += z[i] != 0;
    EXPECT_EQ(bad, 0);
    FREE_OK(m, p);
    h_unpoison(p, 100);                     /* quarantined: look, do not touch */
    for (size_t i = 0; i < 100; i++)
        bad += p[i] != AMM_FILL_FREED;
    EXPECT_EQ(bad, 0);
    FREE_OK(m, z);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

typedef struct moves {
    size_t n;
    void *old_ptr[8], *new_ptr[8];
    size_t size[8];
} moves;

static void on_move(void *old_ptr, void *new_ptr, size_t size, void *user)
{
    moves *mv = (moves *)user;
    if (mv->n < 8) {
        mv->old_ptr[mv->n] = old_ptr;
        mv->new_ptr[mv->n] = new_ptr;
        mv->size[mv->n] = size;
    }
    mv->n++;
}

TEST(compaction_moves_only_movable_blocks)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_defrag_report rep;
    moves mv;
    void *a, *b, *c, *d, *e;
    memset(&mv, 0, sizeof mv);
    amm_set_move_callback(m, on_move, &mv);
    a = amm_alloc_flags(m, 100, 0, AMM_ALLOC_MOVABLE);
    b = amm_alloc(m, 16, 0);                /* pinned */
    c = amm_alloc_flags(m, 100, 0, AMM_ALLOC_MOVABLE);
    d = amm_alloc_flags(m, 100, 0, AMM_ALLOC_MOVABLE);
    e = amm_alloc(m, 16, 0);                /* pinned */
    ASSERT_TRUE(a && b && c && d && e);
    h_fill(b, 16, 2);
    h_fill(d, 100, 4);
    h_fill(e, 16, 5);
    FREE_OK(m, a);
    FREE_OK(m, c);
    EXPECT_HEAP(m, "[F144 U48 F144 U144 U48 F*]");
    amm_defragment(m, AMM_DEFRAG_COMPACT, &rep);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(rep.blocks_moved, 1);         /* d, the only live movable block */
    EXPECT_EQ(rep.bytes_moved, 100);
    ASSERT_EQ(mv.n, 1);
    EXPECT_EQ(mv.old_ptr[0], d);
    EXPECT_EQ(mv.size[0], 100);
    EXPECT_LT((uintptr_t)mv.new_ptr[0], (uintptr_t)d); /* slid toward the start */
    EXPECT_EQ(h_verify(mv.new_ptr[0], 100, 4), -1);
    EXPECT_EQ(amm_owns(m, mv.new_ptr[0]), 1);
    EXPECT_EQ(amm_owns(m, b), 1);           /* pinned blocks stay, intact */
    EXPECT_EQ(amm_owns(m, e), 1);
    EXPECT_EQ(h_verify(b, 16, 2), -1);
    EXPECT_EQ(h_verify(e, 16, 5), -1);
    EXPECT_LE(rep.after.external_frag, rep.before.external_frag);
    FREE_OK(m, b);
    FREE_OK(m, e);
    FREE_OK(m, mv.new_ptr[0]);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_impossible_size_keeps_block)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    void *p;
    ALLOC_OK(m, p, 50, 0);
    h_fill(p, 50, 6);
    EXPECT_NULL(amm_realloc(m, p, SIZE_MAX, 0));
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_BAD_SIZE);
    EXPECT_NULL(amm_realloc(m, p, 64, 3)); /* bad alignment: refused too */
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_BAD_ALIGNMENT);
    EXPECT_EQ(amm_size(m, p), 50);          /* the old block untouched */
    EXPECT_EQ(h_verify(p, 50, 6), -1);
    EXPECT_HEALTHY(m);
    FREE_OK(m, p);
    amm_destroy(m);
}

TEST(set_movable_decides_what_compaction_moves)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    moves mv;
    void *a, *b, *c;
    memset(&mv, 0, sizeof mv);
    amm_set_move_callback(m, on_move, &mv);
    ALLOC_OK(m, a, 100, 0);
    ALLOC_OK(m, b, 100, 0);
    ALLOC_OK(m, c, 100, 0);
    h_fill(c, 100, 7);
    FREE_OK(m, b);                                 /* a hole just below c */
    amm_defragment(m, AMM_DEFRAG_COMPACT, NULL);   /* nothing movable yet */
    EXPECT_EQ(mv.n, 0);
    EXPECT_EQ(amm_set_movable(m, c, 1), 0);
    EXPECT_EQ(amm_set_movable(m, c, 0), 0);        /* pinned again */
    amm_defragment(m, AMM_DEFRAG_COMPACT, NULL);
    EXPECT_EQ(mv.n, 0);
    EXPECT_HEAP(m, "[U144 F144 U144 F*]");
    EXPECT_EQ(amm_set_movable(m, c, 1), 0);
    amm_defragment(m, AMM_DEFRAG_COMPACT, NULL);
    EXPECT_HEALTHY(m);
    ASSERT_EQ(mv.n, 1);                            /* c slides into b's hole */
    EXPECT_EQ(mv.old_ptr[0], c);
    EXPECT_EQ(mv.new_ptr[0], b);
    EXPECT_EQ(h_verify(b, 100, 7), -1);
    EXPECT_HEAP(m, "[U144 U144 F*]");
    FREE_OK(m, a);
    FREE_OK(m, b);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(many_live_blocks)
{
    enum { N = 20000 };
    static void *p[N];
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_stats st;
    size_t bytes = 0;
    for (size_t i = 0; i < N; i++) {
        size_t size = 8 + i % 57;
        p[i] = amm_alloc(m, size, 0);
        ASSERT_NOT_NULL(p[i]);
        *(uint32_t *)p[i] = (uint32_t)i;
        bytes += size;
    }
    amm_get_stats(m, &st);
    EXPECT_EQ(st.live_blocks, N);
    EXPECT_EQ(st.live_bytes, bytes);
    EXPECT_HEALTHY(m);
    for (size_t i = 0; i < N; i++) {
        EXPECT_EQ(amm_owns(m, p[i]), 1);
        EXPECT_EQ(*(uint32_t *)p[i], (uint32_t)i);
        if (i % 2)
            EXPECT_EQ(amm_free(m, p[i]), 0);
    }
    for (size_t i = 0; i < N; i += 2)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    EXPECT_HEALTHY(m);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* ---- out of memory: the system refuses, amm reports and stays whole ---- */

#if defined(H_ASAN) || defined(__SANITIZE_THREAD__)
#define OOM_SKIP 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define OOM_SKIP 1
#endif
#endif

#ifndef OOM_SKIP
/* Bytes of address space in use now (first field of /proc/self/statm, pages). */
static size_t vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Runs in a child with a tight address-space limit; returns its failures. */
static int oom_child(void)
{
    h_faults f;
    amm_manager *m = h_new_manager("region_size=1M,large_threshold=256K,quarantine=0,quarantine_blocks=0", &f);
    struct rlimit lim;
    void *keep[64];
    size_t n = 0;
    unsigned char *small;
    small = (unsigned char *)amm_alloc(m, 100, 0);
    if (!small)
        return 100;
    h_fill(small, 100, 9);
    lim.rlim_cur = lim.rlim_max = vm_bytes() + ((size_t)6 << 20);
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        return 101;
    EXPECT_NULL(amm_alloc(m, (size_t)64 << 20, 0));        /* a large mapping */
    EXPECT_EQ(f.last.kind, AMM_ERR_OUT_OF_MEMORY);
    EXPECT_NULL(amm_pool_create(m, 4096, 100000, 16));     /* a 400 MB slab */
    EXPECT_EQ(f.last.kind, AMM_ERR_OUT_OF_MEMORY);
    EXPECT_NULL(amm_realloc(m, small, (size_t)64 << 20, 0));
    EXPECT_EQ(f.last.kind, AMM_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(h_verify(small, 100, 9), -1);                /* untouched */
    while (n < 64 && (keep[n] = amm_alloc(m, 200000, 0)) != NULL) /* regions run out */
        n++;
    EXPECT_LT(n, 64);
    EXPECT_EQ(f.last.kind, AMM_ERR_OUT_OF_MEMORY);
    EXPECT_GE(f.kinds[AMM_ERR_OUT_OF_MEMORY], 4);
    EXPECT_EQ(f.count, f.kinds[AMM_ERR_OUT_OF_MEMORY]);
    EXPECT_HEALTHY(m);
    while (n > 0)
        EXPECT_EQ(amm_free(m, keep[--n]), 0);
    EXPECT_EQ(amm_free(m, small), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
    return atomic_load(&h_st.failures);
}
#endif

TEST(out_of_memory_is_reported)
{
#ifdef OOM_SKIP
    SKIP("sanitizer runtimes need more address space than the limit leaves");
#else
    pid_t pid;
    int status = 0;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        _exit(oom_child());
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    if (WIFEXITED(status))
        EXPECT_EQ(WEXITSTATUS(status), 0);  /* the child's failed checks (printed above) */
    else
        printf("    child killed by signal %d\n", WTERMSIG(status));
#endif
}


TEST(realloc_keeps_flags_and_site)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_block_info before, after;
    void *pin, *p, *q;
    p = amm_alloc_at(m, 24, 64, AMM_ALLOC_MOVABLE, "site.c", 42);
    ASSERT_NOT_NULL(p);
    ALLOC_OK(m, pin, 16, 0);
    ASSERT_TRUE(h_block_info(m, p, &before));
    EXPECT_TRUE((before.flags & AMM_ALLOC_MOVABLE) != 0);
    EXPECT_STREQ(before.site.file, "site.c");
    EXPECT_EQ(before.site.line, 42);
    q = amm_realloc_at(m, p, 3000, 0, "elsewhere.c", 7); /* moves */
    ASSERT_NOT_NULL(q);
    ASSERT_TRUE(h_block_info(m, q, &after));
    EXPECT_EQ(after.flags, before.flags);
    EXPECT_STREQ(after.site.file, "site.c");             /* the allocation site stays */
    EXPECT_EQ(after.site.line, 42);
    EXPECT_GE(after.alignment, 64);
    EXPECT_TRUE(h_is_aligned(q, 64));
    FREE_OK(m, q);
    FREE_OK(m, pin);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* ---- reuse lists: a freed chunk up to 1 KiB is kept whole for a request of its size ---- */

#define KEEP "quarantine=0,quarantine_blocks=0,region_size=64K,reuse=4K"

TEST(reuse_gives_a_freed_chunk_back_whole)
{
    h_faults f;
    amm_manager *m = h_new_manager(KEEP, &f);
    amm_stats st;
    void *a, *b, *c, *d;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 16, 0);
    FREE_OK(m, a);                          /* kept whole: it does not merge, and shows as free */
    EXPECT_HEAP(m, "[F48 U48 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 48);
    EXPECT_EQ(st.free_bytes, 65536 - 48);   /* kept bytes are free bytes */
    ALLOC_OK(m, c, 10, 0);                  /* needs a 48-byte chunk too: the kept one */
    EXPECT_EQ(c, a);
    ALLOC_OK(m, d, 24, 0);                  /* 64 bytes: from the free span */
    EXPECT_HEAP(m, "[U48 U48 U64 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 0);
    FREE_OK(m, b);
    FREE_OK(m, c);
    FREE_OK(m, d);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(kept_chunk_freed_again_is_a_double_free)
{
    h_faults f;
    amm_manager *m = h_new_manager(KEEP, &f);
    void *a = amm_alloc_at(m, 16, 0, 0, "kept.c", 7), *b;
    ASSERT_NOT_NULL(a);
    ALLOC_OK(m, b, 16, 0);
    FREE_OK(m, a);
    EXPECT_EQ(amm_free(m, a), -1);
    EXPECT_EQ(f.kinds[AMM_ERR_DOUBLE_FREE], 1);
    EXPECT_EQ(f.last.block, a);             /* the report names the block that was freed */
    EXPECT_EQ(f.last.block_size, 16);
    EXPECT_STREQ(f.last.alloc_site.file, "kept.c");
    EXPECT_EQ(amm_retain(m, a), 0);         /* every other use of it is refused too */
    EXPECT_EQ(f.kinds[AMM_ERR_DOUBLE_FREE], 2);
    EXPECT_EQ(amm_owns(m, a), 0);
    EXPECT_NULL(amm_copy(m, a, 8));         /* reading it is a use after free */
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(amm_check(m), 0);             /* nothing was damaged */
    FREE_OK(m, b);
    amm_destroy(m);
}

TEST(kept_chunks_merge_when_defragmented)
{
    h_faults f;
    amm_manager *m = h_new_manager(KEEP, &f);
    amm_stats st;
    amm_defrag_report r;
    void *a, *b, *c;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 16, 0);
    ALLOC_OK(m, c, 16, 0);
    FREE_OK(m, a);
    FREE_OK(m, b);
    EXPECT_HEAP(m, "[F48 F48 U48 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 96);
    EXPECT_GT(st.external_frag, 0.0);
    amm_defragment(m, AMM_DEFRAG_COMPACT, &r);
    EXPECT_HEAP(m, "[F96 U48 F*]");
    EXPECT_EQ(r.after.reuse_bytes, 0);
    EXPECT_EQ(r.blocks_moved, 0);           /* c is not movable */
    FREE_OK(m, c);
    EXPECT_HEAP(m, "[F96 F48 F*]");         /* c is kept again */
    amm_defragment(m, AMM_DEFRAG_COMPACT, NULL);
    EXPECT_HEAP(m, "[F65536]");
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(reuse_keeps_at_most_its_bytes_and_small_chunks_only)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0,region_size=64K,reuse=96", &f);
    amm_stats st;
    void *p[5], *big, *small;
    for (int i = 0; i < 5; i++)
        ALLOC_OK(m, p[i], 16, 0);
    FREE_OK(m, p[0]);
    FREE_OK(m, p[1]);
    FREE_OK(m, p[3]);                       /* 96 bytes kept already: this one goes to the free lists */
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 96);
    EXPECT_HEAP(m, "[F48 F48 U48 F48 U48 F*]");
    FREE_OK(m, p[2]);                       /* merges with p[3]'s span and takes the kept p[1] in too */
    EXPECT_HEAP(m, "[F48 F144 U48 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 48);
    FREE_OK(m, p[4]);
    amm_destroy(m);

    m = h_new_manager("quarantine=0,quarantine_blocks=0,region_size=64K,reuse=64K", &f);
    ALLOC_OK(m, big, 5000, 0);              /* a 5040-byte chunk: over the 4160 kept at most */
    ALLOC_OK(m, small, 4096, 0);            /* 4128 bytes: kept */
    FREE_OK(m, big);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 0);
    FREE_OK(m, small);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 4128);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(only_one_kept_chunk_borders_free_space)
{
    h_faults f;
    amm_manager *m = h_new_manager(KEEP, &f);
    amm_stats st;
    void *a, *big, *c, *d, *e, *x;
    ALLOC_OK(m, a, 16, 0);
    FREE_OK(m, a);                          /* next to the free span it came from: kept, the loose one */
    EXPECT_HEAP(m, "[F48 F*]");
    ALLOC_OK(m, x, 16, 0);                  /* the pattern it is kept for: alloc, free, alloc again */
    EXPECT_EQ(x, a);
    ALLOC_OK(m, big, 5000, 0);              /* 5040 bytes: too big to keep */
    ALLOC_OK(m, c, 16, 0);
    ALLOC_OK(m, d, 16, 0);
    ALLOC_OK(m, e, 16, 0);
    FREE_OK(m, big);                        /* a free span */
    FREE_OK(m, c);                          /* borders it: kept as the loose one */
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 48);
    EXPECT_HEAP(m, "[U48 F5040 F48 U48 U48 F*]");
    FREE_OK(m, e);                          /* borders the free tail: the new loose one; c joins the span */
    EXPECT_HEAP(m, "[U48 F5088 U48 F48 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 48);
    EXPECT_EQ(st.largest_free, st.free_bytes - 5088 - 48);  /* the tail; 5088 and e are the others */
    FREE_OK(m, d);                          /* borders the span too: loose now; e joins the tail */
    EXPECT_HEAP(m, "[U48 F5088 F48 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 48);
    FREE_OK(m, x);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(realloc_grows_into_a_kept_neighbour)
{
    h_faults f;
    amm_manager *m = h_new_manager(KEEP, &f);
    amm_stats st;
    void *a, *b, *c, *d, *q;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 16, 0);
    ALLOC_OK(m, c, 16, 0);
    memset(a, 0x5a, 16);
    FREE_OK(m, b);
    q = amm_realloc(m, a, 64, 0);           /* needs 96 bytes: its own 48 and the kept 48 after it */
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(q, a);
    EXPECT_EQ(((unsigned char *)q)[15], 0x5a);
    EXPECT_HEAP(m, "[U96 U48 F*]");
    EXPECT_HEALTHY(m);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 0);
    FREE_OK(m, c);                          /* kept, between q and the free tail: the loose one */
    ALLOC_OK(m, c, 16, 0);                  /* takes it back */
    ALLOC_OK(m, d, 16, 0);
    FREE_OK(m, c);                          /* kept between q and d */
    q = amm_realloc(m, q, 200, 0);          /* needs 240: q's 96 and the kept 48 are not enough */
    ASSERT_NOT_NULL(q);
    EXPECT_NE(q, a);                        /* moved */
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 96 + 48);     /* c is still kept (and a's old chunk too) */
    FREE_OK(m, q);
    FREE_OK(m, d);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(kept_chunks_merge_before_a_new_region_is_mapped)
{
    h_faults f;
    amm_manager *m = h_new_manager(KEEP, &f);
    amm_stats st;
    enum { N = 65536 / 48 };                /* 48-byte chunks fill the 64 KiB region */
    static void *p[N];
    void *q;
    for (int i = 0; i < N; i++)
        ASSERT_NOT_NULL(p[i] = amm_alloc(m, 16, 0));
    amm_get_stats(m, &st);
    ASSERT_EQ(st.region_count, 1);
    ASSERT_EQ(st.free_bytes, 0);
    EXPECT_EQ(amm_free(m, p[10]), 0);
    EXPECT_EQ(amm_free(m, p[11]), 0);       /* two kept chunks side by side, 96 bytes */
    q = amm_alloc(m, 64, 0);                /* needs 96: only the kept chunks merged can serve it */
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(q, p[10]);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.region_count, 1);
    EXPECT_EQ(st.reuse_bytes, 0);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(amm_free(m, q), 0);
    for (int i = 0; i < N; i++) {
        if (i != 10 && i != 11)
            EXPECT_EQ(amm_free(m, p[i]), 0);
    }
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(chunk_leaving_quarantine_is_kept_and_still_checked)
{
    h_faults f;
    amm_manager *m = h_new_manager("region_size=64K,quarantine=1M,quarantine_blocks=1,reuse=4K", &f);
    amm_stats st;
    void *a, *b, *c, *d;
    ALLOC_OK(m, a, 16, 0);
    ALLOC_OK(m, b, 16, 0);
    ALLOC_OK(m, c, 16, 0);
    FREE_OK(m, a);                          /* quarantined */
    FREE_OK(m, b);                          /* quarantined; a leaves quarantine and is kept */
    EXPECT_HEAP(m, "[F48 Q48 U48 F*]");
    amm_get_stats(m, &st);
    EXPECT_EQ(st.reuse_bytes, 48);
    EXPECT_EQ(st.quarantine_blocks, 1);
    EXPECT_EQ(amm_free(m, a), -1);          /* still a double free */
    EXPECT_EQ(f.kinds[AMM_ERR_DOUBLE_FREE], 1);
    EXPECT_EQ(f.last.block_size, 16);
    ALLOC_OK(m, d, 16, 0);                  /* the kept chunk, with fresh canaries and fill */
    EXPECT_EQ(d, a);
    EXPECT_EQ(((unsigned char *)d)[0], AMM_FILL_NEW);
    h_unpoison((unsigned char *)d + 16, 1);
    ((unsigned char *)d)[16] = 0;           /* one byte past the end: its new canary catches it */
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_OVERFLOW);
    EXPECT_EQ(amm_free(m, d), 0);
    EXPECT_EQ(amm_free(m, c), 0);
    amm_destroy(m);
}

TEST(kept_chunk_never_serves_a_request_for_its_own_mapping)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0,large_threshold=4096", &f);
    amm_block_info info;
    void *p, *q, *r;
    ALLOC_OK(m, p, 100, 0);
    q = amm_realloc(m, p, 4064, 0);         /* grows in place to a 4096-byte heap chunk */
    ASSERT_NOT_NULL(q);
    ASSERT_TRUE(h_block_info(m, q, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_HEAP);
    FREE_OK(m, q);                          /* kept: 4096 bytes is under the 4160 kept at most */
    ALLOC_OK(m, r, 4064, 0);                /* needs 4096 >= large_threshold: its own mapping */
    ASSERT_TRUE(h_block_info(m, r, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_LARGE);
    FREE_OK(m, r);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

#ifdef H_ASAN
#include <sys/mman.h>
/* A block that grows in place into a big (lazily shadowed) region puts its
 * guards where no block was before; when the region goes back to the system
 * the shadow of those bytes must be cleared too, or the next mapping there
 * trips a false use-after-free. */
TEST(region_unmap_clears_the_shadow_of_a_grown_block)
{
    h_faults f;
    amm_manager *m = h_new_manager("region_size=32M,large_threshold=1G,reuse=0,quarantine=0,quarantine_blocks=0", &f);
    amm_defrag_report rep;
    void *p, *q;
    ALLOC_OK(m, p, 100, 0);
    uintptr_t base = (uintptr_t)p & ~(uintptr_t)(4096 - 1);
    q = amm_realloc(m, p, (size_t)20 << 20, 0);
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(q, p);                        /* grown in place */
    FREE_OK(m, q);
    amm_defragment(m, AMM_DEFRAG_RELEASE, &rep);
    EXPECT_EQ(rep.regions_released, 1);
    void *again = mmap((void *)base, (size_t)32 << 20, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (again == (void *)base) {
        memset(again, 1, (size_t)32 << 20); /* a stale poison byte would stop ASan here */
        munmap(again, (size_t)32 << 20);
    } else if (again != MAP_FAILED) {
        munmap(again, (size_t)32 << 20);
    }
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}
#endif
