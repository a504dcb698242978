/*
 * hot.h - the steps every alloc and free takes, inline, so that a call
 * through manager.c runs as one piece: its lookup, the record update, the
 * pool stack or reuse list, and the counters, with no call between them.
 * A pair of calls costs its bookkeeping; calls between files (which the
 * compiler cannot inline) were a third of it.
 *
 * Each function here is the only version of its step: the other files
 * (pool.c, heap.c, registry.c, guard.c, large.c, stats.c) use them as
 * manager.c does.  What is rare (a fault and its report, a quarantine
 * eviction, a merge, a guard longer than AMM__GUARD_INLINE, anything a
 * sanitizer must be told) stays out of line in its own file.  The lock must
 * be held, as for everything in internal.h.
 */
#ifndef AMM_HOT_H
#define AMM_HOT_H

#include <string.h>

#include "internal.h"
#include "sanitize.h"

#define AMM__HOT static inline __attribute__((always_inline))

/* ---- guards (guard.c has the general case, the reports and the sanitizers' view) ---- */

/* Guards up to this long, when no sanitizer watches, are written and checked
 * here, each a copy or compare against the pattern run from its phase:
 * pattern_run[(a & 7) + i] is the canary byte of address a + i.  In the
 * seeded 16-1024 B pairs of fast mode, where the only guard is a block's
 * slack, the guard work through guard.c was a third of a pair (98 ns; 66
 * with no guard at all); inline, a pair is 79-81 ns (checked: 225 -> 184). */
#define AMM__GUARD_INLINE ((size_t)240)
_Static_assert(AMM__GUARD_INLINE + 7 <= sizeof(((amm_manager *)0)->pattern_run),
               "an inline guard fits the pattern run");

/* The canary of the n <= AMM__GUARD_INLINE bytes at a, written.  (libc's
 * memcpy and memcmp: open-coded loops and word pairs for short spans
 * measured slower, their branches on the span's length mispredicted.) */
AMM__HOT void amm__canary_put(const amm_manager *m, uintptr_t a, size_t n) {
    memcpy((void *)a, m->pattern_run + (a & 7), n);
}

/* 1 if the n <= AMM__GUARD_INLINE bytes at a are their canary. */
AMM__HOT int amm__canary_ok(const amm_manager *m, uintptr_t a, size_t n) {
    return memcmp((const void *)a, m->pattern_run + (a & 7), n) == 0;
}

/* 1 when b's guards are short enough for the inline copy and compare. */
AMM__HOT int amm__guards_inline(size_t front, size_t back) {
    return front <= AMM__GUARD_INLINE && back <= AMM__GUARD_INLINE && !amm__san_on();
}

/* Writes both canaries of b (front: [raw, user), back: [user+size, raw+raw_size)). */
AMM__HOT void amm__guards_put(const amm_manager *m, const amm__block *b) {
    uintptr_t uend = b->user + b->size;
    size_t front = b->user - b->raw, back = b->raw + b->raw_size - uend;
    if (!(front | back)) return;
    if (!amm__guards_inline(front, back)) {
        amm__guard_write(m, b);
        return;
    }
    amm__canary_put(m, b->raw, front);
    amm__canary_put(m, uend, back);
}

/* Checks both canaries of b; a damaged one goes to amm__guard_check, which
 * reports and repairs it.  Returns the problems found. */
AMM__HOT size_t amm__guards_check(amm_manager *m, amm__block *b, const char *operation, const char *file, int line) {
    uintptr_t uend = b->user + b->size;
    size_t front = b->user - b->raw, back = b->raw + b->raw_size - uend;
    if (!(front | back)) return 0;
    if (amm__guards_inline(front, back) && amm__canary_ok(m, b->raw, front) && amm__canary_ok(m, uend, back))
        return 0;
    return amm__guard_check(m, b, operation, file, line);
}

/* ---- records ---- */

/* Makes b a LIVE block of size bytes at user: record, guards, fill, counters. */
AMM__HOT void amm__block_set_live(amm_manager *m, amm__block *b, uintptr_t user, size_t size, size_t align) {
    b->user = user;
    b->size = size;
    b->align_log2 = (uint8_t)amm__log2(align);
    b->state = AMM_BLOCK_LIVE;
    b->refcount = 1;
    b->serial = ++m->serial;
    b->flags = 0;
    b->file = NULL;
    b->line = 0;
    amm__san_alloc(user, size, 0);
    amm__guards_put(m, b);
    if (m->cfg.fill) memset((void *)user, AMM_FILL_NEW, size);
    m->live_blocks++;
    m->live_bytes += size;
    /* with thread caches the manager's own count is off either way (even below
     * zero) until every cache's is added in: the peak is taken there (tcache.c) */
    if ((ptrdiff_t)m->live_bytes > (ptrdiff_t)m->peak_live_bytes && !m->tc_head) m->peak_live_bytes = m->live_bytes;
    m->total_allocs++;
    if (b->origin == AMM_ORIGIN_LARGE) m->large_count++;
}

/* ---- the range table (registry.c) ---- */

/* Index of the first range whose start is > addr (binary search, O(log r)). */
AMM__HOT size_t amm__range_upper(const amm_manager *m, uintptr_t addr) {
    return amm__first_above(m->ranges, m->range_count, sizeof(amm__range), addr);
}

/* The range holding addr, or NULL. */
AMM__HOT const amm__range *amm__range_find(const amm_manager *m, uintptr_t addr) {
    size_t at = amm__range_upper(m, addr);
    if (at == 0) return NULL;
    const amm__range *r = &m->ranges[at - 1];
    return addr < r->end ? r : NULL;
}

/* ---- pools (pool.c) ---- */

/* The slot of pool p holding addr (an address inside its slab): a block
 * start only at the slot's user offset. */
AMM__HOT amm__lookup_kind amm__pool_lookup(amm_pool *p, uintptr_t addr, amm__block **b) {
    size_t off = addr - p->base, idx = off / p->stride;
    if (idx >= p->count) {
        *b = NULL;
        return AMM__PTR_INTERIOR;
    }
    *b = &p->slots[idx];
    return off % p->stride == p->front ? AMM__PTR_BLOCK : AMM__PTR_INTERIOR;
}

/* A LIVE slot of pool p, or NULL if it cannot hold size/align or has no slot. */
AMM__HOT amm__block *amm__pool_alloc(amm_manager *m, amm_pool *p, size_t size, size_t align) {
    if (size > p->block_size || align > ((size_t)1 << p->align_log2)) return NULL;
    /* A pool whose free slots all sit in quarantine takes back its oldest one
     * (checked for writes after free first) rather than refusing. */
    if (p->free_top == 0 && p->quarantined) amm__quarantine_evict_pool(m, p);
    if (p->free_top == 0 && p->tc_held) amm__tcache_flush_all(m); /* its free slots are in thread caches: back */
    if (p->free_top == 0) return NULL;
    uint32_t idx = p->free_stack[--p->free_top];
    amm__block *b = &p->slots[idx];
    if (b->raw + p->stride - p->base > p->shadowed) p->shadowed = b->raw + p->stride - p->base;
    amm__block_set_live(m, b, b->raw + p->front, size, align);
    p->used++;
    if (p->used > p->high_water && !p->tc_kept) p->high_water = p->used; /* (a cache's pool: tcache.c) */
    m->pool_slots_used++;
    return b;
}

/* Slot b (out of use, its counters already taken off) goes back on its pool's stack. */
AMM__HOT void amm__pool_release(amm_manager *m, amm__block *b) {
    amm_pool *p = b->pool;
    if (m->cfg.fill) amm__pool_refill(m, b);
    amm__san_freed(b->raw, b->raw_size);
    if (b->state == AMM_BLOCK_QUARANTINED) p->quarantined--;
    b->state = AMM_BLOCK_FREE; /* user, size and site stay: they name the block in a double-free report */
    b->refcount = 0;
    p->free_stack[p->free_top++] = (uint32_t)(b - p->slots);
}

/* ---- the heap's reuse lists (heap.c explains them) ---- */

/* Takes kept chunk c off its list; its bytes are no longer counted free. */
AMM__HOT void amm__reuse_unlink(amm_manager *m, amm__block *c) {
    if (c->q_prev) c->q_prev->q_next = c->q_next;
    else m->reuse[c->raw_size / AMM__GRANULE] = c->q_next;
    if (c->q_next) c->q_next->q_prev = c->q_prev;
    c->q_prev = c->q_next = NULL;
    if (m->reuse_loose == c) m->reuse_loose = NULL;
    m->reuse_blocks--;
    m->reuse_bytes -= c->raw_size;
    m->heap_free_bytes -= c->raw_size;
}

/* A LIVE block from the reuse lists (align <= 16), or NULL if none has the size. */
AMM__HOT amm__block *amm__heap_reuse_alloc(amm_manager *m, size_t size, size_t align) {
    if (size > AMM__REUSE_CHUNK_MAX || align > AMM__GRANULE) return NULL;
    size_t need = amm__heap_chunk_need(m, size);
    /* a request large_threshold sends to its own mapping never takes a kept chunk */
    if (need > AMM__REUSE_CHUNK_MAX || need >= m->cfg.large_threshold) return NULL;
    amm__block *c = m->reuse[need / AMM__GRANULE];
    if (!c) return NULL; /* exact sizes only: a granule of slack on a 48-byte chunk would be a third more */
    amm__reuse_unlink(m, c);
    /* the user pointer of a heap chunk is always raw + front: the registry key stands */
    c->region->used_chunks++;
    c->region->used_bytes += c->raw_size;
    amm__block_set_live(m, c, c->user, size, align);
    return c;
}

AMM__HOT int amm__next_to_free_space(const amm__block *b) {
    return (b->next_phys && amm__state_peek(b->next_phys) == AMM_BLOCK_FREE) ||
           (b->prev_phys && amm__state_peek(b->prev_phys) == AMM_BLOCK_FREE);
}

/* Keeps b (heap, just out of use, still in the registry) for reuse; 0 if there is no room. */
AMM__HOT int amm__reuse_keep(amm_manager *m, amm__block *b) {
    if (b->raw_size > AMM__REUSE_CHUNK_MAX || m->reuse_bytes + b->raw_size > m->cfg.reuse) return 0;
    int loose = amm__next_to_free_space(b);
    if (loose && m->reuse_loose) amm__reuse_free(m, m->reuse_loose); /* b is not free yet: it does not merge */
    amm__san_freed(b->raw, b->raw_size);
    b->state = AMM__BINNED;
    b->flags = 0;
    b->refcount = 0;
    size_t cls = b->raw_size / AMM__GRANULE;
    b->q_prev = NULL;
    b->q_next = m->reuse[cls];
    if (b->q_next) b->q_next->q_prev = b;
    m->reuse[cls] = b;
    if (loose) m->reuse_loose = b;
    m->reuse_blocks++;
    m->reuse_bytes += b->raw_size;
    m->heap_free_bytes += b->raw_size;
    return 1;
}

/* Heap chunk b (out of use, its counters already taken off): kept for reuse, or to the free lists. */
AMM__HOT void amm__heap_release(amm_manager *m, amm__block *b) {
    b->region->used_chunks--;
    b->region->used_bytes -= b->raw_size;
    if (!amm__reuse_keep(m, b)) amm__heap_free_used(m, b);
}

/* Gives a block's memory back to where it came from, by origin; leaves
 * quarantine accounting to the caller. */
AMM__HOT void amm__release_block(amm_manager *m, amm__block *b) {
    switch ((amm_origin)b->origin) {
    case AMM_ORIGIN_HEAP: amm__heap_release(m, b); break;
    case AMM_ORIGIN_POOL: amm__pool_release(m, b); break;
    case AMM_ORIGIN_LARGE: amm__large_release(m, b); break;
    }
}

/* ---- lookup (registry.c) ---- */

/* Classifies any pointer: the start of a block (*b its record), a pointer into
 * amm memory that is not one (*b the record around it, if any), or foreign.
 * Nothing at ptr is read. */
AMM__HOT amm__lookup_kind amm__lookup(amm_manager *m, const void *ptr, amm__block **b) {
    uintptr_t addr = (uintptr_t)ptr;
    *b = NULL;
    const amm__range *r = amm__range_find(m, addr);
    if (!r) return AMM__PTR_FOREIGN;
    switch (r->kind) {
    case AMM__RANGE_POOL:
        return amm__pool_lookup(r->obj, addr, b);
    case AMM__RANGE_LARGE: {
        amm__block *blk = r->obj;
        *b = blk;
        return addr == blk->user ? AMM__PTR_BLOCK : AMM__PTR_INTERIOR;
    }
    case AMM__RANGE_HEAP: {
        amm__block *blk = amm__registry_get(m, addr);
        if (blk) {
            *b = blk;
            return AMM__PTR_BLOCK;
        }
        *b = amm__heap_containing(r->obj, addr);
        return AMM__PTR_INTERIOR;
    }
    }
    return AMM__PTR_FOREIGN;
}

#endif /* AMM_HOT_H */
