/*
 * seed.c - the seed's functions (mem_manager.h) as calls into the amm API.
 * No second implementation: each is one call plus, where the seed printed,
 * the printing.
 */
#include <stdio.h>

#include "amm/mem_manager.h"
#include "internal.h"

/* The header may map these names to macros; the functions keep the exact names. */
#undef allocate_memory
#undef reallocate_memory
#undef copy_memory
#undef allocate_from_pool
#undef deallocate_memory
#undef increment_ref_count
#undef decrement_ref_count

MemoryManager *create_memory_manager(void) { return amm_create(NULL); }

void *allocate_memory(MemoryManager *manager, size_t size, size_t alignment) {
    return amm_alloc_at(manager, size, alignment, 0u, NULL, 0);
}

void increment_ref_count(MemoryManager *manager, void *ptr) { (void)amm_retain_at(manager, ptr, NULL, 0); }

void decrement_ref_count(MemoryManager *manager, void *ptr) { (void)amm_release_at(manager, ptr, NULL, 0); }

void deallocate_memory(MemoryManager *manager, void *ptr) { (void)amm_free_at(manager, ptr, NULL, 0); }

void *reallocate_memory(MemoryManager *manager, void *ptr, size_t new_size, size_t alignment) {
    return amm_realloc_at(manager, ptr, new_size, alignment, NULL, 0);
}

void *copy_memory(MemoryManager *manager, void *src, size_t size) { return amm_copy_at(manager, src, size, NULL, 0); }

void free_memory_manager(MemoryManager *manager) { amm_destroy(manager); }

void print_memory_blocks(MemoryManager *manager) {
    amm_print(manager, stdout);
    fflush(stdout);
}

void defragment_memory(MemoryManager *manager) {
    amm_defrag_report r;
    if (!manager) return;
    amm_defragment(manager, AMM_DEFRAG_ALL, &r);
    printf("defragment: external fragmentation %.1f%% -> %.1f%%, reserved %zu -> %zu bytes, "
           "%zu block%s moved (%zu bytes), %zu region%s released\n",
           r.before.external_frag * 100.0, r.after.external_frag * 100.0, r.before.reserved_bytes,
           r.after.reserved_bytes, r.blocks_moved, r.blocks_moved == 1 ? "" : "s", r.bytes_moved,
           r.regions_released, r.regions_released == 1 ? "" : "s");
    fflush(stdout);
}

void create_memory_pool(MemoryManager *manager, size_t block_size, size_t block_count, size_t alignment) {
    (void)amm_pool_create(manager, block_size, block_count, alignment);
}

void *allocate_from_pool(MemoryManager *manager, size_t size, size_t alignment) {
    return amm_pool_alloc_at(manager, NULL, size, alignment, NULL, 0);
}
