/*
 * test_pool.c - fixed-size pools: slot arithmetic, the smallest fitting pool
 * chosen by amm_alloc (size and alignment), fallback to the heap when full,
 * double free of a slot, never-allocated slots, pointers between slots, and
 * a pointer's pool decided by its address, never by its size.
 */
#include "../harness.h"

#define NOQ "quarantine=0,quarantine_blocks=0"

static amm_pool_info info_of(amm_manager *m, amm_pool *pool)
{
    amm_pool_info pi;
    memset(&pi, 0, sizeof pi);
    EXPECT_EQ(amm_pool_info_get(m, pool, &pi), 0);
    return pi;
}

static int in_pool(amm_manager *m, amm_pool *pool, const void *p)
{
    amm_pool_info pi = info_of(m, pool);
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)pi.base;
    return a >= base && a < base + pi.slab_bytes;
}

TEST(slot_arithmetic)
{
    static const size_t aligns[] = {1, 8, 16, 64, 4096};
    for (unsigned k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
        h_faults f;
        amm_manager *m = h_new_manager(NOQ, &f);
        amm_pool *pool = amm_pool_create(m, 48, 8, aligns[k]);
        amm_pool_info pi;
        unsigned char seen[8] = {0};
        void *slots[8];
        size_t front = 0;
        ASSERT_NOT_NULL(pool);
        pi = info_of(m, pool);
        EXPECT_EQ(pi.block_size, 48);
        EXPECT_EQ(pi.block_count, 8);
        EXPECT_GE(pi.alignment, aligns[k]);
        EXPECT_GE(pi.stride, 48 + 2 * 16);  /* block and both canaries */
        EXPECT_EQ(pi.stride % pi.alignment, 0);
        EXPECT_GE(pi.slab_bytes, pi.stride * 8);
        EXPECT_EQ(pi.used, 0);
        EXPECT_EQ(pi.free, 8);
        for (int i = 0; i < 8; i++) {
            uintptr_t off;
            slots[i] = amm_pool_alloc_at(m, pool, 48, aligns[k], __FILE__, __LINE__);
            ASSERT_NOT_NULL(slots[i]);
            EXPECT_TRUE(h_is_aligned(slots[i], aligns[k]));
            EXPECT_TRUE(in_pool(m, pool, slots[i]));
            off = (uintptr_t)slots[i] - (uintptr_t)pi.base;
            if (i == 0)
                front = off % pi.stride;
            EXPECT_EQ(off % pi.stride, front); /* same place in every slot */
            EXPECT_GE(front, 16);               /* behind a front canary */
            ASSERT_LT(off / pi.stride, 8);
            EXPECT_EQ(seen[off / pi.stride], 0); /* each slot once */
            seen[off / pi.stride] = 1;
            h_fill(slots[i], 48, (uint64_t)i);
            EXPECT_HEALTHY(m);
        }
        EXPECT_NULL(amm_pool_alloc_at(m, pool, 48, aligns[k], __FILE__, __LINE__)); /* full */
        EXPECT_FAULTS(&f, 0);               /* full is not a fault */
        pi = info_of(m, pool);
        EXPECT_EQ(pi.used, 8);
        EXPECT_EQ(pi.free, 0);
        EXPECT_EQ(pi.high_water, 8);
        EXPECT_HEAP(m, "P[uuuuuuuu]");
        for (int i = 0; i < 8; i++) {
            EXPECT_EQ(h_verify(slots[i], 48, (uint64_t)i), -1);
            EXPECT_EQ(amm_free(m, slots[i]), 0);
        }
        EXPECT_HEAP(m, "P[........]");
        pi = info_of(m, pool);
        EXPECT_EQ(pi.used, 0);
        EXPECT_EQ(pi.high_water, 8);
        EXPECT_FAULTS(&f, 0);
        EXPECT_HEALTHY(m);
        amm_destroy(m);
    }
}

TEST(pool_pictures)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M,quarantine_blocks=1", &f);
    amm_pool *pool = amm_pool_create(m, 32, 4, 16);
    void *s[4];
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < 4; i++) {
        s[i] = amm_pool_alloc_at(m, pool, 32, 0, __FILE__, __LINE__);
        ASSERT_NOT_NULL(s[i]);
    }
    EXPECT_HEAP(m, "P[uuuu]");
    EXPECT_EQ(amm_free(m, s[1]), 0);
    {
        amm_block_info bi;
        ASSERT_TRUE(h_block_info(m, s[1], &bi));
        EXPECT_EQ(bi.state, AMM_BLOCK_QUARANTINED);
    }
    EXPECT_EQ(info_of(m, pool).quarantined, 1);
    EXPECT_EQ(amm_free(m, s[3]), 0);        /* s[1] leaves quarantine */
    EXPECT_EQ(info_of(m, pool).quarantined, 1);
    EXPECT_EQ(info_of(m, pool).free, 1);
    EXPECT_EQ(info_of(m, pool).used, 2);
    {
        /* the picture, by slot index (the order slots are handed out is the pool's choice) */
        amm_pool_info pi = info_of(m, pool);
        char want[8] = "P[uuuu]";
        want[2 + ((uintptr_t)s[1] - (uintptr_t)pi.base) / pi.stride] = '.';
        want[2 + ((uintptr_t)s[3] - (uintptr_t)pi.base) / pi.stride] = 'q';
        EXPECT_HEAP(m, want);
    }
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(smallest_fitting_pool)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *p64 = amm_pool_create(m, 64, 4, 16);
    amm_pool *p32 = amm_pool_create(m, 32, 4, 16);
    amm_pool *p128 = amm_pool_create(m, 128, 4, 16);
    void *a, *b, *c, *d, *e;
    ASSERT_NOT_NULL(p64);
    ASSERT_NOT_NULL(p32);
    ASSERT_NOT_NULL(p128);
    EXPECT_EQ(amm_pool_count(m), 3);
    EXPECT_EQ(amm_pool_get(m, 0), p64);
    EXPECT_EQ(amm_pool_get(m, 1), p32);
    EXPECT_EQ(amm_pool_get(m, 2), p128);
    EXPECT_NULL(amm_pool_get(m, 3));
    a = amm_alloc(m, 20, 0);
    b = amm_alloc(m, 32, 0);
    c = amm_alloc(m, 33, 0);
    d = amm_alloc(m, 100, 0);
    e = amm_alloc(m, 200, 0);
    EXPECT_TRUE(in_pool(m, p32, a));
    EXPECT_TRUE(in_pool(m, p32, b));
    EXPECT_TRUE(in_pool(m, p64, c));
    EXPECT_TRUE(in_pool(m, p128, d));
    {
        amm_block_info bi;
        ASSERT_TRUE(h_block_info(m, e, &bi));
        EXPECT_EQ(bi.origin, AMM_ORIGIN_HEAP);
    }
    EXPECT_EQ(amm_free(m, a), 0);
    EXPECT_EQ(amm_free(m, b), 0);
    EXPECT_EQ(amm_free(m, c), 0);
    EXPECT_EQ(amm_free(m, d), 0);
    EXPECT_EQ(amm_free(m, e), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

/*
 * The choice walks up from the smallest fitting pool: pools of one size in
 * creation order, a full one passed over for the next, one whose alignment
 * is too small skipped; only when every fitting pool is full does
 * amm_pool_alloc with no pool take back the smallest one's quarantined slot.
 */
TEST(pool_choice_walks_up_by_size_then_creation)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M,quarantine_blocks=64", &f);
    amm_pool *a64 = amm_pool_create(m, 64, 2, 16);
    amm_pool *b32 = amm_pool_create(m, 32, 1, 16);
    amm_pool *c32 = amm_pool_create(m, 32, 1, 16);
    amm_pool *d64 = amm_pool_create(m, 64, 1, 256);
    void *p[6];
    ASSERT_NOT_NULL(a64);
    ASSERT_NOT_NULL(b32);
    ASSERT_NOT_NULL(c32);
    ASSERT_NOT_NULL(d64);
    for (int i = 0; i < 6; i++)
        ASSERT_NOT_NULL(p[i] = amm_alloc(m, 20, 0));
    EXPECT_TRUE(in_pool(m, b32, p[0]));     /* the smallest size, created first */
    EXPECT_TRUE(in_pool(m, c32, p[1]));     /* its twin */
    EXPECT_TRUE(in_pool(m, a64, p[2]));     /* the 32s are full: 64, created first */
    EXPECT_TRUE(in_pool(m, a64, p[3]));
    EXPECT_TRUE(in_pool(m, d64, p[4]));     /* then its twin */
    EXPECT_TRUE(!in_pool(m, a64, p[5]) && !in_pool(m, b32, p[5]) && !in_pool(m, c32, p[5]) &&
                !in_pool(m, d64, p[5]));    /* every pool full: the heap */
    EXPECT_HEALTHY(m);
    /* 128-aligned: only d64 can; free one slot of a64 and one of d64 */
    EXPECT_EQ(amm_free(m, p[2]), 0);
    EXPECT_EQ(amm_free(m, p[4]), 0);        /* both quarantined: no free slot anywhere */
    EXPECT_EQ(info_of(m, a64).quarantined, 1);
    EXPECT_EQ(info_of(m, d64).quarantined, 1);
    void *q = amm_alloc(m, 20, 128);        /* amm_alloc has the heap: it leaves quarantine alone */
    ASSERT_NOT_NULL(q);
    EXPECT_TRUE(!in_pool(m, d64, q));
    /* amm_pool_alloc with no pool must take one back: the smallest fitting, a64 */
    void *r = amm_pool_alloc_at(m, NULL, 20, 0, __FILE__, __LINE__);
    EXPECT_EQ(r, p[2]);
    void *s = amm_pool_alloc_at(m, NULL, 20, 128, __FILE__, __LINE__); /* a64 is 16-aligned: d64's */
    EXPECT_EQ(s, p[4]);
    EXPECT_NULL(amm_pool_alloc_at(m, NULL, 20, 0, __FILE__, __LINE__)); /* nothing left at all */
    EXPECT_FAULTS(&f, 0);
    EXPECT_EQ(amm_free(m, q), 0);
    EXPECT_EQ(amm_free(m, r), 0);
    EXPECT_EQ(amm_free(m, s), 0);
    for (int i = 0; i < 6; i++) {
        if (i != 2 && i != 4)
            EXPECT_EQ(amm_free(m, p[i]), 0);
    }
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(pool_alignment_must_fit)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *p16 = amm_pool_create(m, 64, 4, 16);
    amm_pool *p256 = amm_pool_create(m, 64, 4, 256);
    void *a, *b, *c;
    ASSERT_NOT_NULL(p16);
    ASSERT_NOT_NULL(p256);
    a = amm_alloc(m, 40, 128);              /* only the 256-aligned pool fits */
    ASSERT_NOT_NULL(a);
    EXPECT_TRUE(in_pool(m, p256, a));
    EXPECT_TRUE(h_is_aligned(a, 128));
    b = amm_alloc(m, 40, 1024);             /* no pool fits: the heap */
    ASSERT_NOT_NULL(b);
    EXPECT_TRUE(!in_pool(m, p16, b) && !in_pool(m, p256, b));
    EXPECT_TRUE(h_is_aligned(b, 1024));
    EXPECT_NULL(amm_pool_alloc_at(m, p16, 40, 64, __FILE__, __LINE__));
    EXPECT_NULL(amm_pool_alloc_at(m, p16, 65, 0, __FILE__, __LINE__)); /* too big for the slot */
    EXPECT_FAULTS(&f, 0);
    c = amm_alloc_flags(m, 40, 0, AMM_ALLOC_NO_POOL);
    ASSERT_NOT_NULL(c);
    EXPECT_TRUE(!in_pool(m, p16, c) && !in_pool(m, p256, c));
    EXPECT_EQ(amm_free(m, a), 0);
    EXPECT_EQ(amm_free(m, b), 0);
    EXPECT_EQ(amm_free(m, c), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(full_pool_falls_back_to_heap)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *pool = amm_pool_create(m, 32, 3, 16);
    void *p[5];
    ASSERT_NOT_NULL(pool);
    for (int i = 0; i < 5; i++) {
        p[i] = amm_alloc(m, 32, 0);
        ASSERT_NOT_NULL(p[i]);
        EXPECT_EQ(in_pool(m, pool, p[i]), i < 3);
    }
    EXPECT_EQ(amm_free(m, p[1]), 0);        /* a slot frees up: the next one takes it */
    p[1] = amm_alloc(m, 32, 0);
    ASSERT_NOT_NULL(p[1]);
    EXPECT_TRUE(in_pool(m, pool, p[1]));
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(general_alloc_leaves_pool_quarantine_alone)
{
    /* amm_alloc has the heap to fall back on, so it never takes a slot back
     * from quarantine: a double free of the quarantined slot is still caught
     * however many allocations come in between.  amm_pool_alloc, which
     * would otherwise fail, does take the oldest one back. */
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M,quarantine_blocks=64", &f);
    amm_pool *pool = amm_pool_create(m, 32, 2, 16);
    void *a, *b, *heap[8];
    ASSERT_NOT_NULL(pool);
    a = amm_alloc(m, 32, 0);
    b = amm_alloc(m, 32, 0);
    ASSERT_TRUE(in_pool(m, pool, a));
    ASSERT_TRUE(in_pool(m, pool, b));
    EXPECT_EQ(amm_free(m, a), 0);
    EXPECT_EQ(info_of(m, pool).quarantined, 1);
    for (int i = 0; i < 8; i++) {
        heap[i] = amm_alloc(m, 32, 0);
        ASSERT_NOT_NULL(heap[i]);
        EXPECT_EQ(in_pool(m, pool, heap[i]), 0);
        EXPECT_NE(heap[i], a);
    }
    EXPECT_EQ(amm_free(m, a), -1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(amm_pool_alloc_at(m, pool, 32, 0, __FILE__, __LINE__), a);
    EXPECT_EQ(info_of(m, pool).quarantined, 0);
    EXPECT_EQ(amm_free(m, a), 0);
    EXPECT_EQ(amm_free(m, b), 0);
    for (int i = 0; i < 8; i++)
        EXPECT_EQ(amm_free(m, heap[i]), 0);
    EXPECT_FAULTS(&f, 1);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(double_free_of_a_slot)
{
    static const char *const options[] = {NOQ, "quarantine=1M"};
    for (int o = 0; o < 2; o++) {
        h_faults f;
        amm_manager *m = h_new_manager(options[o], &f);
        amm_pool *pool = amm_pool_create(m, 32, 4, 16);
        void *p, *q;
        ASSERT_NOT_NULL(pool);
        p = amm_alloc(m, 32, 0);
        q = amm_alloc(m, 32, 0);
        ASSERT_TRUE(in_pool(m, pool, p));
        EXPECT_EQ(amm_free(m, p), 0);
        EXPECT_EQ(amm_free(m, p), -1);
        EXPECT_FAULTS(&f, 1);
        EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
        EXPECT_EQ(f.last.origin, AMM_ORIGIN_POOL);
        EXPECT_EQ(f.last.block, p);
        if (atomic_load(&h_st.failures))
            printf("    with options \"%s\"\n", options[o]);
        EXPECT_EQ(info_of(m, pool).used, 1);
        EXPECT_EQ(amm_owns(m, q), 1);
        EXPECT_EQ(amm_free(m, q), 0);
        EXPECT_HEALTHY(m);
        {
            /* the free-slot stack holds each slot once: four allocations, then full */
            void *s[5];
            int got = 0;
            for (int i = 0; i < 5; i++) {
                s[i] = amm_pool_alloc_at(m, pool, 32, 0, __FILE__, __LINE__);
                got += s[i] != NULL;
            }
            if (o == 0)
                EXPECT_EQ(got, 4);
            for (int i = 0; i < 5; i++)
                if (s[i])
                    EXPECT_EQ(amm_free(m, s[i]), 0);
            for (int i = 0; i < 5; i++)
                for (int j = i + 1; j < 5; j++)
                    if (s[i])
                        EXPECT_NE(s[i], s[j]);
        }
        EXPECT_FAULTS(&f, 1);
        amm_destroy(m);
    }
}

TEST(pool_of_pointer_by_address)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *p32 = amm_pool_create(m, 32, 4, 16);
    amm_pool *p64 = amm_pool_create(m, 64, 4, 16);
    void *small_in_big, *q;
    ASSERT_NOT_NULL(p32);
    ASSERT_NOT_NULL(p64);
    /* a 20-byte block in the 64-byte pool: its size says p32, its address p64 */
    small_in_big = amm_pool_alloc_at(m, p64, 20, 0, __FILE__, __LINE__);
    ASSERT_NOT_NULL(small_in_big);
    EXPECT_TRUE(in_pool(m, p64, small_in_big));
    q = amm_alloc(m, 20, 0);
    ASSERT_TRUE(in_pool(m, p32, q));
    EXPECT_EQ(info_of(m, p64).used, 1);
    EXPECT_EQ(info_of(m, p32).used, 1);
    EXPECT_EQ(amm_free(m, small_in_big), 0);
    EXPECT_EQ(info_of(m, p64).used, 0);
    EXPECT_EQ(info_of(m, p64).free, 4);
    EXPECT_EQ(info_of(m, p32).used, 1);     /* untouched */
    EXPECT_EQ(info_of(m, p32).free, 3);
    EXPECT_EQ(amm_free(m, q), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(realloc_out_of_and_within_a_slot)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *pool = amm_pool_create(m, 64, 2, 16);
    unsigned char *p, *q;
    ASSERT_NOT_NULL(pool);
    p = (unsigned char *)amm_alloc(m, 20, 0);
    ASSERT_TRUE(in_pool(m, pool, p));
    h_fill(p, 20, 7);
    q = (unsigned char *)amm_realloc(m, p, 60, 0); /* still fits the slot */
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(h_verify(q, 20, 7), -1);
    EXPECT_EQ(amm_size(m, q), 60);
    EXPECT_HEALTHY(m);
    h_fill(q, 60, 8);
    p = (unsigned char *)amm_realloc(m, q, 500, 0); /* out to the heap */
    ASSERT_NOT_NULL(p);
    EXPECT_TRUE(!in_pool(m, pool, p));
    EXPECT_EQ(h_verify(p, 60, 8), -1);
    EXPECT_EQ(info_of(m, pool).used, 0);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

TEST(bad_pool_parameters)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_manager *other = h_new_manager(NOQ, NULL);
    amm_pool *foreign;
    amm_pool_info pi;
    EXPECT_NULL(amm_pool_create(m, 32, 4, 3));
    EXPECT_EQ(f.last.kind, AMM_ERR_BAD_ALIGNMENT);
    EXPECT_NULL(amm_pool_create(m, 0, 4, 16));
    EXPECT_NULL(amm_pool_create(m, 32, 0, 16));
    EXPECT_NULL(amm_pool_create(m, SIZE_MAX / 2, SIZE_MAX / 2, 16));
    EXPECT_FAULTS(&f, 4);
    EXPECT_EQ(amm_pool_count(m), 0);
    foreign = amm_pool_create(other, 32, 4, 16);
    ASSERT_NOT_NULL(foreign);
    EXPECT_EQ(amm_pool_info_get(m, foreign, &pi), -1);
    EXPECT_NULL(amm_pool_alloc_at(m, foreign, 8, 0, __FILE__, __LINE__));
    EXPECT_HEALTHY(m);
    amm_destroy(other);
    amm_destroy(m);
}

TEST(pool_stats)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_stats st;
    void *p[3];
    ASSERT_NOT_NULL(amm_pool_create(m, 32, 4, 16));
    ASSERT_NOT_NULL(amm_pool_create(m, 128, 6, 64));
    for (int i = 0; i < 3; i++)
        p[i] = amm_alloc(m, 30 + (size_t)i * 40, 0);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.pool_count, 2);
    EXPECT_EQ(st.pool_slots, 10);
    EXPECT_EQ(st.pool_slots_used, 3);
    EXPECT_EQ(st.live_blocks, 3);
    EXPECT_EQ(st.live_bytes, 30 + 70 + 110);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(amm_free(m, p[i]), 0);
    amm_get_stats(m, &st);
    EXPECT_EQ(st.pool_slots_used, 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* The user pointer slot `idx` would have, from one handed-out block's place. */
static void *slot_user(amm_manager *m, amm_pool *pool, const void *known, size_t idx)
{
    amm_pool_info pi = info_of(m, pool);
    uintptr_t front = ((uintptr_t)known - (uintptr_t)pi.base) % pi.stride;
    return (void *)((uintptr_t)pi.base + idx * pi.stride + front);
}

static size_t slot_index(amm_manager *m, amm_pool *pool, const void *p)
{
    amm_pool_info pi = info_of(m, pool);
    return ((uintptr_t)p - (uintptr_t)pi.base) / pi.stride;
}

TEST(never_allocated_slot_refused)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *pool = amm_pool_create(m, 32, 4, 16);
    void *p, *other;
    ASSERT_NOT_NULL(pool);
    p = amm_pool_alloc_at(m, pool, 32, 0, __FILE__, __LINE__);
    ASSERT_NOT_NULL(p);
    other = slot_user(m, pool, p, (slot_index(m, pool, p) + 1) % 4); /* a slot nobody got */
    EXPECT_EQ(amm_free(m, other), -1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_INVALID_POINTER);
    EXPECT_EQ(amm_retain(m, other), 0u);
    EXPECT_NULL(amm_realloc(m, other, 8, 0));
    EXPECT_EQ(amm_owns(m, other), 0);
    EXPECT_FAULTS(&f, 3);
    EXPECT_EQ(info_of(m, pool).used, 1);
    EXPECT_EQ(info_of(m, pool).free, 3);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(pointers_between_and_after_slots)
{
    h_faults f;
    amm_manager *m = h_new_manager(NOQ, &f);
    amm_pool *pool = amm_pool_create(m, 40, 3, 16);
    amm_pool_info pi;
    unsigned char *p;
    ASSERT_NOT_NULL(pool);
    p = (unsigned char *)amm_pool_alloc_at(m, pool, 40, 0, __FILE__, __LINE__);
    ASSERT_NOT_NULL(p);
    pi = info_of(m, pool);
    /* the slot's own front canary, its first byte, and past the last slot */
    EXPECT_EQ(amm_free(m, (void *)((uintptr_t)p - 1)), -1);
    EXPECT_EQ(f.last.kind, AMM_ERR_INTERIOR_POINTER);
    EXPECT_EQ(amm_free(m, (void *)((uintptr_t)pi.base + slot_index(m, pool, p) * pi.stride)), -1);
    EXPECT_EQ(f.last.kind, AMM_ERR_INTERIOR_POINTER);
    if (pi.slab_bytes > pi.stride * pi.block_count) {
        EXPECT_EQ(amm_free(m, (void *)((uintptr_t)pi.base + pi.stride * pi.block_count)), -1);
        EXPECT_TRUE(f.last.kind == AMM_ERR_INTERIOR_POINTER || f.last.kind == AMM_ERR_INVALID_POINTER);
        EXPECT_FAULTS(&f, 3);
    } else {
        EXPECT_FAULTS(&f, 2);
    }
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}
