/*
 * mem_manager.c - the seed's 13-step example, on amm, through the seed's own
 * API (<amm/mem_manager.h>) and nothing else.
 *
 *   1. create two memory pools (32-byte and 64-byte blocks)
 *   2. allocate an aligned array of 10 ints (it fits a 64-byte pool slot)
 *   3. share it: increment its reference count
 *   4. reallocate it to 20 ints (too big for the pools: it moves to the heap,
 *      keeping its contents, alignment and reference count)
 *   5. copy it into a new block
 *   6. print both arrays
 *   7. print the managed blocks
 *   8. decrement the array's count twice: the second frees it
 *   9. decrement the copy's count: freed
 *  10. print the blocks again (none live; the pools are empty)
 *  11. defragment
 *  12. print the blocks after defragmenting
 *  13. free the manager
 *
 * AMM_TRACK_SITES makes every allocation remember this file and line, so the
 * printed tables say where each block came from.
 */
#define AMM_TRACK_SITES
#include <amm/mem_manager.h>

#include <stdint.h>
#include <stdio.h>

#define FIRST_COUNT 10
#define SECOND_COUNT 20

static void step(int n, const char *what)
{
    printf("\nStep %d: %s\n", n, what);
}

static void print_array(const char *name, const int *a, size_t n)
{
    printf("%s:", name);
    for (size_t i = 0; i < n; i++)
        printf(" %d", a[i]);
    printf("\n");
}

/* Checks the values 0..n-1 are where they should be. */
static int holds_sequence(const int *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != (int)i)
            return 0;
    return 1;
}

int main(void)
{
    MemoryManager *manager = create_memory_manager();
    int *array, *grown, *copy;

    if (!manager) {
        fprintf(stderr, "mem_manager: could not create the memory manager\n");
        return 1;
    }

    step(1, "create two memory pools (10 blocks of 32 bytes aligned to 8, 5 blocks of 64 bytes aligned to 16)");
    create_memory_pool(manager, 32, 10, 8);
    create_memory_pool(manager, 64, 5, 16);

    step(2, "allocate an array of 10 ints aligned to 16 bytes");
    array = (int *)allocate_memory(manager, FIRST_COUNT * sizeof(int), 16);
    if (!array) {
        fprintf(stderr, "mem_manager: allocation failed\n");
        free_memory_manager(manager);
        return 1;
    }
    for (int i = 0; i < FIRST_COUNT; i++)
        array[i] = i;
    printf("allocated %zu bytes, 16-byte aligned: %s\n", FIRST_COUNT * sizeof(int),
           ((uintptr_t)array % 16 == 0) ? "yes" : "no");

    step(3, "increment the array's reference count (now shared by two owners)");
    increment_ref_count(manager, array);

    step(4, "reallocate the array to 20 ints, keeping the 16-byte alignment");
    grown = (int *)reallocate_memory(manager, array, SECOND_COUNT * sizeof(int), 16);
    if (!grown) {
        fprintf(stderr, "mem_manager: reallocation failed\n");
        free_memory_manager(manager);
        return 1;
    }
    array = grown;
    for (int i = FIRST_COUNT; i < SECOND_COUNT; i++)
        array[i] = i;
    printf("first %d values kept: %s; 16-byte aligned: %s\n", FIRST_COUNT,
           holds_sequence(array, FIRST_COUNT) ? "yes" : "no", ((uintptr_t)array % 16 == 0) ? "yes" : "no");

    step(5, "copy the reallocated array into a new block");
    copy = (int *)copy_memory(manager, array, SECOND_COUNT * sizeof(int));
    if (!copy) {
        fprintf(stderr, "mem_manager: copy failed\n");
        free_memory_manager(manager);
        return 1;
    }

    step(6, "print the reallocated and the copied arrays");
    print_array("reallocated", array, SECOND_COUNT);
    print_array("copied     ", copy, SECOND_COUNT);

    step(7, "print the managed memory blocks");
    print_memory_blocks(manager);

    step(8, "decrement the reallocated array's reference count twice (the second frees it)");
    decrement_ref_count(manager, array);
    decrement_ref_count(manager, array);

    step(9, "decrement the copied array's reference count (frees it)");
    decrement_ref_count(manager, copy);

    step(10, "print the memory blocks after deallocation");
    print_memory_blocks(manager);

    step(11, "defragment memory");
    defragment_memory(manager);

    step(12, "print the memory blocks after defragmentation");
    print_memory_blocks(manager);

    step(13, "free the memory manager");
    free_memory_manager(manager);
    printf("done\n");
    return 0;
}
