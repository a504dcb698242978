/*
 * test_seed_api.c - the seed's API (<amm/mem_manager.h>) keeps the seed's
 * semantics on top of amm: pools first, refcounts, a shared block not freed
 * by deallocate_memory, realloc keeping content/alignment/count, copies,
 * allocate_from_pool returning NULL quietly, printing to stdout.
 * (Without AMM_TRACK_SITES: these are the real functions, not the macros.)
 */
#include "../harness.h"

#include <amm/mem_manager.h>

static MemoryManager *new_seed_manager(h_faults *f)
{
    MemoryManager *m;
    unsetenv("AMM_OPTIONS");
    m = create_memory_manager();
    if (m) {
        h_faults_clear(f);
        amm_set_error_handler(m, h_fault_recorder, f);
    }
    return m;
}

static unsigned refs(MemoryManager *m, const void *p)
{
    amm_block_info info;
    return h_block_info(m, p, &info) && info.state == AMM_BLOCK_LIVE ? info.refcount : 0;
}

TEST(seed_example_semantics)
{
    h_faults f;
    MemoryManager *m = new_seed_manager(&f);
    int *arr, *grown, *copy;
    amm_block_info info;
    ASSERT_NOT_NULL(m);
    create_memory_pool(m, 32, 10, 8);
    create_memory_pool(m, 64, 5, 16);
    EXPECT_EQ(amm_pool_count(m), 2);

    arr = (int *)allocate_memory(m, 10 * sizeof(int), 16);
    ASSERT_NOT_NULL(arr);
    ASSERT_TRUE(h_block_info(m, arr, &info));
    EXPECT_EQ(info.origin, AMM_ORIGIN_POOL);         /* 40 bytes: the 64-byte pool */
    EXPECT_TRUE(h_is_aligned(arr, 16));
    for (int i = 0; i < 10; i++)
        arr[i] = i * i;

    increment_ref_count(m, arr);
    EXPECT_EQ(refs(m, arr), 2u);
    deallocate_memory(m, arr);                       /* shared: refused, reported */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_SHARED_FREE);
    EXPECT_EQ(amm_owns(m, arr), 1);

    grown = (int *)reallocate_memory(m, arr, 20 * sizeof(int), 16);
    ASSERT_NOT_NULL(grown);
    EXPECT_TRUE(h_is_aligned(grown, 16));
    EXPECT_EQ(refs(m, grown), 2u);
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(grown[i], i * i);

    copy = (int *)copy_memory(m, grown, 10 * sizeof(int));
    ASSERT_NOT_NULL(copy);
    EXPECT_EQ(memcmp(copy, grown, 10 * sizeof(int)), 0);
    EXPECT_EQ(refs(m, copy), 1u);

    decrement_ref_count(m, grown);
    EXPECT_EQ(amm_owns(m, grown), 1);
    decrement_ref_count(m, grown);
    EXPECT_EQ(amm_owns(m, grown), 0);
    decrement_ref_count(m, copy);
    EXPECT_EQ(amm_owns(m, copy), 0);
    EXPECT_FAULTS(&f, 1);
    EXPECT_HEALTHY(m);
    free_memory_manager(m);
}

TEST(allocate_from_pool_is_quiet)
{
    h_faults f;
    MemoryManager *m = new_seed_manager(&f);
    void *p, *slots[3];
    ASSERT_NOT_NULL(m);
    EXPECT_NULL(allocate_from_pool(m, 16, 0));       /* no pool yet */
    create_memory_pool(m, 32, 2, 16);
    EXPECT_NULL(allocate_from_pool(m, 33, 0));       /* too big for any slot */
    EXPECT_NULL(allocate_from_pool(m, 16, 64));      /* alignment does not fit */
    for (int i = 0; i < 3; i++)
        slots[i] = allocate_from_pool(m, 16, 0);
    EXPECT_NOT_NULL(slots[0]);
    EXPECT_NOT_NULL(slots[1]);
    EXPECT_NULL(slots[2]);                           /* full */
    EXPECT_FAULTS(&f, 0);
    p = allocate_memory(m, 16, 0);                   /* pools full: the heap */
    ASSERT_NOT_NULL(p);
    deallocate_memory(m, p);
    deallocate_memory(m, slots[0]);
    deallocate_memory(m, slots[1]);
    deallocate_memory(m, NULL);
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    free_memory_manager(m);
}

TEST(bad_calls_are_reported_not_fatal)
{
    h_faults f;
    MemoryManager *m = new_seed_manager(&f);
    int local = 7;
    ASSERT_NOT_NULL(m);
    EXPECT_NULL(allocate_memory(m, 10, 3));          /* bad alignment */
    EXPECT_EQ(f.last.kind, AMM_ERR_BAD_ALIGNMENT);
    deallocate_memory(m, &local);
    EXPECT_EQ(f.last.kind, AMM_ERR_INVALID_POINTER);
    increment_ref_count(m, &local);
    decrement_ref_count(m, &local);
    EXPECT_NULL(reallocate_memory(m, &local, 10, 0));
    create_memory_pool(m, 32, 4, 24);                /* bad alignment: no pool */
    EXPECT_EQ(amm_pool_count(m), 0);
    EXPECT_EQ(f.count, 6);
    EXPECT_EQ(local, 7);
    EXPECT_HEALTHY(m);
    free_memory_manager(m);
}

TEST(print_and_defragment_write_to_stdout)
{
    h_faults f;
    MemoryManager *m = new_seed_manager(&f);
    h_capture cap;
    char out[8192];
    void *p;
    ASSERT_NOT_NULL(m);
    create_memory_pool(m, 32, 3, 16);
    p = allocate_memory(m, 4321, 0);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(h_capture_begin_fd(&cap, STDOUT_FILENO), 0);
    print_memory_blocks(m);
    h_capture_end(&cap, out, sizeof out);
    EXPECT_CONTAINS(out, "4321");
    EXPECT_CONTAINS(out, "pool");
    EXPECT_CONTAINS(out, "fragmentation");
    deallocate_memory(m, p);
    ASSERT_EQ(h_capture_begin_fd(&cap, STDOUT_FILENO), 0);
    defragment_memory(m);
    h_capture_end(&cap, out, sizeof out);
    EXPECT_CONTAINS(out, "->");                      /* before -> after figures */
    EXPECT_FAULTS(&f, 0);
    EXPECT_HEALTHY(m);
    free_memory_manager(m);
}
