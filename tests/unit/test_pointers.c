/*
 * test_pointers.c - pointers amm did not hand out, or no longer owns: double
 * free, interior (also in canaries), stack, foreign (malloc, another
 * manager), wild, NULL, freed-then-freed, copy sources, and a NULL manager.
 * Each is refused with the right kind and nothing is written through it; the
 * block it was near stays intact and usable.
 */
#include "../harness.h"

static long wild_static = 42;

/* p + delta computed on addresses, so no out-of-object pointer arithmetic. */
static void *offset_ptr(const void *p, long long delta)
{
    return (void *)((uintptr_t)p + (uintptr_t)delta);
}

/* The operations that take a pointer, each expected to refuse `bad`. */
static void expect_all_refused(amm_manager *m, h_faults *f, void *bad, amm_error_kind kind)
{
    size_t before = f->count;
    EXPECT_EQ(amm_free(m, bad), -1);
    EXPECT_EQ(f->count, before + 1);
    EXPECT_EQ(f->last.kind, kind);
    EXPECT_EQ(f->last.ptr, bad);
    EXPECT_NULL(amm_realloc(m, bad, 64, 0));
    EXPECT_EQ(f->count, before + 2);
    EXPECT_EQ(f->last.kind, kind);
    EXPECT_EQ(amm_retain(m, bad), 0u);
    EXPECT_EQ(f->count, before + 3);
    EXPECT_EQ(f->last.kind, kind);
    EXPECT_EQ(amm_release(m, bad), (unsigned)-1);
    EXPECT_EQ(f->count, before + 4);
    EXPECT_EQ(f->last.kind, kind);
    EXPECT_EQ(amm_size(m, bad), 0);
    EXPECT_EQ(f->count, before + 5);
    EXPECT_EQ(amm_owns(m, bad), 0);         /* asks, never reports */
    EXPECT_EQ(f->count, before + 5);
    EXPECT_EQ(amm_set_movable(m, bad, 1), -1);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(amm_fault_count(m), f->count);
}

TEST(null_is_a_no_op)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    EXPECT_EQ(amm_free(m, NULL), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_EQ(amm_owns(m, NULL), 0);
    EXPECT_EQ(wild_static, 42);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(stack_pointer)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    long local[4] = {1, 2, 3, 4};
    void *keep = amm_alloc(m, 32, 0);
    ASSERT_NOT_NULL(keep);
    expect_all_refused(m, &f, local, AMM_ERR_INVALID_POINTER);
    EXPECT_EQ(local[0] + local[1] + local[2] + local[3], 10); /* nothing written */
    EXPECT_EQ(amm_free(m, keep), 0);
    amm_destroy(m);
}

TEST(foreign_malloc_pointer)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *foreign = (unsigned char *)malloc(64);
    ASSERT_NOT_NULL(foreign);
    h_fill(foreign, 64, 9);
    expect_all_refused(m, &f, foreign, AMM_ERR_INVALID_POINTER);
    EXPECT_EQ(h_verify(foreign, 64, 9), -1);
    free(foreign);
    amm_destroy(m);
}

TEST(wild_pointers)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    void *keep = amm_alloc(m, 32, 0);
    ASSERT_NOT_NULL(keep);
    expect_all_refused(m, &f, (void *)(uintptr_t)16, AMM_ERR_INVALID_POINTER);
    expect_all_refused(m, &f, (void *)(UINTPTR_MAX & ~(uintptr_t)15), AMM_ERR_INVALID_POINTER);
    expect_all_refused(m, &f, (void *)&wild_static, AMM_ERR_INVALID_POINTER);
    EXPECT_EQ(amm_free(m, keep), 0);
    amm_destroy(m);
}

TEST(pointer_of_another_manager)
{
    h_faults f1, f2;
    amm_manager *m1 = h_new_manager("", &f1);
    amm_manager *m2 = h_new_manager("", &f2);
    unsigned char *p = (unsigned char *)amm_alloc(m1, 48, 0);
    ASSERT_NOT_NULL(p);
    h_fill(p, 48, 2);
    expect_all_refused(m2, &f2, p, AMM_ERR_INVALID_POINTER);
    EXPECT_FAULTS(&f1, 0);
    EXPECT_EQ(h_verify(p, 48, 2), -1);
    EXPECT_EQ(amm_owns(m1, p), 1);
    EXPECT_EQ(amm_free(m1, p), 0);
    EXPECT_HEALTHY(m1);
    amm_destroy(m1);
    amm_destroy(m2);
}

TEST(interior_pointers)
{
    static const long long offsets[] = {1, 8, 15, 16, 63};
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 64, 0);
    ASSERT_NOT_NULL(p);
    h_fill(p, 64, 3);
    for (unsigned i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        expect_all_refused(m, &f, offset_ptr(p, offsets[i]), AMM_ERR_INTERIOR_POINTER);
        EXPECT_EQ(f.last.block, p);
    }
    EXPECT_EQ(h_verify(p, 64, 3), -1);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(pointers_into_canaries)
{
    /* just past the end (p + size) and into the front canary: inside the
     * block's chunk, so the report names the block */
    static const long long offsets[] = {64, 65, -1, -8, -16};
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 64, 0);
    ASSERT_NOT_NULL(p);
    for (unsigned i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        expect_all_refused(m, &f, offset_ptr(p, offsets[i]), AMM_ERR_INTERIOR_POINTER);
        EXPECT_EQ(f.last.block, p);
        if (atomic_load(&h_st.failures))
            printf("    for p%+lld\n", offsets[i]);
    }
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(interior_pointers_large_and_pool)
{
    h_faults f;
    amm_manager *m = h_new_manager("large_threshold=4096", &f);
    amm_pool *pool = amm_pool_create(m, 64, 4, 16);
    unsigned char *big = (unsigned char *)amm_alloc(m, 10000, 0);
    unsigned char *slot;
    ASSERT_NOT_NULL(pool);
    ASSERT_NOT_NULL(big);
    slot = (unsigned char *)amm_alloc(m, 64, 0);
    ASSERT_NOT_NULL(slot);
    expect_all_refused(m, &f, big + 5000, AMM_ERR_INTERIOR_POINTER);
    expect_all_refused(m, &f, big + 1, AMM_ERR_INTERIOR_POINTER);
    expect_all_refused(m, &f, slot + 8, AMM_ERR_INTERIOR_POINTER);
    EXPECT_EQ(amm_free(m, big), 0);
    EXPECT_EQ(amm_free(m, slot), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(double_free_in_quarantine)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M", &f);
    void *p = amm_alloc(m, 40, 0);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_EQ(amm_free(m, p), -1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(f.last.block, p);
    EXPECT_EQ(f.last.block_size, 40);
    EXPECT_EQ(amm_free(m, p), -1);          /* and again */
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_NULL(amm_realloc(m, p, 80, 0));
    EXPECT_EQ(f.last.kind, AMM_ERR_DOUBLE_FREE);
    EXPECT_EQ(amm_retain(m, p), 0u);
    EXPECT_EQ(amm_release(m, p), (unsigned)-1);
    EXPECT_FAULTS(&f, 5);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(double_free_after_quarantine)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    void *p = amm_alloc(m, 40, 0), *keep = amm_alloc(m, 40, 0);
    ASSERT_NOT_NULL(p);
    ASSERT_NOT_NULL(keep);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_EQ(amm_free(m, p), -1);          /* its chunk is free space now */
    EXPECT_FAULTS(&f, 1);
    EXPECT_TRUE(f.last.kind == AMM_ERR_DOUBLE_FREE || f.last.kind == AMM_ERR_INVALID_POINTER ||
                f.last.kind == AMM_ERR_INTERIOR_POINTER);
    EXPECT_EQ(amm_owns(m, keep), 1);
    EXPECT_EQ(amm_free(m, keep), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(freed_then_reused_address)
{
    /* once the address is handed out again, freeing it frees the new block */
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    void *p = amm_alloc(m, 40, 0), *q;
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_free(m, p), 0);
    q = amm_alloc(m, 40, 0);
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(amm_owns(m, q), 1);
    EXPECT_EQ(amm_free(m, q), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(copy_checks_its_source)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 32, 0), *c;
    unsigned char local[20];
    ASSERT_NOT_NULL(p);
    h_fill(p, 32, 4);
    EXPECT_NULL(amm_copy(m, p, 33));        /* reading past the block: refused */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_OVERFLOW);
    c = (unsigned char *)amm_copy(m, p, 32);
    ASSERT_NOT_NULL(c);
    EXPECT_EQ(h_verify(c, 32, 4), -1);
    h_fill(local, sizeof local, 5);
    EXPECT_EQ(amm_free(m, c), 0);
    c = (unsigned char *)amm_copy(m, local, sizeof local); /* a foreign source is copied as given */
    ASSERT_NOT_NULL(c);
    EXPECT_EQ(h_verify(c, sizeof local, 5), -1);
    EXPECT_EQ(amm_free(m, c), 0);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(&f, 1);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(many_bad_pointers_leave_nothing_behind)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    amm_stats before, after;
    unsigned char *p = (unsigned char *)amm_alloc(m, 100, 0);
    ASSERT_NOT_NULL(p);
    amm_get_stats(m, &before);
    for (int i = -64; i < 200; i++)
        if (i != 0)
            EXPECT_EQ(amm_free(m, offset_ptr(p, i)), -1);
    amm_get_stats(m, &after);
    EXPECT_EQ(after.live_blocks, before.live_blocks);
    EXPECT_EQ(after.live_bytes, before.live_bytes);
    EXPECT_EQ(after.total_frees, before.total_frees);
    EXPECT_EQ(after.faults, before.faults + 263);
    EXPECT_EQ(f.count, 263);
    EXPECT_HEALTHY(m);
    EXPECT_EQ(amm_free(m, p), 0);
    amm_destroy(m);
}

TEST(copy_of_a_freed_block)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M", &f);
    void *p = amm_alloc(m, 40, 0);
    char line[512];
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_NULL(amm_copy(m, p, 40));        /* reading a freed block: refused */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_STREQ(f.last.operation, "copy");
    amm_report_format(&f.last, line, sizeof line);
    /* plain words: nothing was written, so the line must not say so */
    EXPECT_TRUE(strstr(line, "0 bytes written") == NULL);
    if (strstr(line, "0 bytes written"))
        printf("    line: %s\n", line);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(null_manager_is_refused)
{
    long x = 5;
    amm_stats st;
    amm_pool_info pi;
    h_capture cap;
    char out[4096];
    ASSERT_EQ(h_capture_begin(&cap), 0);    /* the default handler's lines */
    EXPECT_NULL(amm_alloc(NULL, 10, 0));
    EXPECT_EQ(amm_free(NULL, &x), -1);
    EXPECT_NULL(amm_realloc(NULL, &x, 10, 0));
    EXPECT_NULL(amm_copy(NULL, &x, sizeof x));
    EXPECT_EQ(amm_retain(NULL, &x), 0u);
    EXPECT_EQ(amm_release(NULL, &x), (unsigned)-1);
    EXPECT_EQ(amm_size(NULL, &x), 0);
    EXPECT_EQ(amm_owns(NULL, &x), 0);
    EXPECT_EQ(amm_set_movable(NULL, &x, 1), -1);
    EXPECT_NULL(amm_pool_create(NULL, 8, 8, 0));
    EXPECT_EQ(amm_pool_info_get(NULL, NULL, &pi), -1);
    EXPECT_EQ(amm_walk(NULL, NULL, NULL), 0);
    EXPECT_EQ(amm_check_fast(NULL), 0);
    EXPECT_NE(amm_check(NULL), 0);          /* a NULL manager is not healthy */
    memset(&st, 0x55, sizeof st);
    amm_get_stats(NULL, &st);
    EXPECT_EQ(st.live_blocks, 0);
    amm_defragment(NULL, AMM_DEFRAG_ALL, NULL);
    amm_destroy(NULL);
    h_capture_end(&cap, out, sizeof out);
    EXPECT_EQ(x, 5);
    EXPECT_CONTAINS(out, "amm: ");
    EXPECT_CONTAINS(out, "NULL manager");
}

TEST(copy_sources)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 64, 0), *c, *gone;
    ASSERT_NOT_NULL(p);
    h_fill(p, 64, 11);
    c = (unsigned char *)amm_copy(m, p + 8, 56); /* inside the block, to its end */
    ASSERT_NOT_NULL(c);
    EXPECT_EQ(memcmp(c, p + 8, 56), 0);
    EXPECT_EQ(amm_free(m, c), 0);
    EXPECT_NULL(amm_copy(m, p + 8, 60));     /* 4 bytes too many */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_OVERFLOW);
    EXPECT_EQ(f.last.bytes, 4);
    EXPECT_NULL(amm_copy(m, NULL, 10));      /* NULL with a size */
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_INVALID_POINTER);
    gone = (unsigned char *)amm_alloc(m, 64, 0);
    ASSERT_NOT_NULL(gone);
    EXPECT_EQ(amm_free(m, gone), 0);         /* its chunk is free space now */
    EXPECT_NULL(amm_copy(m, gone, 8));
    EXPECT_FAULTS(&f, 3);
    EXPECT_TRUE(f.last.kind == AMM_ERR_INVALID_POINTER || f.last.kind == AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}
