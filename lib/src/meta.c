/*
 * meta.c - the allocator's own memory: block records and growable arrays.
 *
 * Records come from slabs of 64 KiB mapped with mmap, never from the managed
 * heap or from malloc, so user overflows cannot reach them and amm can sit
 * under LD_PRELOAD.  Freed records go on a free list (linked through
 * next_free) and are reused; slabs are returned at amm_destroy.  Both
 * operations are O(1) (a new slab costs one mmap every 64 KiB of records).
 */
#include <string.h>

#include "internal.h"

#define SLAB_BYTES ((size_t)64 << 10)

/* First bytes of a slab: the link to the previous slab. */
typedef struct slab_head {
    struct slab_head *next;
} slab_head;

#define SLAB_FIRST (amm__align_up(sizeof(slab_head), _Alignof(amm__block)))
#define SLAB_RECORDS ((SLAB_BYTES - SLAB_FIRST) / sizeof(amm__block))
_Static_assert(sizeof(amm__block) < (64 << 10) / 4, "a slab holds several records");

static int meta_grow(amm_manager *m) {
    uint8_t *mem = amm__os_map(SLAB_BYTES);
    if (!mem) return -1;
    slab_head *h = (slab_head *)mem;
    h->next = m->meta.slabs;
    m->meta.slabs = h;
    amm__block *recs = (amm__block *)(mem + SLAB_FIRST);
    for (size_t i = SLAB_RECORDS; i-- > 0;) {
        recs[i].next_free = m->meta.free_list;
        m->meta.free_list = &recs[i];
    }
    return 0;
}

amm__block *amm__record_new(amm_manager *m) {
    if (!m->meta.free_list && meta_grow(m) != 0) return NULL;
    amm__block *b = m->meta.free_list;
    m->meta.free_list = b->next_free;
    memset(b, 0, sizeof *b);
    m->meta.records_live++;
    return b;
}

void amm__record_free(amm_manager *m, amm__block *b) {
    b->next_free = m->meta.free_list;
    m->meta.free_list = b;
    m->meta.records_live--;
}

void amm__meta_destroy(amm_manager *m) {
    slab_head *h = m->meta.slabs;
    while (h) {
        slab_head *next = h->next;
        amm__os_unmap(h, SLAB_BYTES);
        h = next;
    }
    m->meta.slabs = NULL;
    m->meta.free_list = NULL;
    m->meta.records_live = 0;
}

static size_t array_bytes(size_t cap, size_t elem) {
    size_t page = amm__page_size();
    return amm__align_up(cap * elem, page);
}

int amm__array_reserve(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem) return -1;
        ncap *= 2;
    }
    /* Use the whole mapping. */
    size_t bytes = array_bytes(ncap, elem);
    ncap = bytes / elem;
    void *n = amm__os_map(bytes);
    if (!n) return -1;
    if (*arr) {
        memcpy(n, *arr, *cap * elem);
        amm__os_unmap(*arr, array_bytes(*cap, elem));
    }
    *arr = n;
    *cap = ncap;
    return 0;
}

void amm__array_free(void *arr, size_t cap, size_t elem) {
    if (arr) amm__os_unmap(arr, array_bytes(cap, elem));
}
