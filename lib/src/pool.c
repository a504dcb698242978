/*
 * pool.c - fixed-size pools: one slab of equal slots per pool.
 *
 *   base                                                         base + count*stride
 *    | slot 0                      | slot 1                      | ...
 *    |<-front->|<-block_size->|back|<-front->|<-block_size->|back|
 *              ^ user = base + i*stride + front, aligned to the pool alignment
 *
 * front = canary rounded up to the alignment, stride = front + block_size +
 * canary rounded up to the alignment.  A free slot is canary from end to end,
 * so a write into it is caught by amm_check (in a slab over 16 MiB, a slot
 * never used is left untouched, so creating a big pool costs no page of it);
 * a live slot's bytes after
 * user+size are canary too (byte-exact, even for a request smaller than the
 * slot).  The slot of an address is (addr - base) / stride, exact: a pointer's
 * pool is decided by its address, never by its size.  Each slot has an
 * out-of-band record whose state (free, live, quarantined) catches double
 * frees; free slots sit on a stack of indexes.  Alloc and free are O(1)
 * plus the canary writes of one slot.
 */
#include <string.h>

#include "hot.h"

static void pool_unmap(amm_pool *p) {
    amm__os_unmap_shadowed((void *)p->base, p->slab_bytes, p->shadowed);
    amm__os_unmap(p->slots, amm__align_up(p->count * sizeof(amm__block), amm__page_size()));
    amm__os_unmap(p->free_stack, amm__align_up(p->count * sizeof(uint32_t), amm__page_size()));
    amm__os_unmap(p, sizeof *p);
}

/* In the by-size order: the first pool whose block_size is > size. */
static size_t rank_first_above(const amm_manager *m, size_t size) {
    return amm__first_above(m->pool_rank, m->pool_count, sizeof(amm__pool_rank), size);
}

/* ... the first pool whose block_size is >= size (the smallest that fits it). */
static size_t rank_first_fitting(const amm_manager *m, size_t size) {
    return size ? rank_first_above(m, size - 1) : 0;
}

/* Builds the pool; returns NULL if memory is refused.  Arguments are valid. */
amm_pool *amm__pool_new(amm_manager *m, size_t block_size, size_t count, size_t align) {
    size_t page = amm__page_size();
    size_t front = amm__align_up(m->canary, align);
    if (block_size > SIZE_MAX / 4 || count > UINT32_MAX) return NULL;
    size_t stride = amm__align_up(front + block_size + m->canary, align);
    if (stride == 0) stride = align;
    if (count > (SIZE_MAX / 2) / stride) return NULL;
    void *arr = m->pools;
    if (amm__array_reserve(&arr, &m->pool_cap, m->pool_count + 1, sizeof(amm_pool *)) != 0) return NULL;
    m->pools = arr;
    arr = m->pool_rank;
    if (amm__array_reserve(&arr, &m->pool_rank_cap, m->pool_count + 1, sizeof(amm__pool_rank)) != 0) return NULL;
    m->pool_rank = arr;
    amm_pool *p = amm__os_map(sizeof *p);
    if (!p) return NULL;
    p->m = m;
    p->block_size = block_size;
    p->stride = stride;
    p->front = front;
    p->count = count;
    p->align_log2 = (uint8_t)amm__log2(align);
    p->slab_bytes = amm__align_up(stride * count, page);
    size_t mapped = 0;
    p->base = (uintptr_t)amm__os_map_aligned(p->slab_bytes, align > page ? align : page, &mapped);
    p->slots = amm__os_map(amm__align_up(count * sizeof(amm__block), page));
    p->free_stack = amm__os_map(amm__align_up(count * sizeof(uint32_t), page));
    if (!p->base || !p->slots || !p->free_stack ||
        amm__range_add(m, p->base, p->base + p->slab_bytes, AMM__RANGE_POOL, p) != 0) {
        pool_unmap(p);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        amm__block *s = &p->slots[i];
        s->raw = p->base + i * stride;
        s->raw_size = stride;
        s->origin = AMM_ORIGIN_POOL;
        s->state = AMM_BLOCK_FREE;
        s->pool = p;
        p->free_stack[i] = (uint32_t)(count - 1 - i); /* slot 0 is handed out first */
    }
    p->free_top = count;
    if (p->slab_bytes <= AMM__SAN_EAGER_BYTES) { /* small slabs: every slot guarded from the start */
        amm__canary_fill(m, p->base, p->base + stride * count);
        amm__san_freed(p->base, p->slab_bytes);
        p->prefilled = 1;
        p->shadowed = p->slab_bytes;
    }
    uintptr_t lo = m->pool_span && m->pool_lo < p->base ? m->pool_lo : p->base;
    uintptr_t hi = m->pool_span && m->pool_lo + m->pool_span > p->base + p->slab_bytes ? m->pool_lo + m->pool_span
                                                                                         : p->base + p->slab_bytes;
    m->pool_lo = lo;
    m->pool_span = hi - lo;
    if (block_size > m->pool_max_block) m->pool_max_block = block_size;
    p->id = m->pool_count;
    size_t at = rank_first_above(m, block_size); /* after the pools of its size: creation order among equals */
    memmove(&m->pool_rank[at + 1], &m->pool_rank[at], (m->pool_count - at) * sizeof(amm__pool_rank));
    m->pool_rank[at] = (amm__pool_rank){block_size, p};
    m->pools[m->pool_count++] = p;
    m->reserved += p->slab_bytes;
    m->pool_slots += count;
    AMM__TRACE(m, amm__trace_region(m, AMM_TOP_REGION_MAP, p->base, p->slab_bytes, AMM_ORIGIN_POOL, p->id));
    AMM__TRACE(m, amm__trace_pool(m, p));
    amm__tcache_flush_all(m); /* a pool has first pick of the sizes it fits: each cache learns them at its refill */
    return p;
}

amm__block *amm__pool_alloc_any(amm_manager *m, size_t size, size_t align, int evict) {
    /* The smallest fitting pool with a free slot; only when none has one, and
     * the caller has nowhere else to go (evict), the smallest fitting pool
     * whose slots sit in quarantine takes one back.  A general allocation
     * falls back to the heap instead, so quarantine keeps its promise: a
     * freed address is not handed out again while another fits elsewhere.
     * The by-size order makes it a binary search and a walk up from the
     * smallest fitting pool, which usually has a free slot (with 20 pools, a
     * scan of all of them was half of every alloc). */
    amm_pool *held = NULL;
    for (size_t i = rank_first_fitting(m, size); i < m->pool_count; i++) {
        amm_pool *p = m->pool_rank[i].pool;
        if (align > ((size_t)1 << p->align_log2)) continue;
        if (p->free_top) return amm__pool_alloc(m, p, size, align);
        if ((p->quarantined || p->tc_held) && !held) held = p; /* slots in quarantine or thread caches */
    }
    return evict && held ? amm__pool_alloc(m, held, size, align) : NULL;
}

void amm__pool_refill(amm_manager *m, amm__block *b) {
    amm__san_open(b->raw, b->raw_size);
    amm__canary_fill(m, b->user, b->user + b->size);
}

int amm__pool_resize(amm_manager *m, amm__block *b, size_t new_size) {
    (void)m;
    return new_size <= b->pool->block_size ? 0 : -1;
}

void amm__pool_destroy_all(amm_manager *m) {
    for (size_t i = 0; i < m->pool_count; i++) {
        amm_pool *p = m->pools[i];
        AMM__TRACE(m, amm__trace_region(m, AMM_TOP_REGION_UNMAP, p->base, p->slab_bytes, AMM_ORIGIN_POOL, p->id));
        amm__range_del(m, p->base);
        m->reserved -= p->slab_bytes;
        pool_unmap(p);
    }
    amm__array_free(m->pools, m->pool_cap, sizeof(amm_pool *));
    amm__array_free(m->pool_rank, m->pool_rank_cap, sizeof(amm__pool_rank));
    m->pools = NULL;
    m->pool_rank = NULL;
    m->pool_rank_cap = 0;
    m->pool_count = m->pool_cap = 0;
    m->pool_lo = 0;
    m->pool_span = 0;
    m->pool_max_block = 0;
}

size_t amm__pool_check(amm_manager *m, amm_pool *p) {
    size_t used = 0, quarantined = 0, free_slots = 0, problems = 0;
    for (size_t i = 0; i < p->count; i++) {
        const amm__block *s = &p->slots[i];
        if (s->state == AMM_BLOCK_LIVE) used++;
        else if (s->state == AMM_BLOCK_QUARANTINED) quarantined++;
        else free_slots++;
    }
    int ok = used == p->used && quarantined == p->quarantined && free_slots == p->free_top &&
             used + quarantined + free_slots == p->count;
    for (size_t i = 0; ok && i < p->free_top; i++) {
        ok = p->free_stack[i] < p->count && p->slots[p->free_stack[i]].state == AMM_BLOCK_FREE;
    }
    if (!ok) {
        amm__fault(m, AMM_ERR_CORRUPTION, (void *)p->base, NULL, "check", "pool slot states disagree with its counts",
                   0, 0, NULL, 0);
        problems++;
    }
    return problems;
}

size_t amm__pool_rank_check(amm_manager *m) {
    int ok = 1;
    for (size_t i = 0; ok && i < m->pool_count; i++) {
        const amm__pool_rank *r = &m->pool_rank[i];
        ok = r->pool && r->block_size == r->pool->block_size &&
             (i == 0 || (m->pool_rank[i - 1].block_size < r->block_size ||
                         (m->pool_rank[i - 1].block_size == r->block_size && m->pool_rank[i - 1].pool->id < r->pool->id)));
        ok = ok && r->pool->id < m->pool_count && m->pools[r->pool->id] == r->pool;
    }
    if (ok) return 0;
    amm__fault(m, AMM_ERR_CORRUPTION, NULL, NULL, "check", "the pools' by-size order is broken", 0, 0, NULL, 0);
    return 1;
}
