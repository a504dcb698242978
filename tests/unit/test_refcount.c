/*
 * test_refcount.c - reference counting as the seed has it: a new block
 * counts 1, retain adds, release at 0 frees, a direct free of a shared block
 * is refused (free-of-shared-block), and realloc carries the count.
 */
#include "../harness.h"

static unsigned refcount_of(amm_manager *m, const void *p)
{
    amm_block_info info;
    if (!h_block_info(m, p, &info) || info.state != AMM_BLOCK_LIVE)
        return 0;
    return info.refcount;
}

TEST(new_block_counts_one)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    void *p = amm_alloc(m, 10, 0);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(refcount_of(m, p), 1u);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(retain_release_counts)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 10, 0);
    ASSERT_NOT_NULL(p);
    h_fill(p, 10, 1);
    for (unsigned i = 2; i <= 10; i++) {
        EXPECT_EQ(amm_retain(m, p), i);
        EXPECT_EQ(refcount_of(m, p), i);
        EXPECT_HEALTHY(m);
    }
    for (unsigned i = 9; i >= 1; i--) {
        EXPECT_EQ(amm_release(m, p), i);
        EXPECT_EQ(amm_owns(m, p), 1);
        EXPECT_EQ(h_verify(p, 10, 1), -1);
    }
    EXPECT_EQ(amm_release(m, p), 0u);       /* the last reference frees it */
    EXPECT_EQ(amm_owns(m, p), 0);
    EXPECT_HEALTHY(m);
    EXPECT_FAULTS(&f, 0);
    {
        amm_stats st;
        amm_get_stats(m, &st);
        EXPECT_EQ(st.live_blocks, 0);
        EXPECT_EQ(st.total_frees, 1);
    }
    amm_destroy(m);
}

TEST(free_of_shared_block_refused)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 24, 0);
    ASSERT_NOT_NULL(p);
    h_fill(p, 24, 2);
    EXPECT_EQ(amm_retain(m, p), 2u);
    EXPECT_EQ(amm_free(m, p), -1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_SHARED_FREE);
    EXPECT_EQ(f.last.block, p);
    EXPECT_EQ(f.last.refcount, 2u);
    EXPECT_EQ(amm_owns(m, p), 1);           /* still there, unchanged */
    EXPECT_EQ(refcount_of(m, p), 2u);
    EXPECT_EQ(h_verify(p, 24, 2), -1);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(amm_release(m, p), 1u);
    EXPECT_EQ(amm_free(m, p), 0);           /* now it is not shared */
    EXPECT_FAULTS(&f, 1);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(realloc_carries_the_count)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 24, 0), *q, *pin;
    ASSERT_NOT_NULL(p);
    pin = (unsigned char *)amm_alloc(m, 16, 0);  /* forces the grow to move */
    ASSERT_NOT_NULL(pin);
    h_fill(p, 24, 3);
    EXPECT_EQ(amm_retain(m, p), 2u);
    EXPECT_EQ(amm_retain(m, p), 3u);
    q = (unsigned char *)amm_realloc(m, p, 5000, 0);
    ASSERT_NOT_NULL(q);
    EXPECT_NE(q, p);
    EXPECT_EQ(refcount_of(m, q), 3u);
    EXPECT_EQ(h_verify(q, 24, 3), -1);
    q = (unsigned char *)amm_realloc(m, q, 30, 0); /* in place this time */
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(refcount_of(m, q), 3u);
    EXPECT_EQ(amm_free(m, q), -1);
    EXPECT_EQ(f.last.kind, AMM_ERR_SHARED_FREE);
    EXPECT_EQ(amm_release(m, q), 2u);
    EXPECT_EQ(amm_release(m, q), 1u);
    EXPECT_EQ(amm_release(m, q), 0u);
    EXPECT_EQ(amm_owns(m, q), 0);
    EXPECT_EQ(amm_free(m, pin), 0);
    EXPECT_FAULTS(&f, 1);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(release_after_free_refused)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M", &f);
    void *p = amm_alloc(m, 24, 0);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_release(m, p), 0u);
    EXPECT_EQ(amm_release(m, p), (unsigned)-1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(amm_retain(m, p), 0u);
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(amm_free(m, p), -1);
    EXPECT_FAULTS(&f, 3);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(pool_and_large_blocks_count_too)
{
    h_faults f;
    amm_manager *m = h_new_manager("large_threshold=4096", &f);
    amm_pool *pool = amm_pool_create(m, 64, 2, 16);
    void *blocks[2];
    ASSERT_NOT_NULL(pool);
    blocks[0] = amm_alloc(m, 50, 0);
    blocks[1] = amm_alloc(m, 9000, 0);
    for (int i = 0; i < 2; i++) {
        amm_block_info info;
        void *p = blocks[i];
        ASSERT_NOT_NULL(p);
        ASSERT_TRUE(h_block_info(m, p, &info));
        EXPECT_EQ(info.origin, i == 0 ? AMM_ORIGIN_POOL : AMM_ORIGIN_LARGE);
        EXPECT_EQ(amm_retain(m, p), 2u);
        EXPECT_EQ(amm_free(m, p), -1);
        EXPECT_EQ(f.last.kind, AMM_ERR_SHARED_FREE);
        EXPECT_EQ(amm_release(m, p), 1u);
        EXPECT_EQ(amm_release(m, p), 0u);
        EXPECT_EQ(amm_owns(m, p), 0);
    }
    EXPECT_FAULTS(&f, 2);
    EXPECT_HEALTHY(m);
    {
        amm_pool_info pi;
        ASSERT_EQ(amm_pool_info_get(m, pool, &pi), 0);
        EXPECT_EQ(pi.used, 0);
    }
    amm_destroy(m);
}

TEST(interleaved_owners)
{
    /* 1..8 owners share one block; whoever lets go last frees it */
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    h_rng r = h_rng_make(h_seed());
    for (int round = 0; round < 50; round++) {
        unsigned owners = (unsigned)h_rand_range(&r, 1, 8);
        unsigned char *p = (unsigned char *)amm_alloc(m, (size_t)h_rand_range(&r, 0, 300), 0);
        ASSERT_NOT_NULL(p);
        for (unsigned i = 1; i < owners; i++)
            EXPECT_EQ(amm_retain(m, p), i + 1);
        for (unsigned i = owners; i > 0; i--) {
            EXPECT_EQ(amm_owns(m, p), 1);
            EXPECT_EQ(amm_release(m, p), i - 1);
        }
        EXPECT_EQ(amm_owns(m, p), 0);
    }
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}
