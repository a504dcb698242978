/*
 * registry.c - from a pointer to its block record, in O(1), before anything
 * is dereferenced.
 *
 * Two structures:
 *  - the range table: every heap region, pool slab and large mapping, sorted
 *    by start address; a binary search (O(log r), r is small) says which
 *    range, if any, holds an address;
 *  - the registry: an open-addressing hash (linear probing, backward-shift
 *    deletion, load <= 1/2) from a heap block's user pointer to its record.
 * Pool slots need no hash: slot = (addr - base - front) / stride, exact.
 * A large mapping's range points straight at its single record.
 *
 * amm__lookup (hot.h, inline) classifies any pointer as a block start, an
 * interior pointer (inside one of amm's ranges) or foreign, and only then is
 * a record trusted.
 */
#include <string.h>

#include "hot.h"

static int registry_grow(amm_manager *m) {
    amm__registry *r = &m->registry;
    size_t ncap = r->cap ? r->cap * 2 : 1024;
    uintptr_t *keys = amm__os_map(ncap * sizeof *keys);
    amm__block **vals = amm__os_map(ncap * sizeof *vals);
    if (!keys || !vals) {
        amm__os_unmap(keys, ncap * sizeof *keys);
        amm__os_unmap(vals, ncap * sizeof *vals);
        return -1;
    }
    for (size_t i = 0; i < r->cap; i++) {
        if (!r->keys[i]) continue;
        size_t j = amm__registry_hash(r->keys[i]) & (ncap - 1);
        while (keys[j]) j = (j + 1) & (ncap - 1);
        keys[j] = r->keys[i];
        vals[j] = r->vals[i];
    }
    amm__os_unmap(r->keys, r->cap * sizeof *r->keys);
    amm__os_unmap(r->vals, r->cap * sizeof *r->vals);
    r->keys = keys;
    r->vals = vals;
    r->cap = ncap;
    return 0;
}

int amm__registry_put(amm_manager *m, amm__block *b) {
    amm__registry *r = &m->registry;
    if ((r->count + 1) * 2 > r->cap && registry_grow(m) != 0) return -1;
    size_t mask = r->cap - 1, i = amm__registry_hash(b->user) & mask;
    while (r->keys[i] && r->keys[i] != b->user) i = (i + 1) & mask;
    if (!r->keys[i]) r->count++;
    r->keys[i] = b->user;
    r->vals[i] = b;
    return 0;
}

void amm__registry_del(amm_manager *m, uintptr_t user) {
    amm__registry *r = &m->registry;
    if (!r->cap) return;
    size_t mask = r->cap - 1, i = amm__registry_hash(user) & mask;
    while (r->keys[i] && r->keys[i] != user) i = (i + 1) & mask;
    if (!r->keys[i]) return;
    /* Backward-shift deletion keeps every probe chain unbroken, no tombstones. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; r->keys[j]; j = (j + 1) & mask) {
        size_t home = amm__registry_hash(r->keys[j]) & mask;
        int movable = (j > hole) ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            r->keys[hole] = r->keys[j];
            r->vals[hole] = r->vals[j];
            hole = j;
        }
    }
    r->keys[hole] = 0;
    r->vals[hole] = NULL;
    r->count--;
}

void amm__registry_destroy(amm_manager *m) {
    amm__registry *r = &m->registry;
    amm__os_unmap(r->keys, r->cap * sizeof *r->keys);
    amm__os_unmap(r->vals, r->cap * sizeof *r->vals);
    memset(r, 0, sizeof *r);
}

int amm__range_add(amm_manager *m, uintptr_t start, uintptr_t end, amm__range_kind kind, void *obj) {
    void *arr = m->ranges;
    if (amm__array_reserve(&arr, &m->range_cap, m->range_count + 1, sizeof(amm__range)) != 0) return -1;
    m->ranges = arr;
    size_t at = amm__range_upper(m, start);
    memmove(&m->ranges[at + 1], &m->ranges[at], (m->range_count - at) * sizeof(amm__range));
    m->ranges[at] = (amm__range){start, end, kind, obj};
    m->range_count++;
    return 0;
}

void amm__range_del(amm_manager *m, uintptr_t start) {
    size_t at = amm__range_upper(m, start);
    if (at == 0 || m->ranges[at - 1].start != start) return;
    at--;
    memmove(&m->ranges[at], &m->ranges[at + 1], (m->range_count - at - 1) * sizeof(amm__range));
    m->range_count--;
}

amm__block *amm__heap_containing(const amm__region *reg, uintptr_t addr) {
    for (amm__block *c = reg->first; c; c = c->next_phys) {
        if (addr >= c->raw && addr < c->raw + c->raw_size) return c;
    }
    return NULL;
}
