/*
 * model.c - rebuilds heap state from trace events (see model.h).
 *
 * Blocks live in a dense array; an open-addressing hash (linear probing,
 * backward-shift deletion, load <= 1/2) maps a user pointer to its index.
 * Removing a block moves the last one into its hole, so the array always
 * holds exactly the live + quarantined blocks and a frame walks them in O(n).
 *
 * Regions are a sorted array searched by bisection.  A block outside every
 * known region gets an inferred region (1 MiB aligned, clipped to its
 * neighbours) so it can still be drawn; a later REGION_MAP replaces it.
 *
 * Invariants (checked by tests through the public fields):
 *   nblocks = live_blocks + quar_blocks;  hash count = nblocks
 *   live_bytes = sum of sizes of LIVE blocks; quar_bytes likewise
 *   regions sorted by base and pairwise disjoint
 */
#define _GNU_SOURCE
#include "model.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VM_INFERRED_SPAN ((uint64_t)1 << 20)
#define VM_GRANULE 16u

static const char *const vm_op_names[] = {
#define AMM__X(e, name, has_args, doc) name,
    AMM_TRACE_OPS(AMM__X)
#undef AMM__X
};

static const char *const vm_err_names[] = {
#define AMM__X(e, name, desc) name,
    AMM_ERROR_KINDS(AMM__X)
#undef AMM__X
};

static const char *op_name(unsigned op)
{
    if (op == VM_OP_STREAM_START) return "stream-start";
    return op < AMM_TOP_COUNT ? vm_op_names[op] : "unknown";
}

static const char *err_name(unsigned kind)
{
    return kind < AMM_ERR_COUNT ? vm_err_names[kind] : "unknown-fault";
}

const char *vm_region_kind_name(unsigned kind)
{
    static const char *const names[] = {"heap", "pool", "large", "inferred"};
    return kind < 4 ? names[kind] : "?";
}

void vm_limits_default(vm_limits *lim)
{
    lim->max_blocks = (size_t)8 << 20;
    lim->max_regions = 65536;
    lim->log_capacity = 8192;
    lim->sample_capacity = 4096;
    lim->fault_capacity = 1024;
    lim->max_sites = 65536;
}

/* ---- hash ---------------------------------------------------------------- */

static size_t hash_slot(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

/* Index+1 of key, or 0. */
static uint32_t hash_get(const vm_model *m, uint64_t key)
{
    if (m->hcap == 0) return 0;
    for (size_t i = hash_slot(key, m->hcap);; i = (i + 1) & (m->hcap - 1)) {
        if (m->hash[i].key == key) return (uint32_t)m->hash[i].val;
        if (m->hash[i].key == 0) return 0;
    }
}

static void hash_put_nogrow(vm_model *m, uint64_t key, uint32_t val)
{
    size_t i = hash_slot(key, m->hcap);
    while (m->hash[i].key != 0 && m->hash[i].key != key) i = (i + 1) & (m->hcap - 1);
    m->hash[i].key = key;
    m->hash[i].val = val;
}

static int hash_grow(vm_model *m, size_t need)
{
    if (need * 2 <= m->hcap) return 0;
    size_t cap = m->hcap ? m->hcap : 1024;
    while (need * 2 > cap) cap *= 2;
    vm_hent *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    vm_hent *old = m->hash;
    size_t ocap = m->hcap;
    m->hash = n;
    m->hcap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key) hash_put_nogrow(m, old[i].key, (uint32_t)old[i].val);
    free(old);
    return 0;
}

static void hash_del(vm_model *m, uint64_t key)
{
    size_t mask = m->hcap - 1, i = hash_slot(key, m->hcap);
    while (m->hash[i].key != key) {
        if (m->hash[i].key == 0) return;
        i = (i + 1) & mask;
    }
    /* backward-shift: move later entries of the cluster into the hole */
    size_t hole = i;
    for (size_t j = (hole + 1) & mask; m->hash[j].key != 0; j = (j + 1) & mask) {
        size_t home = hash_slot(m->hash[j].key, m->hcap);
        /* entry j may move to hole if home is not cyclically in (hole, j] */
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            m->hash[hole] = m->hash[j];
            hole = j;
        }
    }
    m->hash[hole].key = 0;
    m->hash[hole].val = 0;
}

/* ---- init / copy ----------------------------------------------------------- */

int vm_model_init(vm_model *m, const vm_limits *lim)
{
    memset(m, 0, sizeof *m);
    if (lim)
        m->lim = *lim;
    else
        vm_limits_default(&m->lim);
    if (m->lim.log_capacity == 0) m->lim.log_capacity = 1;
    if (m->lim.sample_capacity < 4) m->lim.sample_capacity = 4;
    if (m->lim.fault_capacity == 0) m->lim.fault_capacity = 1;
    if (m->lim.max_blocks > UINT32_MAX - 1) m->lim.max_blocks = UINT32_MAX - 1;
    m->canary = 16;
    m->sample_stride = 1;
    m->log = calloc(m->lim.log_capacity, sizeof *m->log);
    m->samples = calloc(m->lim.sample_capacity, sizeof *m->samples);
    m->faults = calloc(m->lim.fault_capacity, sizeof *m->faults);
    if (!m->log || !m->samples || !m->faults || hash_grow(m, 512) != 0) {
        vm_model_free(m);
        return -1;
    }
    return 0;
}

void vm_model_free(vm_model *m)
{
    free(m->blocks);
    free(m->hash);
    free(m->regions);
    free(m->sites);
    free(m->log);
    free(m->samples);
    free(m->faults);
    vm_limits lim = m->lim;
    memset(m, 0, sizeof *m);
    m->lim = lim;
}

void vm_model_clear_heap(vm_model *m)
{
    m->nblocks = 0;
    if (m->hash) memset(m->hash, 0, m->hcap * sizeof *m->hash);
    m->nregions = 0;
    m->live_bytes = m->quar_bytes = m->reserved = 0;
    m->live_blocks = m->quar_blocks = 0;
}

static void *dup_array(const void *src, size_t n, size_t elem)
{
    if (n == 0 || src == NULL) return NULL;
    void *p = malloc(n * elem);
    if (p) memcpy(p, src, n * elem);
    return p;
}

int vm_model_copy(vm_model *dst, const vm_model *src)
{
    vm_model_free(dst);
    *dst = *src;
    dst->blocks = dup_array(src->blocks, src->cap_blocks, sizeof *src->blocks);
    dst->hash = dup_array(src->hash, src->hcap, sizeof *src->hash);
    dst->regions = dup_array(src->regions, src->cap_regions, sizeof *src->regions);
    dst->sites = dup_array(src->sites, src->nsites_cap, sizeof *src->sites);
    dst->log = dup_array(src->log, src->lim.log_capacity, sizeof *src->log);
    dst->samples = dup_array(src->samples, src->lim.sample_capacity, sizeof *src->samples);
    dst->faults = dup_array(src->faults, src->lim.fault_capacity, sizeof *src->faults);
    if ((src->cap_blocks && !dst->blocks) || (src->hcap && !dst->hash) ||
        (src->cap_regions && !dst->regions) || (src->nsites_cap && !dst->sites) || !dst->log ||
        !dst->samples || !dst->faults) {
        vm_model_free(dst);
        return -1;
    }
    return 0;
}

size_t vm_model_bytes(const vm_model *m)
{
    return sizeof *m + m->cap_blocks * sizeof(vm_block) + m->hcap * sizeof(vm_hent) +
           m->cap_regions * sizeof(vm_region) + m->nsites_cap * sizeof(vm_site) +
           m->lim.log_capacity * sizeof(vm_event) + m->lim.sample_capacity * sizeof(vm_sample) +
           m->lim.fault_capacity * sizeof(vm_fault);
}

/* ---- regions ------------------------------------------------------------- */

/* Index of the last region with base <= addr, or -1. */
static long region_floor(const vm_model *m, uint64_t addr)
{
    size_t lo = 0, hi = m->nregions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->regions[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (long)lo - 1;
}

long vm_model_region_of(const vm_model *m, uint64_t addr)
{
    if (m->nregions > 0) { /* most lookups hit the region of the previous one */
        size_t h = m->region_hint < m->nregions ? m->region_hint : 0;
        if (addr - m->regions[h].base < m->regions[h].size) return (long)h;
    }
    long i = region_floor(m, addr);
    if (i < 0) return -1;
    const vm_region *r = &m->regions[i];
    if (addr - r->base >= r->size) return -1;
    ((vm_model *)m)->region_hint = (size_t)i; /* a cache only: lookups stay logically const */
    return i;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static void region_remove_at(vm_model *m, size_t i)
{
    m->reserved -= m->regions[i].kind == VM_REGION_INFERRED ? 0 : m->regions[i].size;
    memmove(&m->regions[i], &m->regions[i + 1], (m->nregions - i - 1) * sizeof *m->regions);
    m->nregions--;
}

/* Removes every region overlapping [lo, hi) (any kind if kinds_mask is all). */
static void regions_remove_overlapping(vm_model *m, uint64_t lo, uint64_t hi, unsigned kinds_mask)
{
    for (size_t i = 0; i < m->nregions;) {
        vm_region *r = &m->regions[i];
        uint64_t rend = sat_add(r->base, r->size);
        if (r->base < hi && lo < rend && (kinds_mask & (1u << r->kind)))
            region_remove_at(m, i);
        else
            i++;
    }
}

/* Inserts a region [base, base+size) keeping order; overlapping inferred regions give way,
 * an overlap with a real region is an anomaly (the new one replaces it). Returns its index or -1. */
static long region_insert(vm_model *m, uint64_t base, uint64_t size, unsigned kind, uint32_t id)
{
    if (size == 0) size = 1;
    if (size > UINT64_MAX - base) size = UINT64_MAX - base;
    if (size == 0) {
        m->anomalies++;
        return -1;
    }
    size_t before = m->nregions;
    regions_remove_overlapping(m, base, base + size, 1u << VM_REGION_INFERRED);
    size_t mid = m->nregions;
    regions_remove_overlapping(m, base, base + size, 0xFu);
    if (m->nregions != mid) m->anomalies++;
    (void)before;
    if (m->nregions >= m->lim.max_regions) {
        m->regions_ignored++;
        return -1;
    }
    if (m->nregions == m->cap_regions) {
        size_t cap = m->cap_regions ? m->cap_regions * 2 : 16;
        vm_region *n = realloc(m->regions, cap * sizeof *n);
        if (!n) {
            m->regions_ignored++;
            return -1;
        }
        m->regions = n;
        m->cap_regions = cap;
    }
    size_t at = (size_t)(region_floor(m, base) + 1);
    memmove(&m->regions[at + 1], &m->regions[at], (m->nregions - at) * sizeof *m->regions);
    m->nregions++;
    vm_region *r = &m->regions[at];
    memset(r, 0, sizeof *r);
    r->base = base;
    r->size = size;
    r->kind = (uint8_t)kind;
    r->id = id;
    if (kind != VM_REGION_INFERRED) m->reserved += size;
    return (long)at;
}

/* A region for a block at [raw, end) that lies outside every region. */
static long region_infer(vm_model *m, uint64_t raw, uint64_t end)
{
    uint64_t lo = raw & ~(VM_INFERRED_SPAN - 1);
    uint64_t hi = sat_add(end, VM_INFERRED_SPAN - 1) & ~(VM_INFERRED_SPAN - 1);
    if (hi <= lo) hi = end > raw ? end : raw + 1;
    long prev = region_floor(m, raw);
    if (prev >= 0) {
        uint64_t pend = sat_add(m->regions[prev].base, m->regions[prev].size);
        if (pend > lo) lo = pend;
    }
    if ((size_t)(prev + 1) < m->nregions && m->regions[prev + 1].base < hi) hi = m->regions[prev + 1].base;
    if (lo > raw) lo = raw;
    if (hi < end) hi = end;
    if (hi <= lo) hi = lo + 1;
    return region_insert(m, lo, hi - lo, VM_REGION_INFERRED, 0);
}

/* ---- blocks -------------------------------------------------------------- */

static vm_block *block_get(vm_model *m, uint64_t user)
{
    uint32_t v = user ? hash_get(m, user) : 0;
    return v ? &m->blocks[v - 1] : NULL;
}

void vm_model_prefetch(const vm_model *m, uint64_t user, int stage)
{
    if (m->hcap == 0 || user == 0) return;
    size_t i = hash_slot(user, m->hcap);
    if (stage == 0) {
        __builtin_prefetch(&m->hash[i]);
        return;
    }
    if (m->hash[i].key == user) __builtin_prefetch(&m->blocks[m->hash[i].val - 1]);
}

const vm_block *vm_model_find(const vm_model *m, uint64_t user)
{
    uint32_t v = user ? hash_get(m, user) : 0;
    return v ? &m->blocks[v - 1] : NULL;
}

static void account(vm_model *m, const vm_block *b, int sign)
{
    long ri = vm_model_region_of(m, b->user);
    vm_region *r = ri >= 0 ? &m->regions[ri] : NULL;
    if (b->state == AMM_BLOCK_QUARANTINED) {
        m->quar_blocks += (size_t)(long)sign;
        m->quar_bytes += (uint64_t)(int64_t)sign * b->size;
        if (r) r->quarantined += (uint32_t)(int32_t)sign;
        return;
    }
    m->live_blocks += (size_t)(long)sign;
    m->live_bytes += (uint64_t)(int64_t)sign * b->size;
    if (r) {
        r->used += (uint32_t)(int32_t)sign;
        r->live_bytes += (uint64_t)(int64_t)sign * b->size;
        if (r->used > r->high_water) r->high_water = r->used;
    }
}

/* The back extent of a block, from its region (pool slot end) or the canary size. */
static uint32_t block_back(vm_model *m, const vm_block *b, const vm_region *r)
{
    uint64_t end = sat_add(b->user, b->size);
    if (r && r->kind == VM_REGION_POOL && r->stride) {
        uint64_t raw = b->user - b->front;
        if (raw >= r->base) {
            uint64_t slot_end = sat_add(r->base + (raw - r->base) / r->stride * r->stride, r->stride);
            if (slot_end >= end && slot_end - end < UINT32_MAX) return (uint32_t)(slot_end - end);
        }
        return 0;
    }
    uint64_t want = sat_add(end, m->canary);
    uint64_t rounded = sat_add(want, VM_GRANULE - 1) & ~(uint64_t)(VM_GRANULE - 1);
    if (rounded < end) return 0;
    return (uint32_t)(rounded - end > UINT32_MAX ? UINT32_MAX : rounded - end);
}

static void block_remove(vm_model *m, vm_block *b)
{
    account(m, b, -1);
    size_t idx = (size_t)(b - m->blocks);
    hash_del(m, b->user);
    size_t last = m->nblocks - 1;
    if (idx != last) {
        m->blocks[idx] = m->blocks[last];
        hash_put_nogrow(m, m->blocks[idx].user, (uint32_t)idx + 1);
    }
    m->nblocks--;
}

/* Inserts (or replaces) a block at user from an ALLOC-like record.  Returns it or NULL. */
static vm_block *block_insert(vm_model *m, const amm_trace_record *rec, uint64_t seq)
{
    uint64_t user = rec->addr;
    if (user == 0) {
        m->anomalies++;
        return NULL;
    }
    vm_block *old = block_get(m, user);
    if (old) {
        m->anomalies++;
        block_remove(m, old);
    }
    if (m->nblocks >= m->lim.max_blocks) {
        m->untracked++;
        return NULL;
    }
    if (m->nblocks == m->cap_blocks) {
        size_t cap = m->cap_blocks ? m->cap_blocks * 2 : 256;
        if (cap > m->lim.max_blocks) cap = m->lim.max_blocks;
        vm_block *n = realloc(m->blocks, cap * sizeof *n);
        if (!n) {
            m->untracked++;
            return NULL;
        }
        m->blocks = n;
        m->cap_blocks = cap;
    }
    if (hash_grow(m, m->nblocks + 1) != 0) {
        m->untracked++;
        return NULL;
    }
    vm_block *b = &m->blocks[m->nblocks];
    memset(b, 0, sizeof *b);
    b->user = user;
    b->size = rec->size > UINT64_MAX - user ? UINT64_MAX - user : rec->size;
    b->front = rec->aux_a <= user ? rec->aux_a : 0;
    b->site = rec->aux_b & 0xFFFFFFu;
    b->origin = (uint8_t)((rec->aux_b >> 24) & 3u);
    b->flags = (uint8_t)((rec->aux_b >> 26) & 0x3Fu);
    b->align_log2 = rec->align_log2 < 64 ? rec->align_log2 : 63;
    b->refcount = 1;
    b->state = AMM_BLOCK_LIVE;
    b->born_seq = seq;
    long ri = vm_model_region_of(m, user - b->front);
    if (ri < 0) ri = region_infer(m, user - b->front, sat_add(sat_add(user, b->size), m->canary + VM_GRANULE));
    b->back = block_back(m, b, ri >= 0 ? &m->regions[ri] : NULL);
    hash_put_nogrow(m, user, (uint32_t)m->nblocks + 1);
    m->nblocks++;
    account(m, b, +1);
    return b;
}

const vm_block *vm_model_block_containing(const vm_model *m, uint64_t lo, uint64_t hi)
{
    const vm_block *best = NULL;
    for (size_t i = 0; i < m->nblocks; i++) {
        const vm_block *b = &m->blocks[i];
        if (vm_block_raw(b) < hi && lo < vm_block_raw_end(b)) {
            if (!best || (b->state == AMM_BLOCK_LIVE && best->state != AMM_BLOCK_LIVE) ||
                (b->user < hi && b->user + b->size > lo && !(best->user < hi && best->user + best->size > lo)))
                best = b;
        }
    }
    return best;
}

/* ---- sites, samples, faults, log ---------------------------------------- */

const vm_site *vm_model_site(const vm_model *m, uint32_t id)
{
    if (id == 0 || id >= m->nsites_cap || m->sites[id].id != id) return NULL;
    return &m->sites[id];
}

static void site_set(vm_model *m, const amm_trace_event *ev)
{
    uint32_t id = ev->rec.aux_a;
    if (id == 0 || id >= m->lim.max_sites) {
        m->anomalies++;
        return;
    }
    if (id >= m->nsites_cap) {
        size_t cap = m->nsites_cap ? m->nsites_cap : 64;
        while (cap <= id) cap *= 2;
        vm_site *n = realloc(m->sites, cap * sizeof *n);
        if (!n) return;
        memset(n + m->nsites_cap, 0, (cap - m->nsites_cap) * sizeof *n);
        m->sites = n;
        m->nsites_cap = cap;
    }
    vm_site *s = &m->sites[id];
    if (s->id != id) m->nsites++;
    s->id = id;
    s->line = ev->rec.aux_b;
    /* keep the tail of long paths: the file name matters most */
    size_t n = strnlen(ev->text, sizeof ev->text);
    const char *t = n >= sizeof s->file ? ev->text + n - (sizeof s->file - 1) : ev->text;
    snprintf(s->file, sizeof s->file, "%.*s", (int)(sizeof s->file - 1), t);
}

static void sample_push(vm_model *m, const vm_sample *s)
{
    if (s->marker == 0 && ++m->sample_skip < m->sample_stride) return;
    m->sample_skip = 0;
    if (m->nsamples == m->lim.sample_capacity) {
        /* decimate: keep markers and every other sample */
        size_t w = 0;
        for (size_t r = 0; r < m->nsamples; r++)
            if (m->samples[r].marker || (r & 1) == 0) m->samples[w++] = m->samples[r];
        if (w == m->nsamples) { /* all markers: drop the older half */
            w = m->nsamples / 2;
            memmove(m->samples, m->samples + m->nsamples - w, w * sizeof *m->samples);
        }
        m->nsamples = w;
        m->sample_stride *= 2;
    }
    m->samples[m->nsamples++] = *s;
}

static void fault_push(vm_model *m, const amm_trace_event *ev)
{
    vm_fault *f = &m->faults[m->fault_head];
    m->fault_head = (m->fault_head + 1) % m->lim.fault_capacity;
    if (m->fault_count < m->lim.fault_capacity) m->fault_count++;
    memset(f, 0, sizeof *f);
    f->seq = ev->seq;
    f->ptr = ev->rec.addr;
    f->size = ev->rec.size;
    f->kind = ev->rec.aux_a;
    f->bytes = ev->rec.aux_b;
    if (ev->has_args) {
        f->block = ev->args.addr;
        f->offset = (int64_t)ev->args.size; /* two's complement by the format */
    }
    uint64_t base = f->block ? f->block : f->ptr;
    uint64_t span = f->bytes ? f->bytes : 1;
    switch (f->kind) {
    case AMM_ERR_OVERFLOW:
        f->lo = sat_add(base, f->size);
        if (f->offset > 0 && (uint64_t)f->offset >= f->size) f->lo = sat_add(base, (uint64_t)f->offset);
        f->hi = sat_add(sat_add(base, f->size), span);
        if (f->hi <= f->lo) f->hi = sat_add(f->lo, span);
        break;
    case AMM_ERR_UNDERFLOW:
        f->lo = f->offset < 0 ? base - (uint64_t)(-(f->offset + 1)) - 1 : (base >= span ? base - span : 0);
        f->hi = base;
        if (f->hi <= f->lo) f->hi = f->lo + 1;
        break;
    case AMM_ERR_USE_AFTER_FREE:
        f->lo = f->offset >= 0 ? sat_add(base, (uint64_t)f->offset) : base;
        f->hi = sat_add(f->lo, span);
        break;
    default:
        f->lo = f->ptr;
        f->hi = sat_add(f->ptr, 1);
        break;
    }
    m->faults_total++;
    vm_block *b = block_get(m, base);
    if (b) b->fault = 1;
}

const vm_fault *vm_model_fault_get(const vm_model *m, size_t i)
{
    if (i >= m->fault_count) return NULL;
    size_t cap = m->lim.fault_capacity;
    return &m->faults[(m->fault_head + cap - 1 - i) % cap];
}

const vm_event *vm_model_log_get(const vm_model *m, size_t i)
{
    if (i >= m->log_count) return NULL;
    size_t cap = m->lim.log_capacity;
    return &m->log[(m->log_head + cap - 1 - i) % cap];
}

void vm_event_from_trace(vm_event *out, const amm_trace_event *ev)
{
    memset(out, 0, sizeof *out);
    out->seq = ev->seq;
    out->time_ns = ev->time_ns;
    out->rec = ev->rec;
    if (ev->has_args) {
        out->args = ev->args;
        out->args.op = AMM_TOP_ARGS;
    }
}

void vm_event_to_trace(amm_trace_event *out, const vm_event *ev)
{
    /* no memset of the whole event: its 256-byte text is only meaningful for SITE */
    out->text[0] = '\0';
    out->in_snapshot = 0;
    out->seq = ev->seq;
    out->time_ns = ev->time_ns;
    out->rec = ev->rec;
    out->has_args = ev->args.op == AMM_TOP_ARGS;
    if (out->has_args)
        out->args = ev->args;
    else
        memset(&out->args, 0, sizeof out->args);
}

/* ---- apply ----------------------------------------------------------------- */

static void sample_from(vm_model *m, const amm_trace_event *ev, uint8_t marker)
{
    vm_sample s;
    memset(&s, 0, sizeof s);
    s.seq = ev->seq;
    s.time_ns = ev->time_ns;
    s.marker = marker;
    if (marker == 0) {
        s.live_bytes = ev->rec.addr;
        s.reserved = ev->rec.size;
        s.ext_frag_ppm = ev->rec.aux_a;
        s.live_blocks = ev->rec.aux_b;
        if (ev->has_args) {
            s.resident = ev->args.addr;
            s.free_bytes = ev->args.size;
        }
    } else {
        s.reserved = ev->rec.addr;
        s.free_bytes = ev->rec.size;
        s.ext_frag_ppm = ev->rec.aux_b;
        s.live_bytes = m->live_bytes;
        s.live_blocks = (uint32_t)m->live_blocks;
        if (ev->has_args) s.resident = ev->args.size;
    }
    if (s.ext_frag_ppm > 1000000u) {
        s.ext_frag_ppm = 1000000u;
        m->anomalies++;
    }
    m->last_sample = s;
    m->have_sample = 1;
    sample_push(m, &s);
}

static void apply_free(vm_model *m, const amm_trace_event *ev)
{
    vm_block *b = block_get(m, ev->rec.addr);
    if (!b || b->state != AMM_BLOCK_LIVE) {
        m->anomalies++;
        return;
    }
    if (ev->rec.aux_a == 1) {
        account(m, b, -1);
        b->state = AMM_BLOCK_QUARANTINED;
        account(m, b, +1);
    } else {
        block_remove(m, b);
    }
}

static void apply_resize(vm_model *m, const amm_trace_event *ev)
{
    /* REALLOC (old = args.addr) and MOVE: the new block inherits the old one's identity */
    vm_block keep;
    int have = 0;
    if (ev->has_args) {
        vm_block *old = block_get(m, ev->args.addr);
        if (old) {
            keep = *old;
            have = 1;
            /* a realloc that moves retires the old block like a free: into quarantine when it
             * fits (a QUARANTINE_RELEASE follows), else straight back; a compaction move never */
            uint64_t extent = vm_block_raw_end(old) - vm_block_raw(old);
            uint32_t how = ev->args.aux_a;
            int to_quarantine = (how & AMM_TRACE_REALLOC_OLD_KNOWN)
                                    ? (how & AMM_TRACE_REALLOC_OLD_QUARANTINED) != 0
                                    : m->quarantine_limit && extent <= m->quarantine_limit; /* older writers: infer */
            if (ev->rec.op == AMM_TOP_REALLOC && old->user != ev->rec.addr && old->state == AMM_BLOCK_LIVE &&
                to_quarantine) {
                account(m, old, -1);
                old->state = AMM_BLOCK_QUARANTINED;
                old->refcount = 1;
                account(m, old, +1);
            } else {
                block_remove(m, old);
            }
        }
    }
    if (!have) m->anomalies++;
    vm_block *b = block_insert(m, &ev->rec, ev->seq);
    if (!b || !have) return;
    b->refcount = keep.refcount;
    b->fault = keep.fault;
    if (ev->rec.op == AMM_TOP_MOVE) {
        b->born_seq = keep.born_seq;
        b->site = keep.site;
        b->flags = keep.flags;
        b->moved_from = keep.user;
        b->moved_seq = ev->seq;
        m->moves++;
    } else if (keep.user == b->user) {
        b->born_seq = keep.born_seq;
    }
}

static void apply_pool(vm_model *m, const amm_trace_event *ev)
{
    uint64_t stride = ev->has_args ? ev->args.addr : 0;
    uint64_t front = ev->has_args ? ev->args.size : 0;
    uint64_t slots = ev->rec.aux_a;
    if (stride == 0) stride = ev->rec.size ? ev->rec.size : 1;
    uint64_t bytes = slots && stride <= UINT64_MAX / slots ? slots * stride : stride;
    long ri = vm_model_region_of(m, ev->rec.addr);
    if (ri >= 0 && m->regions[ri].base == ev->rec.addr && m->regions[ri].kind == VM_REGION_POOL &&
        m->regions[ri].size >= bytes) {
        m->regions[ri].id = ev->rec.aux_b; /* the slab's REGION_MAP came first: describe it */
    } else {
        ri = region_insert(m, ev->rec.addr, bytes, VM_REGION_POOL, ev->rec.aux_b);
        if (ri < 0) return;
    }
    vm_region *r = &m->regions[ri];
    r->block_size = ev->rec.size;
    r->stride = stride;
    r->front = front;
    r->slots = (uint32_t)slots;
}

static void apply_region(vm_model *m, const amm_trace_event *ev, int map)
{
    uint64_t base = ev->rec.addr, size = ev->rec.size;
    if (!map) {
        long ri = vm_model_region_of(m, base);
        if (ri < 0 || m->regions[ri].base != base) {
            m->anomalies++;
            return;
        }
        uint64_t end = sat_add(base, m->regions[ri].size);
        region_remove_at(m, (size_t)ri);
        /* blocks left inside an unmapped region are gone */
        for (size_t i = 0; i < m->nblocks;) {
            if (m->blocks[i].user >= base && m->blocks[i].user < end) {
                m->anomalies++;
                block_remove(m, &m->blocks[i]);
            } else {
                i++;
            }
        }
        return;
    }
    unsigned kind = ev->rec.aux_a == AMM_ORIGIN_POOL    ? VM_REGION_POOL
                    : ev->rec.aux_a == AMM_ORIGIN_LARGE ? VM_REGION_LARGE
                                                        : VM_REGION_HEAP;
    long existing = vm_model_region_of(m, base);
    if (existing >= 0 && m->regions[existing].base == base && m->regions[existing].kind == VM_REGION_POOL &&
        kind == VM_REGION_POOL)
        return; /* the pool record already described this slab */
    region_insert(m, base, size, kind, ev->rec.aux_b);
}

static void log_push(vm_model *m, const amm_trace_event *ev)
{
    vm_event_from_trace(&m->log[m->log_head], ev);
    m->log_head = (m->log_head + 1) % m->lim.log_capacity;
    if (m->log_count < m->lim.log_capacity) m->log_count++;
}

void vm_model_apply(vm_model *m, const amm_trace_event *ev)
{
    const amm_trace_record *rec = &ev->rec;
    m->events++;
    m->last_seq = ev->seq;
    m->last_time_ns = ev->time_ns;
    m->op_counts[rec->op < AMM_TOP_COUNT ? rec->op : AMM_TOP_COUNT]++;
    log_push(m, ev);
    switch (rec->op) {
    case AMM_TOP_MANAGER_CREATE:
        m->managers++;
        m->canary = rec->aux_a <= 4096 ? rec->aux_a : 4096;
        m->quarantine_limit = rec->size;
        break;
    case AMM_TOP_MANAGER_DESTROY:
        vm_model_clear_heap(m);
        break;
    case AMM_TOP_REGION_MAP: apply_region(m, ev, 1); break;
    case AMM_TOP_REGION_UNMAP: apply_region(m, ev, 0); break;
    case AMM_TOP_POOL_CREATE: apply_pool(m, ev); break;
    case AMM_TOP_ALLOC:
    case AMM_TOP_COPY: block_insert(m, rec, ev->seq); break;
    case AMM_TOP_LIVE: {
        vm_block *b = block_insert(m, rec, ev->seq);
        if (b && ev->has_args) {
            b->refcount = ev->args.aux_a;
            if (ev->args.aux_b == AMM_BLOCK_QUARANTINED) {
                account(m, b, -1);
                b->state = AMM_BLOCK_QUARANTINED;
                account(m, b, +1);
            }
        }
        break;
    }
    case AMM_TOP_FREE: apply_free(m, ev); break;
    case AMM_TOP_QUARANTINE_RELEASE: {
        vm_block *b = block_get(m, rec->addr);
        if (b && b->state == AMM_BLOCK_QUARANTINED)
            block_remove(m, b);
        else
            m->anomalies++;
        break;
    }
    case AMM_TOP_REALLOC:
    case AMM_TOP_MOVE: apply_resize(m, ev); break;
    case AMM_TOP_RETAIN:
    case AMM_TOP_RELEASE: {
        vm_block *b = block_get(m, rec->addr);
        if (b && rec->aux_a > 0)
            b->refcount = rec->aux_a;
        else if (!b)
            m->anomalies++;
        break;
    }
    case AMM_TOP_DEFRAG_BEGIN:
        m->defrags++;
        sample_from(m, ev, 1);
        break;
    case AMM_TOP_DEFRAG_END: sample_from(m, ev, 2); break;
    case AMM_TOP_SAMPLE: sample_from(m, ev, 0); break;
    case AMM_TOP_FAULT: fault_push(m, ev); break;
    case AMM_TOP_SITE: site_set(m, ev); break;
    case AMM_TOP_DROPPED: m->dropped += rec->aux_a; break;
    case AMM_TOP_SNAPSHOT_BEGIN:
        vm_model_clear_heap(m);
        m->in_snapshot = 1;
        break;
    case AMM_TOP_SNAPSHOT_END: m->in_snapshot = 0; break;
    case VM_OP_STREAM_START:
        /* a new program: its heap, samples, faults and counters start afresh (the log keeps going) */
        vm_model_clear_heap(m);
        m->nsamples = 0;
        m->sample_stride = 1;
        m->sample_skip = 0;
        m->have_sample = 0;
        m->fault_count = 0;
        m->faults_total = m->anomalies = m->untracked = m->dropped = 0;
        m->defrags = m->moves = m->managers = 0;
        m->streams++;
        m->canary = 16;
        m->quarantine_limit = 0;
        break;
    default: break; /* NOP, PURGE, CHECK, THREAD_NAME, STRING, ARGS: logged only */
    }
}

/* ---- text ------------------------------------------------------------------ */

static int cmp_block_user(const void *a, const void *b)
{
    const vm_block *x = *(const vm_block *const *)a, *y = *(const vm_block *const *)b;
    return x->user < y->user ? -1 : x->user > y->user;
}

typedef struct vm_buf {
    char *p;
    size_t len, used;
} vm_buf;

static void buf_add(vm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));


static void buf_add(vm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = b->used < b->len ? b->p + b->used : NULL;
    size_t room = b->used < b->len ? b->len - b->used : 0;
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0) b->used += (size_t)n;
}

int vm_model_picture(const vm_model *m, size_t ri, char *out, size_t len)
{
    vm_buf b = {out, len, 0};
    if (len) out[0] = '\0';
    if (ri >= m->nregions) {
        buf_add(&b, "(no region %zu)", ri);
        return (int)b.used;
    }
    const vm_region *r = &m->regions[ri];
    size_t n = 0;
    for (size_t i = 0; i < m->nblocks; i++)
        if (vm_model_region_of(m, m->blocks[i].user) == (long)ri) n++;
    const vm_block **list = n ? malloc(n * sizeof *list) : NULL;
    if (n && !list) {
        buf_add(&b, "(out of memory)");
        return (int)b.used;
    }
    size_t k = 0;
    for (size_t i = 0; i < m->nblocks && k < n; i++)
        if (vm_model_region_of(m, m->blocks[i].user) == (long)ri) list[k++] = &m->blocks[i];
    if (n) qsort(list, n, sizeof *list, cmp_block_user);
    buf_add(&b, "%s#%" PRIu32 " [", vm_region_kind_name(r->kind), r->id);
    uint64_t at = r->base, end = sat_add(r->base, r->size);
    const char *sep = "";
    for (size_t i = 0; i < n; i++) {
        uint64_t raw = vm_block_raw(list[i]), raw_end = vm_block_raw_end(list[i]);
        if (raw > at) {
            buf_add(&b, "%sF%" PRIu64, sep, raw - at);
            sep = " ";
        }
        buf_add(&b, "%s%c%" PRIu64, sep, list[i]->state == AMM_BLOCK_LIVE ? 'U' : 'Q', raw_end - raw);
        if (list[i]->refcount > 1) buf_add(&b, "x%" PRIu32, list[i]->refcount);
        if (list[i]->fault) buf_add(&b, "!");
        sep = " ";
        if (raw_end > at) at = raw_end;
    }
    if (end > at) buf_add(&b, "%sF%" PRIu64, sep, end - at);
    buf_add(&b, "]");
    free(list);
    return (int)b.used;
}

static void fmt_site(const vm_model *m, uint32_t id, char *buf, size_t len)
{
    const vm_site *s = vm_model_site(m, id);
    if (s) {
        const char *slash = strrchr(s->file, '/');
        if (s->line) snprintf(buf, len, " at %s:%" PRIu32, slash ? slash + 1 : s->file, s->line);
        else snprintf(buf, len, " at %s", slash ? slash + 1 : s->file); /* line 0: no line known */
    } else if (id) {
        snprintf(buf, len, " site %" PRIu32, id);
    } else {
        buf[0] = '\0';
    }
}

int vm_event_format(const vm_model *m, const vm_event *ev, char *buf, size_t len)
{
    const amm_trace_record *r = &ev->rec;
    char site[128];
    int has_args = ev->args.op == AMM_TOP_ARGS;
    const char *name = op_name(r->op);
    switch (r->op) {
    case AMM_TOP_ALLOC:
    case AMM_TOP_LIVE:
    case AMM_TOP_COPY:
        fmt_site(m, r->aux_b & 0xFFFFFFu, site, sizeof site);
        return snprintf(buf, len, "%8" PRIu64 " %-8s 0x%" PRIx64 " %" PRIu64 " B a%u%s", ev->seq, name, r->addr,
                        r->size, 1u << (r->align_log2 & 31), site);
    case AMM_TOP_REALLOC:
        return snprintf(buf, len, "%8" PRIu64 " %-8s 0x%" PRIx64 " -> 0x%" PRIx64 " %" PRIu64 " B", ev->seq, name,
                        has_args ? ev->args.addr : 0, r->addr, r->size);
    case AMM_TOP_MOVE:
        return snprintf(buf, len, "%8" PRIu64 " %-8s 0x%" PRIx64 " -> 0x%" PRIx64 " %" PRIu64 " B", ev->seq, name,
                        has_args ? ev->args.addr : 0, r->addr, r->size);
    case AMM_TOP_FREE:
        return snprintf(buf, len, "%8" PRIu64 " %-8s 0x%" PRIx64 " %" PRIu64 " B%s", ev->seq, name, r->addr, r->size,
                        r->aux_a == 1 ? " (quarantined)" : "");
    case AMM_TOP_RETAIN:
    case AMM_TOP_RELEASE:
        return snprintf(buf, len, "%8" PRIu64 " %-8s 0x%" PRIx64 " refs=%" PRIu32, ev->seq, name, r->addr, r->aux_a);
    case AMM_TOP_FAULT:
        return snprintf(buf, len, "%8" PRIu64 " FAULT %s at 0x%" PRIx64 " (%" PRIu32 " B, block %" PRIu64 " B)",
                        ev->seq, err_name(r->aux_a), r->addr, r->aux_b, r->size);
    case AMM_TOP_POOL_CREATE:
        return snprintf(buf, len, "%8" PRIu64 " %-8s #%" PRIu32 " 0x%" PRIx64 " %" PRIu32 " x %" PRIu64 " B",
                        ev->seq, name, r->aux_b, r->addr, r->aux_a, r->size);
    case AMM_TOP_REGION_MAP:
    case AMM_TOP_REGION_UNMAP:
        return snprintf(buf, len, "%8" PRIu64 " %-8s #%" PRIu32 " 0x%" PRIx64 " %" PRIu64 " KiB", ev->seq, name,
                        r->aux_b, r->addr, r->size >> 10);
    case AMM_TOP_DEFRAG_BEGIN:
    case AMM_TOP_DEFRAG_END:
    case AMM_TOP_SAMPLE: {
        uint32_t ppm = r->op == AMM_TOP_SAMPLE ? r->aux_a : r->aux_b;
        return snprintf(buf, len, "%8" PRIu64 " %-8s frag %.1f%%", ev->seq, name, (double)(ppm % 1000001u) / 10000.0);
    }
    case AMM_TOP_SITE: {
        const vm_site *s = vm_model_site(m, r->aux_a);
        if (r->aux_b == 0) /* line 0: no line known */
            return snprintf(buf, len, "%8" PRIu64 " %-8s #%" PRIu32 " %s", ev->seq, name, r->aux_a, s ? s->file : "?");
        return snprintf(buf, len, "%8" PRIu64 " %-8s #%" PRIu32 " %s:%" PRIu32, ev->seq, name, r->aux_a,
                        s ? s->file : "?", r->aux_b);
    }
    case AMM_TOP_CHECK:
        return snprintf(buf, len, "%8" PRIu64 " %-8s %" PRIu32 " problems", ev->seq, name, r->aux_a);
    case AMM_TOP_QUARANTINE_RELEASE:
        return snprintf(buf, len, "%8" PRIu64 " unquarantine 0x%" PRIx64 " %" PRIu64 " B", ev->seq, r->addr, r->size);
    case AMM_TOP_DROPPED:
        return snprintf(buf, len, "%8" PRIu64 " DROPPED %" PRIu32 " records", ev->seq, r->aux_a);
    default:
        return snprintf(buf, len, "%8" PRIu64 " %-8s 0x%" PRIx64 " %" PRIu64, ev->seq, name, r->addr, r->size);
    }
}
