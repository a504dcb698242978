/*
 * large.c - blocks of at least large_threshold bytes get a mapping of their own.
 *
 *   base (mapping)          user                        user+size        base+bytes
 *    |<- padding + front canary ->|<------ user bytes ------>|<-- back canary -->|
 *
 * The front guard runs from the mapping base to user (alignment padding
 * included), the back guard from user+size to the end of the mapping (at
 * least the canary size; the rest of the last page).  Free is one munmap,
 * so pages go back to the system at once.  The range table points at the
 * record, so lookup is O(log r) without the hash.
 */
#include "hot.h"

amm__block *amm__large_alloc(amm_manager *m, size_t size, size_t align) {
    size_t page = amm__page_size();
    if (size > SIZE_MAX / 4) return NULL;
    /* base is aligned to max(align, page), so user = base + front is aligned
     * when front is a multiple of align. */
    size_t front = amm__align_up(m->front, align);
    size_t bytes = amm__align_up(front + size + m->canary, page);
    amm__block *b = amm__record_new(m);
    if (!b) return NULL;
    size_t mapped = 0;
    uint8_t *mem = amm__os_map_aligned(bytes, align > page ? align : page, &mapped);
    if (!mem || amm__range_add(m, (uintptr_t)mem, (uintptr_t)mem + mapped, AMM__RANGE_LARGE, b) != 0) {
        amm__os_unmap(mem, mapped);
        amm__record_free(m, b);
        return NULL;
    }
    b->raw = (uintptr_t)mem;
    b->raw_size = mapped;
    b->origin = AMM_ORIGIN_LARGE;
    m->reserved += mapped;
    AMM__TRACE(m, amm__trace_region(m, AMM_TOP_REGION_MAP, b->raw, mapped, AMM_ORIGIN_LARGE, 0));
    amm__block_set_live(m, b, b->raw + front, size, align);
    return b;
}

void amm__large_release(amm_manager *m, amm__block *b) {
    AMM__TRACE(m, amm__trace_region(m, AMM_TOP_REGION_UNMAP, b->raw, b->raw_size, AMM_ORIGIN_LARGE, 0));
    amm__range_del(m, b->raw);
    m->reserved -= b->raw_size;
    amm__os_unmap_shadowed((void *)b->raw, b->raw_size, b->raw_size);
    amm__record_free(m, b);
}

int amm__large_resize(amm_manager *m, amm__block *b, size_t new_size) {
    if (new_size > SIZE_MAX / 2) return -1;
    if (b->user + new_size + m->canary > b->raw + b->raw_size) return -1;
    /* shrinking far below the threshold keeps the mapping: the caller may move it instead */
    return new_size * 2 < m->cfg.large_threshold ? -1 : 0;
}
