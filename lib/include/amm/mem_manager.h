/*
 * mem_manager.h - the seed's API (AdvancedMemoryManager), exact names and
 * signatures, as a thin layer over <amm/amm.h>.  The seed's limitations are
 * gone: blocks keep their raw and aligned pointers, pools are found by
 * address, realloc keeps alignment, and defragment_memory really coalesces,
 * compacts movable blocks and returns memory to the system.
 *
 * Define AMM_TRACK_SITES before including this header to record the file and
 * line of every allocation (the calls then expand to the amm_*_at functions).
 * Thread safety, costs and failure reports are those of the amm_* function
 * each one calls.
 */
#ifndef AMM_MEM_MANAGER_H
#define AMM_MEM_MANAGER_H

#include <stddef.h>

#include "amm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct amm_manager MemoryManager; /* the central structure */
typedef struct amm_pool MemPool;          /* a pool of fixed-size blocks */
typedef struct amm_block_info MemBlock;   /* what is known of one block (see amm_walk) */

/* A manager with the default options and AMM_OPTIONS applied (amm_create(NULL)). */
MemoryManager *create_memory_manager(void);
/* amm_alloc: smallest fitting pool first, then the heap.  NULL on failure (reported). */
void *allocate_memory(MemoryManager *manager, size_t size, size_t alignment);
/* amm_retain. */
void increment_ref_count(MemoryManager *manager, void *ptr);
/* amm_release: at zero the block is freed. */
void decrement_ref_count(MemoryManager *manager, void *ptr);
/* amm_free: refused (reported) for a shared, foreign or already freed block. */
void deallocate_memory(MemoryManager *manager, void *ptr);
/* amm_realloc: keeps content, refcount and the given alignment (0: the block's). */
void *reallocate_memory(MemoryManager *manager, void *ptr, size_t new_size, size_t alignment);
/* amm_copy: a new block holding size bytes copied from src. */
void *copy_memory(MemoryManager *manager, void *src, size_t size);
/* amm_destroy: frees every block, pool and region, then the manager. */
void free_memory_manager(MemoryManager *manager);
/* amm_print to stdout: blocks, pools and fragmentation. */
void print_memory_blocks(MemoryManager *manager);
/* amm_defragment(AMM_DEFRAG_ALL) with the registered move callback; prints before/after to stdout. */
void defragment_memory(MemoryManager *manager);
/* amm_pool_create. */
void create_memory_pool(MemoryManager *manager, size_t block_size, size_t block_count, size_t alignment);
/* A slot from the smallest pool fitting size and alignment, or NULL (no report) if none has one. */
void *allocate_from_pool(MemoryManager *manager, size_t size, size_t alignment);

#ifdef AMM_TRACK_SITES
#define allocate_memory(m, size, align) amm_alloc_at((m), (size), (align), 0u, __FILE__, __LINE__)
#define reallocate_memory(m, ptr, size, align) amm_realloc_at((m), (ptr), (size), (align), __FILE__, __LINE__)
#define copy_memory(m, src, size) amm_copy_at((m), (src), (size), __FILE__, __LINE__)
#define allocate_from_pool(m, size, align) amm_pool_alloc_at((m), NULL, (size), (align), __FILE__, __LINE__)
#define deallocate_memory(m, ptr) ((void)amm_free_at((m), (ptr), __FILE__, __LINE__))
#define increment_ref_count(m, ptr) ((void)amm_retain_at((m), (ptr), __FILE__, __LINE__))
#define decrement_ref_count(m, ptr) ((void)amm_release_at((m), (ptr), __FILE__, __LINE__))
#endif

#ifdef __cplusplus
}
#endif
#endif /* AMM_MEM_MANAGER_H */
