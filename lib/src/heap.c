/*
 * heap.c - managed heap regions: TLSF-style segregated fit over out-of-band
 * chunk records.
 *
 * A region is one mapping tiled by chunks (I1 in internal.h).  Each chunk has
 * a record (amm__block) holding its address and size and its physical
 * neighbours (prev_phys/next_phys): these are the boundary tags, kept out of
 * band so that no user write can damage them.
 *
 * Free chunks sit in segregated lists indexed by two levels (TLSF):
 *   size < 256:  fl = 0, sl = size / 16
 *   otherwise:   f = floor(log2(size)), fl = f - 7, sl = the next 4 bits of size
 * A first-level bitmap and one second-level bitmap per first level make
 * "find a list with a chunk at least this big" two find-first-set
 * instructions: allocation and free are O(1).  A request is rounded up to the
 * next list boundary before the search, so any chunk found fits (good fit).
 *
 * Free neighbours merge at once on free (I2), so there are never two free
 * chunks side by side.  Aligned requests search for size + align - 16 and
 * split the front gap off as a free chunk, so the front guard stays exactly
 * the canary size.
 */
#include <stdlib.h>
#include <string.h>

#include "hot.h"

/* ---- size classes ---- */

static void mapping(size_t size, unsigned *fl, unsigned *sl) {
    if (size < ((size_t)AMM__SL_COUNT << 4)) {
        *fl = 0;
        *sl = (unsigned)(size >> 4);
    } else {
        unsigned f = amm__log2(size);
        *fl = f - 7;
        *sl = (unsigned)(size >> (f - AMM__SL_LOG)) & (AMM__SL_COUNT - 1);
    }
}

/* Rounds size up so that every chunk in the list mapping() then gives is big enough. */
static size_t round_for_search(size_t size) {
    if (size < ((size_t)AMM__SL_COUNT << 4)) return size;
    unsigned f = amm__log2(size);
    size_t step = (size_t)1 << (f - AMM__SL_LOG);
    return size + step - 1;
}

static void free_insert(amm_manager *m, amm__block *c) {
    unsigned fl, sl;
    mapping(c->raw_size, &fl, &sl);
    c->state = AMM_BLOCK_FREE;
    c->prev_free = NULL;
    c->next_free = m->bins[fl][sl];
    if (c->next_free) c->next_free->prev_free = c;
    m->bins[fl][sl] = c;
    m->fl_bitmap |= 1ull << fl;
    m->sl_bitmap[fl] |= 1u << sl;
    m->heap_free_bytes += c->raw_size;
}

static void dirty_unlink(amm_manager *m, amm__block *c);

static void free_remove(amm_manager *m, amm__block *c) {
    unsigned fl, sl;
    if (c->flags & AMM__CHUNK_DIRTY) dirty_unlink(m, c);
    mapping(c->raw_size, &fl, &sl);
    if (c->prev_free) c->prev_free->next_free = c->next_free;
    else m->bins[fl][sl] = c->next_free;
    if (c->next_free) c->next_free->prev_free = c->prev_free;
    c->prev_free = c->next_free = NULL;
    c->state = AMM_BLOCK_LIVE; /* off the lists: no longer a merge candidate */
    if (!m->bins[fl][sl]) {
        m->sl_bitmap[fl] &= ~(1u << sl);
        if (!m->sl_bitmap[fl]) m->fl_bitmap &= ~(1ull << fl);
    }
    m->heap_free_bytes -= c->raw_size;
}

/* A free chunk of at least size bytes, removed from its list, or NULL. */
static amm__block *free_take(amm_manager *m, size_t size) {
    size_t rounded = round_for_search(size);
    if (rounded < size) return NULL;
    unsigned fl, sl;
    mapping(rounded, &fl, &sl);
    if (fl >= AMM__FL_COUNT) return NULL;
    uint32_t sl_map = m->sl_bitmap[fl] & (~0u << sl);
    if (!sl_map) {
        uint64_t fl_map = (fl + 1 < 64) ? (m->fl_bitmap & (~0ull << (fl + 1))) : 0;
        if (!fl_map) return NULL;
        fl = (unsigned)__builtin_ctzll(fl_map);
        sl_map = m->sl_bitmap[fl];
    }
    sl = (unsigned)__builtin_ctz(sl_map);
    amm__block *c = m->bins[fl][sl];
    free_remove(m, c);
    return c;
}

/* ---- chunks ---- */

/* Splits c at offset off: c keeps [raw, raw+off), the new record gets the rest. */
static amm__block *split(amm_manager *m, amm__block *c, size_t off) {
    amm__block *n = amm__record_new(m);
    if (!n) return NULL;
    n->raw = c->raw + off;
    n->raw_size = c->raw_size - off;
    n->region = c->region;
    n->origin = AMM_ORIGIN_HEAP;
    n->state = AMM_BLOCK_LIVE; /* not on a list yet: the caller frees or uses it */
    n->flags = c->flags & (AMM__CHUNK_CLEAN | AMM__CHUNK_AGED); /* untouched pages stay as they were */
    n->prev_phys = c;
    n->next_phys = c->next_phys;
    if (c->next_phys) c->next_phys->prev_phys = n;
    c->next_phys = n;
    c->raw_size = off;
    return n;
}

/* Absorbs c's next neighbour (which the caller has taken off any list) into c. */
static void absorb_next(amm_manager *m, amm__block *c) {
    amm__block *n = c->next_phys;
    c->raw_size += n->raw_size;
    c->next_phys = n->next_phys;
    if (n->next_phys) n->next_phys->prev_phys = c;
    amm__record_free(m, n);
}

/* ---- purging: free pages back to the system ----
 *
 * A free chunk whose whole pages have been given back (madvise) and not
 * touched since carries AMM__CHUNK_CLEAN in its flags (a live block's flags
 * never have the chunk bits).  Every other free chunk of at least cfg.purge
 * bytes is dirty: it sits on a dirty list (linked through q_prev/q_next,
 * which only quarantined blocks use otherwise).  Each time the bytes freed
 * into dirty chunks add up to purge_batch() and purge_delay ms have passed
 * since the last time, the chunks that have stayed dirty for a whole batch
 * (the aged list) are purged and the others age.  A span reused soon after it
 * was freed never costs a system call and page faults.
 *
 * AMM__CHUNK_AGED is the age, and it stays with the bytes: a chunk taken off
 * its list keeps it, so what is left of an aged span after an allocation
 * carves the front off it is still aged (the rest was not touched), and a
 * span that grows by merging free chunks keeps the age of its oldest part.
 * Bytes just freed make a span young (they are in use: purging them would
 * only fault them in again); an aged neighbour they join is purged first, so
 * the idle part of a span in use still goes back.  A chunk is listed
 * (AMM__CHUNK_DIRTY) only while it is free, and on the aged list exactly when
 * its AGED bit is set. */

/* Takes c off its dirty list; it keeps its age. */
static void dirty_unlink(amm_manager *m, amm__block *c) {
    if (c->q_prev) c->q_prev->q_next = c->q_next;
    else if (c->flags & AMM__CHUNK_AGED) m->dirty_aged = c->q_next;
    else m->dirty_head = c->q_next;
    if (c->q_next) c->q_next->q_prev = c->q_prev;
    c->q_prev = c->q_next = NULL;
    c->flags &= (uint8_t)~AMM__CHUNK_DIRTY;
}

static void dirty_push(amm_manager *m, amm__block *c, unsigned aged) {
    amm__block **head = aged ? &m->dirty_aged : &m->dirty_head;
    c->q_prev = NULL;
    c->q_next = *head;
    if (c->q_next) c->q_next->q_prev = c;
    *head = c;
    c->flags = (uint8_t)((c->flags & ~AMM__CHUNK_AGED) | AMM__CHUNK_DIRTY | (aged ? AMM__CHUNK_AGED : 0u));
}

/* Lists free chunk c (off every list) again, on a dirty list too when it is
 * not clean and big enough to purge. */
static void relist(amm_manager *m, amm__block *c) {
    free_insert(m, c);
    if (!(c->flags & AMM__CHUNK_CLEAN) && m->cfg.purge && c->raw_size >= m->cfg.purge)
        dirty_push(m, c, c->flags & AMM__CHUNK_AGED);
}

static size_t purge_batch(const amm_manager *m) {
    size_t batch = m->reserved / 32;
    return batch > m->cfg.purge ? batch : m->cfg.purge;
}

/* Gives c's whole pages back; c is clean afterwards.  Returns the bytes purged. */
static size_t purge_chunk(amm_manager *m, amm__block *c) {
    if (c->flags & AMM__CHUNK_DIRTY) dirty_unlink(m, c);
    size_t page = amm__page_size(), bytes = amm__os_purge(c->raw, c->raw + c->raw_size);
    int whole_pages = amm__align_up(c->raw, page) + page <= c->raw + c->raw_size;
    if (bytes || !whole_pages) c->flags = (uint8_t)((c->flags | AMM__CHUNK_CLEAN) & ~AMM__CHUNK_AGED);
    /* else madvise refused (locked memory): not clean, and not listed again */
    if (bytes) AMM__TRACE(m, amm__trace_simple(m, AMM_TOP_PURGE, c->raw, c->raw_size, 0, 0));
    return bytes;
}

/* A batch is complete: chunks still dirty from the batch before (not reused
 * for a whole batch) are purged; this batch's dirty chunks age. */
static void purge_dirty(amm_manager *m) {
    while (m->dirty_aged) purge_chunk(m, m->dirty_aged);
    for (amm__block *c = m->dirty_head; c; c = c->q_next) c->flags |= AMM__CHUNK_AGED;
    m->dirty_aged = m->dirty_head;
    m->dirty_head = NULL;
    m->purge_dirty = 0;
}

/* freed bytes went back into the heap: a purge batch may be complete. */
static void purge_tick(amm_manager *m, size_t freed) {
    m->purge_dirty += freed;
    size_t batch = purge_batch(m);
    if (m->purge_dirty >= batch) {
        /* a batch ends no sooner than purge_delay ms after the last one */
        uint64_t now = amm__os_now_ns();
        if (now - m->purge_last_ns >= (uint64_t)m->cfg.purge_delay * 1000000u) {
            purge_dirty(m);
            m->purge_last_ns = now;
        } else {
            m->purge_dirty = batch - batch / 8; /* look at the clock again an eighth of a batch later */
        }
    }
}

static void reuse_detach(amm_manager *m, amm__block *c);

/* Frees chunk c (not on a list): merges it with free neighbours, lists the
 * result.  The result is clean only if every part was.  freed: how many of
 * c's bytes were in use until now (they count toward the purge batch). */
static void free_chunk(amm_manager *m, amm__block *c, size_t freed) {
    unsigned clean = c->flags & AMM__CHUNK_CLEAN, aged = c->flags & AMM__CHUNK_AGED;
    c->state = AMM_BLOCK_FREE;
    /* a kept neighbour joins the span: a kept chunk never splits free space (reuse lists, below) */
    if (c->next_phys && amm__state_peek(c->next_phys) == AMM__BINNED) {
        reuse_detach(m, c->next_phys);
        absorb_next(m, c);
        clean = 0;
    }
    if (c->prev_phys && amm__state_peek(c->prev_phys) == AMM__BINNED) {
        amm__block *p = c->prev_phys;
        reuse_detach(m, p);
        absorb_next(m, p);
        c = p;
        c->state = AMM_BLOCK_FREE;
        clean = 0;
    }
    if (freed) { /* an idle (aged) neighbour is purged before bytes in use join it and make it young */
        amm__block *n = c->next_phys, *p = c->prev_phys;
        if (n && amm__state_peek(n) == AMM_BLOCK_FREE && (n->flags & AMM__CHUNK_AGED) && (n->flags & AMM__CHUNK_DIRTY))
            purge_chunk(m, n);
        if (p && amm__state_peek(p) == AMM_BLOCK_FREE && (p->flags & AMM__CHUNK_AGED) && (p->flags & AMM__CHUNK_DIRTY))
            purge_chunk(m, p);
    }
    if (c->next_phys && amm__state_peek(c->next_phys) == AMM_BLOCK_FREE) {
        clean &= c->next_phys->flags;
        aged |= c->next_phys->flags & AMM__CHUNK_AGED;
        free_remove(m, c->next_phys);
        absorb_next(m, c);
    }
    if (c->prev_phys && amm__state_peek(c->prev_phys) == AMM_BLOCK_FREE) {
        amm__block *p = c->prev_phys;
        clean &= p->flags;
        aged |= p->flags & AMM__CHUNK_AGED;
        free_remove(m, p);
        absorb_next(m, p);
        c = p;
    }
    c->flags = (uint8_t)clean;
    free_insert(m, c);
    if (!clean && m->cfg.purge && c->raw_size >= m->cfg.purge) {
        /* bytes freed just now make the span young: they are in use (purging
         * them would fault the same pages in again at once), and an idle
         * neighbour was purged above; merges of free bytes alone keep the age
         * of the oldest part */
        dirty_push(m, c, freed ? 0u : aged);
        purge_tick(m, freed);
    }
}

/* Frees chunk c whose bytes were in use (live, guards, quarantine): the
 * sanitizers learn they are free now, and its pages are dirty; free_chunk
 * alone is for bytes that already were free (shadow work stays proportional
 * to the bytes changing state). */
static void free_used_chunk(amm_manager *m, amm__block *c) {
    amm__san_freed(c->raw, c->raw_size);
    c->flags = 0;
    free_chunk(m, c, c->raw_size);
}

/* Splits the tail of a chunk beyond keep bytes off as free, if worth it;
 * was_used says whether those bytes were in use (else they were free already). */
static void trim_tail(amm_manager *m, amm__block *c, size_t keep, int was_used) {
    if (c->raw_size - keep < AMM__MIN_SPLIT) return;
    amm__block *t = split(m, c, keep);
    if (!t) return; /* no record available: the tail stays as slack */
    if (was_used) free_used_chunk(m, t);
    else free_chunk(m, t, 0);
}

/* ---- regions ---- */

static amm__region *region_new(amm_manager *m, size_t min_bytes) {
    size_t page = amm__page_size();
    size_t bytes = amm__align_up(m->cfg.region_size > min_bytes ? m->cfg.region_size : min_bytes, page);
    void *arr = m->regions;
    if (amm__array_reserve(&arr, &m->region_cap, m->region_count + 1, sizeof(amm__region *)) != 0) return NULL;
    m->regions = arr;
    amm__region *reg = NULL;
    amm__block *c = NULL;
    void *mem = amm__os_map(bytes);
    if (mem) reg = amm__os_map(sizeof *reg);
    if (reg) c = amm__record_new(m);
    if (!c || amm__range_add(m, (uintptr_t)mem, (uintptr_t)mem + bytes, AMM__RANGE_HEAP, reg) != 0) {
        if (c) amm__record_free(m, c);
        amm__os_unmap(reg, sizeof *reg);
        amm__os_unmap(mem, bytes);
        return NULL;
    }
    reg->base = (uintptr_t)mem;
    reg->size = bytes;
    reg->id = m->next_region_id++;
    reg->first = c;
    c->raw = reg->base;
    c->raw_size = bytes;
    c->region = reg;
    c->origin = AMM_ORIGIN_HEAP;
    c->flags = AMM__CHUNK_CLEAN; /* a fresh mapping: nothing resident */
    m->regions[m->region_count++] = reg;
    m->reserved += bytes;
    if (bytes <= AMM__SAN_EAGER_BYTES) { /* else left open until used */
        amm__san_freed(reg->base, bytes);
        reg->shadowed = bytes;
    }
    AMM__TRACE(m, amm__trace_region(m, AMM_TOP_REGION_MAP, reg->base, bytes, AMM_ORIGIN_HEAP, reg->id));
    free_insert(m, c);
    return reg;
}

static void region_drop(amm_manager *m, size_t index) {
    amm__region *reg = m->regions[index];
    AMM__TRACE(m, amm__trace_region(m, AMM_TOP_REGION_UNMAP, reg->base, reg->size, AMM_ORIGIN_HEAP, reg->id));
    amm__range_del(m, reg->base);
    m->reserved -= reg->size;
    amm__os_unmap_shadowed((void *)reg->base, reg->size, reg->shadowed);
    amm__os_unmap(reg, sizeof *reg);
    memmove(&m->regions[index], &m->regions[index + 1], (m->region_count - index - 1) * sizeof m->regions[0]);
    m->region_count--;
}

/* ---- allocation ---- */

/* The sanitizers may have been told about c's bytes from now on: the region's
 * unmap must clear their shadow that far (big regions are shadowed lazily). */
static void note_shadowed(const amm__block *c) {
    if (c->raw + c->raw_size - c->region->base > c->region->shadowed)
        c->region->shadowed = c->raw + c->raw_size - c->region->base;
}

/* Takes a chunk fit for (need, align) and carves the block out of it. */
static amm__block *carve(amm_manager *m, amm__block *c, size_t need, size_t align) {
    uintptr_t user = amm__align_up(c->raw + m->front, align);
    size_t gap = user - m->front - c->raw;
    if (gap) {
        amm__block *rest = split(m, c, gap);
        if (!rest) {
            relist(m, c);
            return NULL;
        }
        relist(m, c); /* the gap; its neighbours are not free */
        c = rest;
    }
    trim_tail(m, c, need, 0);
    c->user = user;
    note_shadowed(c);
    return c;
}

/* ---- reuse lists ----
 *
 * A freed chunk of at most AMM__REUSE_CHUNK_MAX bytes is kept whole (state
 * AMM__BINNED) on the list of its exact size, up to cfg.reuse bytes in all,
 * instead of going back to the free lists: the next request of that size
 * takes it back without a split, a merge or a registry update (like
 * mimalloc's free lists and glibc's tcache, but under the manager's lock).
 * A kept chunk keeps its registry entry, user pointer, size and site, so a
 * second free of it is still a double free that names the block; to the
 * outside (walk, stats) it is free space.
 *
 * A kept chunk must not split free space: one kept between two free spans
 * made the mixed bench map 4 MiB more (peak RSS / peak live 1.30 -> 1.42 with
 * 64 KiB kept).  So a chunk freed next to a free span is kept only as the one
 * "loose" chunk (m->reuse_loose: the alloc-then-free-at-once case, whose
 * chunk was just carved from that span), which the next loose one sends back
 * to the free lists; and a chunk freed next to a kept one takes the kept one
 * into its span (free_chunk).  Compaction, release, destroy and a request the
 * free lists cannot meet put every kept chunk back first.
 *
 * Keeping a chunk and taking one back are on every free and alloc: they are
 * inline in hot.h (amm__reuse_keep, amm__heap_reuse_alloc); the rest is here. */

/* Kept chunk c stops being a block at all: off its list and the registry,
 * a bare chunk its caller merges or frees. */
static void reuse_detach(amm_manager *m, amm__block *c) {
    amm__reuse_unlink(m, c);
    amm__registry_del(m, c->user);
    c->user = 0;
    c->size = 0;
    c->flags = 0;
}

/* Kept chunk c becomes an ordinary free chunk (merged with free neighbours).
 * Its bytes were freed when it was kept, not now: they neither make the span
 * young nor move the purge clock. */
void amm__reuse_free(amm_manager *m, amm__block *c) {
    reuse_detach(m, c);
    free_chunk(m, c, 0);
}

void amm__heap_unbin(amm_manager *m) {
    for (size_t cls = 0; m->reuse_blocks && cls < AMM__REUSE_CLASSES; cls++) {
        while (m->reuse[cls]) amm__reuse_free(m, m->reuse[cls]);
    }
}

amm__block *amm__heap_take(amm_manager *m, size_t need, size_t align) {
    size_t extra = align > AMM__GRANULE ? align - AMM__GRANULE : 0;
    if (need > SIZE_MAX / 4 || extra > SIZE_MAX / 4) return NULL;
    amm__block *c = free_take(m, need + extra);
    if (!c && m->reuse_blocks) { /* kept chunks may merge into a span that fits */
        amm__heap_unbin(m);
        c = free_take(m, need + extra);
    }
    if (!c) {
        if (!region_new(m, need + extra)) return NULL;
        c = free_take(m, need + extra);
        if (!c) return NULL;
    }
    c = carve(m, c, need, align);
    if (!c) return NULL;
    c->flags = 0; /* its pages are about to be touched */
    if (amm__registry_put(m, c) != 0) {
        free_chunk(m, c, 0);
        return NULL;
    }
    c->region->used_chunks++;
    c->region->used_bytes += c->raw_size;
    return c;
}

amm__block *amm__heap_alloc(amm_manager *m, size_t size, size_t align) {
    amm__block *c = m->reuse_blocks ? amm__heap_reuse_alloc(m, size, align) : NULL; /* LIVE already */
    if (c) return c;
    c = amm__heap_take(m, amm__heap_chunk_need(m, size), align);
    if (c) amm__block_set_live(m, c, c->user, size, align);
    return c;
}

void amm__heap_free_used(amm_manager *m, amm__block *b) {
    amm__registry_del(m, b->user);
    b->user = 0;
    b->size = 0;
    b->refcount = 0;
    free_used_chunk(m, b);
}

int amm__heap_resize(amm_manager *m, amm__block *b, size_t new_size) {
    size_t before = b->raw_size, need = amm__heap_chunk_need(m, new_size); /* a heap block's front is m->front */
    if (need == SIZE_MAX) return -1;
    if (need > b->raw_size) {
        amm__block *n = b->next_phys;
        if (n && amm__state_peek(n) == AMM__BINNED) { /* a kept neighbour is free space a block may grow into */
            amm__block *after = n->next_phys; /* with the free span after it, if any: is it enough? */
            size_t room = n->raw_size + (after && amm__state_peek(after) == AMM_BLOCK_FREE ? after->raw_size : 0);
            if (b->raw_size + room < need) return -1; /* no: the kept chunk stays kept */
            amm__reuse_free(m, n);
            n = b->next_phys;
        }
        if (!n || amm__state_peek(n) != AMM_BLOCK_FREE || b->raw_size + n->raw_size < need) return -1;
        free_remove(m, n);
        uint8_t keep = b->flags, clean = n->flags & (AMM__CHUNK_CLEAN | AMM__CHUNK_AGED);
        absorb_next(m, b);
        /* the tail is what is left of the free neighbour: free already, as clean and as old as it was */
        b->flags = (uint8_t)(keep | clean);
        trim_tail(m, b, need, 0);
        b->flags = keep;
        note_shadowed(b); /* its guards move into bytes no block had before */
    } else {
        trim_tail(m, b, need, 1);
    }
    b->region->used_bytes = b->region->used_bytes - before + b->raw_size;
    return 0;
}

size_t amm__heap_largest_free(const amm_manager *m) {
    size_t best = 0;
    for (size_t cls = AMM__REUSE_CLASSES; m->reuse_blocks && cls-- > 0;) { /* a kept chunk is a free span too */
        if (m->reuse[cls]) {
            best = cls * AMM__GRANULE;
            break;
        }
    }
    if (!m->fl_bitmap) return best;
    unsigned fl = 63u - (unsigned)__builtin_clzll(m->fl_bitmap);
    unsigned sl = 31u - (unsigned)__builtin_clz(m->sl_bitmap[fl]);
    for (const amm__block *c = m->bins[fl][sl]; c; c = c->next_free) {
        if (c->raw_size > best) best = c->raw_size;
    }
    return best;
}

/* ---- defragmentation ---- */

size_t amm__heap_release_memory(amm_manager *m, size_t *regions_released) {
    size_t bytes = 0;
    amm__heap_unbin(m);
    for (size_t i = m->region_count; i-- > 0;) {
        amm__region *reg = m->regions[i];
        if (reg->used_chunks == 0) {
            free_remove(m, reg->first);
            amm__record_free(m, reg->first);
            bytes += reg->size;
            region_drop(m, i);
            if (regions_released) (*regions_released)++;
            continue;
        }
        for (amm__block *c = reg->first; c; c = c->next_phys) {
            if (c->state == AMM_BLOCK_FREE) bytes += purge_chunk(m, c);
        }
    }
    return bytes;
}

void amm__heap_destroy(amm_manager *m) {
    amm__heap_unbin(m);
    while (m->region_count) {
        amm__region *reg = m->regions[m->region_count - 1];
        for (amm__block *c = reg->first; c;) {
            amm__block *n = c->next_phys;
            if (c->state == AMM_BLOCK_FREE) free_remove(m, c);
            else amm__registry_del(m, c->user);
            amm__record_free(m, c);
            c = n;
        }
        region_drop(m, m->region_count - 1);
    }
    amm__array_free(m->regions, m->region_cap, sizeof(amm__region *));
    m->regions = NULL;
    m->region_cap = 0;
}

/* ---- validation ---- */

size_t amm__heap_check(amm_manager *m) {
    size_t problems = 0, free_chunks = 0, used_chunks = 0, free_bytes = 0, dirty_chunks = 0, kept = 0;
    for (size_t i = 0; i < m->region_count; i++) {
        const amm__region *reg = m->regions[i];
        uintptr_t expect = reg->base;
        size_t used = 0;
        const amm__block *prev = NULL;
        for (const amm__block *c = reg->first; c; prev = c, c = c->next_phys) {
            int ok = c->raw == expect && c->prev_phys == prev && c->region == reg && c->raw_size >= AMM__GRANULE &&
                     c->raw_size % AMM__GRANULE == 0;
            if (ok && c->state == AMM_BLOCK_FREE) {
                free_chunks++;
                free_bytes += c->raw_size;
                dirty_chunks += (c->flags & AMM__CHUNK_DIRTY) != 0;
                ok = !(prev && prev->state == AMM_BLOCK_FREE); /* I2 */
            } else if (ok && c->state == AMM__CACHED) {
                ok = 0; /* amm_check empties the thread caches first */
            } else if (ok && c->state == AMM__BINNED) {
                kept++;
                free_bytes += c->raw_size;
                ok = amm__registry_get(m, c->user) == c && c->user == c->raw + m->front;
            } else if (ok) {
                used++;
                ok = amm__registry_get(m, c->user) == c && c->user >= c->raw + m->front &&
                     c->user + c->size <= c->raw + c->raw_size;
            }
            if (!ok) {
                amm__fault(m, AMM_ERR_CORRUPTION, (void *)c->raw, NULL, "check", "heap chunk list is inconsistent", 0,
                           0, NULL, 0);
                problems++;
                break;
            }
            expect = c->raw + c->raw_size;
        }
        if (expect != reg->base + reg->size || used != reg->used_chunks) {
            amm__fault(m, AMM_ERR_CORRUPTION, (void *)reg->base, NULL, "check", "heap region is not tiled by its chunks",
                       0, 0, NULL, 0);
            problems++;
        }
        used_chunks += used;
    }
    /* I3: the lists hold exactly the free chunks, each in its own class. */
    size_t listed = 0;
    for (unsigned fl = 0; fl < AMM__FL_COUNT; fl++) {
        for (unsigned sl = 0; sl < AMM__SL_COUNT; sl++) {
            int bit = (m->sl_bitmap[fl] >> sl) & 1;
            if (bit != (m->bins[fl][sl] != NULL)) problems++;
            for (const amm__block *c = m->bins[fl][sl]; c; c = c->next_free) {
                unsigned f2, s2;
                mapping(c->raw_size, &f2, &s2);
                if (c->state != AMM_BLOCK_FREE || f2 != fl || s2 != sl) problems++;
                if (++listed > free_chunks) break;
            }
        }
    }
    /* I10: the dirty list holds exactly the free chunks flagged dirty. */
    size_t dirty_listed = 0;
    int dirty_ok = 1;
    for (int aged = 0; aged < 2; aged++) {
        for (const amm__block *c = aged ? m->dirty_aged : m->dirty_head; c && dirty_listed <= dirty_chunks;
             c = c->q_next) {
            if (c->state != AMM_BLOCK_FREE || !(c->flags & AMM__CHUNK_DIRTY) ||
                !(c->flags & AMM__CHUNK_AGED) != !aged || (c->q_next && c->q_next->q_prev != c))
                dirty_ok = 0;
            dirty_listed++;
        }
    }
    if (!dirty_ok || dirty_listed != dirty_chunks) {
        amm__fault(m, AMM_ERR_CORRUPTION, NULL, NULL, "check", "heap dirty list disagrees with the chunks", 0, 0, NULL,
                   0);
        problems++;
    }
    /* I11: the reuse lists hold exactly the kept chunks, each on the list of its size. */
    size_t kept_listed = 0, kept_bytes = 0;
    int kept_ok = 1;
    for (size_t cls = 0; cls < AMM__REUSE_CLASSES; cls++) {
        for (const amm__block *c = m->reuse[cls]; c && kept_listed <= kept; c = c->q_next) {
            if (c->state != AMM__BINNED || c->raw_size / AMM__GRANULE != cls) kept_ok = 0;
            kept_listed++;
            kept_bytes += c->raw_size;
        }
    }
    if (m->reuse_loose && m->reuse_loose->state != AMM__BINNED) kept_ok = 0;
    if (!kept_ok || kept_listed != kept || kept != m->reuse_blocks || kept_bytes != m->reuse_bytes ||
        m->reuse_bytes > m->cfg.reuse) {
        amm__fault(m, AMM_ERR_CORRUPTION, NULL, NULL, "check", "heap reuse lists disagree with the chunks", 0, 0, NULL,
                   0);
        problems++;
    }
    if (listed != free_chunks || free_bytes != m->heap_free_bytes || used_chunks + kept != m->registry.count) {
        amm__fault(m, AMM_ERR_CORRUPTION, NULL, NULL, "check", "heap free lists or registry disagree with the chunks", 0,
                   0, NULL, 0);
        problems++;
    }
    return problems;
}

/* ---- compaction ----
 *
 * Two passes over movable LIVE blocks (pinned, quarantined and pool blocks
 * stay where they are):
 *  1. slide: a movable block whose lower neighbour is free moves down into
 *     it (memmove; the free space ends up above it and merges upward), so
 *     each region packs toward its start, stopping only at pinned blocks;
 *  2. pack across regions: regions are ranked fullest first; from the top of
 *     the emptiest regions down to their highest block that cannot move,
 *     blocks move into holes of fuller ones, so free space gathers at the top
 *     of the emptiest regions in one span, and regions left empty are
 *     unmapped by defragment's release step;
 *  3. slide again, to close the holes pass 2 filled only in part.
 * Every move keeps size, alignment, refcount, flags, serial and site, rewrites
 * the canaries, updates the registry, is traced, and is told to the owner
 * through the move callback.  Cost: O(n log n + bytes moved) per call.
 */

/* The chunk bytes a live block needs where it stands. */
static size_t block_need(const amm_manager *m, const amm__block *b) { return amm__heap_chunk_need(m, b->size); }

static size_t place_align(const amm__block *b) {
    size_t a = amm__align_of(b);
    return a < AMM__GRANULE ? AMM__GRANULE : a;
}

static void moved(amm_manager *m, amm__block *b, uintptr_t old_user, size_t *bytes, size_t *blocks) {
    amm__san_alloc(b->user, b->size, 1);
    amm__guard_write(m, b);
    *bytes += b->size;
    (*blocks)++;
    AMM__TRACE(m, amm__trace_resize(m, AMM_TOP_MOVE, b, old_user, b->size));
    if (m->on_move) m->on_move((void *)old_user, (void *)b->user, b->size, m->on_move_user);
}

/* Pass 1 for one block: move c down into its free lower neighbour, if that gains room. */
static int slide_down(amm_manager *m, amm__block *c, size_t *bytes, size_t *blocks) {
    amm__block *f = c->prev_phys;
    uintptr_t user = amm__align_up(f->raw + m->front, place_align(c)), raw = user - m->front;
    if (raw >= c->raw) return 0;
    uintptr_t old_user = c->user, end = c->raw + c->raw_size;
    size_t before = c->raw_size;
    amm__san_open(user, c->size);
    memmove((void *)user, (const void *)old_user, c->size);
    amm__san_free(old_user, 0);
    free_remove(m, f);
    if (raw == f->raw) { /* the free chunk disappears: c takes its place in the list */
        c->prev_phys = f->prev_phys;
        if (f->prev_phys) f->prev_phys->next_phys = c;
        else c->region->first = c;
        amm__record_free(m, f);
    } else {
        f->raw_size = raw - f->raw;
        relist(m, f);
    }
    c->raw = raw;
    c->raw_size = end - raw;
    amm__registry_del(m, old_user);
    c->user = user;
    amm__registry_put(m, c); /* cannot grow: one key left, one comes back */
    trim_tail(m, c, block_need(m, c), 1);
    c->region->used_bytes = c->region->used_bytes - before + c->raw_size;
    moved(m, c, old_user, bytes, blocks);
    return 1;
}

/* A free chunk able to hold (need, align) in a region ranked below max_rank, off its list. */
static amm__block *take_ranked(amm_manager *m, size_t need, size_t align, size_t max_rank) {
    size_t want = need + (align > AMM__GRANULE ? align - AMM__GRANULE : 0);
    unsigned fl0, sl0;
    mapping(want, &fl0, &sl0);
    for (unsigned fl = fl0; fl < AMM__FL_COUNT; fl++) {
        for (unsigned sl = fl == fl0 ? sl0 : 0; sl < AMM__SL_COUNT; sl++) {
            for (amm__block *c = m->bins[fl][sl]; c; c = c->next_free) {
                if (c->raw_size >= want && c->region->rank < max_rank) {
                    free_remove(m, c);
                    return c;
                }
            }
        }
    }
    return NULL;
}

/* Moves live block c into free chunk d (taken off its list, big enough). */
static int relocate(amm_manager *m, amm__block *c, amm__block *d, size_t *bytes, size_t *blocks) {
    d = carve(m, d, block_need(m, c), place_align(c));
    if (!d) return 0;
    uintptr_t old_user = c->user;
    amm__san_open(d->user, c->size);
    memcpy((void *)d->user, (const void *)old_user, c->size);
    amm__san_free(old_user, 0);
    d->size = c->size;
    d->serial = c->serial;
    d->file = c->file;
    d->line = c->line;
    d->refcount = c->refcount;
    d->align_log2 = c->align_log2;
    d->state = AMM_BLOCK_LIVE;
    d->origin = AMM_ORIGIN_HEAP;
    d->flags = c->flags & (uint8_t)~AMM__TC_OWNED; /* its thread cache does not take a moved block back */
    d->region->used_chunks++;
    d->region->used_bytes += d->raw_size;
    amm__registry_del(m, old_user);
    amm__registry_put(m, d);
    c->region->used_chunks--;
    c->region->used_bytes -= c->raw_size;
    c->user = 0;
    free_used_chunk(m, c);
    moved(m, d, old_user, bytes, blocks);
    return 1;
}

/* Pass 2 for one block: move c into a fuller region, if one has room. */
static int move_across(amm_manager *m, amm__block *c, size_t max_rank, size_t *bytes, size_t *blocks) {
    amm__block *d = take_ranked(m, block_need(m, c), place_align(c), max_rank);
    return d && relocate(m, c, d, bytes, blocks);
}

static int movable(const amm__block *c) {
    return c->state == AMM_BLOCK_LIVE && (c->flags & AMM_ALLOC_MOVABLE);
}

#define LOOK_BACK 64 /* chunks searched below a block for a hole it fits (bounds the pass) */

/* The lowest free chunk among the LOOK_BACK chunks below c that can hold it. */
static amm__block *hole_below(const amm_manager *m, const amm__block *c) {
    size_t want = block_need(m, c) + (place_align(c) > AMM__GRANULE ? place_align(c) - AMM__GRANULE : 0);
    amm__block *best = NULL, *f = c->prev_phys;
    for (int i = 0; f && i < LOOK_BACK; f = f->prev_phys, i++) {
        if (f->state == AMM_BLOCK_FREE && f->raw_size >= want) best = f;
    }
    return best;
}

/* Packs a region toward its start: a movable block slides into the free chunk
 * just below it, or jumps (over pinned blocks) into the lowest hole below that
 * fits it. */
static void slide_region(amm_manager *m, amm__region *reg, size_t *bytes, size_t *blocks) {
    for (amm__block *c = reg->first; c;) {
        amm__block *next = c->next_phys;
        if (!movable(c) || !c->prev_phys) {
            c = next;
            continue;
        }
        amm__block *hole = hole_below(m, c);
        if (hole && hole != c->prev_phys) {
            amm__block *after = (next && next->state == AMM_BLOCK_FREE) ? next->next_phys : next;
            free_remove(m, hole);
            if (relocate(m, c, hole, bytes, blocks)) next = after;
        } else if (c->prev_phys->state == AMM_BLOCK_FREE) {
            slide_down(m, c, bytes, blocks);
            next = c->next_phys;
        }
        c = next;
    }
}

static int fuller_first(const void *a, const void *b) {
    const amm__region *x = *(amm__region *const *)a, *y = *(amm__region *const *)b;
    return x->used_bytes < y->used_bytes ? 1 : x->used_bytes > y->used_bytes ? -1 : (x->base > y->base) - (x->base < y->base);
}

/* Pass 2 for one region: from its top down to its highest block that cannot
 * move, movable blocks leave for fuller regions.  Stopping there leaves the
 * space they free at the top, in one span with the region's free tail. */
static void empty_from_top(amm_manager *m, amm__region *reg, size_t rank, size_t *bytes, size_t *blocks) {
    amm__block *c = reg->first;
    while (c && c->next_phys) c = c->next_phys;
    while (c) {
        /* c's lower neighbour survives c leaving: if free it absorbs c, else c's record goes */
        amm__block *prev = c->prev_phys;
        if (c->state != AMM_BLOCK_FREE) {
            if (!movable(c) || !move_across(m, c, rank, bytes, blocks)) break;
        }
        c = prev;
    }
}

size_t amm__heap_compact(amm_manager *m, size_t *blocks_moved) {
    amm__heap_unbin(m); /* kept chunks are holes like any other */
    size_t bytes = 0, blocks = 0, n = m->region_count;
    for (size_t i = 0; i < n; i++) slide_region(m, m->regions[i], &bytes, &blocks);
    if (n > 1) {
        amm__region **order = NULL;
        size_t cap = 0;
        void *arr = NULL;
        if (amm__array_reserve(&arr, &cap, n, sizeof *order) == 0) {
            order = arr;
            memcpy(order, m->regions, n * sizeof *order);
            qsort(order, n, sizeof *order, fuller_first);
            for (size_t i = 0; i < n; i++) order[i]->rank = i;
            for (size_t s = n; s-- > 1;) empty_from_top(m, order[s], s, &bytes, &blocks);
            for (size_t i = 0; i < n; i++) slide_region(m, order[i], &bytes, &blocks);
            amm__array_free(arr, cap, sizeof *order);
        }
    }
    if (blocks_moved) *blocks_moved = blocks;
    return bytes;
}
