/*
 * ops_trace.c - a recorded trace (read with <amm/trace.h>) turned into an op
 * list, so a trace and a crash input replay through the same executor.
 *
 * Addresses become slots: every block that appears (alloc, realloc, copy, a
 * snapshot's live record) takes a free slot, and keeps it through reallocs and
 * compaction moves until it is freed.  Two address maps are kept: live
 * addresses -> slot, and freed addresses -> the slot that freed them (for a
 * later double free or write after free).  Faults the writer recorded become
 * the misuse op that provokes the same fault where there is one.  Records
 * that change no block (regions, samples, sites) produce no op.
 *
 * Memory is bounded by the number of live and freed addresses (each map
 * entry is 16 bytes), and slots by AMM_OPS_MAX_SLOT.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <amm/trace.h>

#include "ops.h"

#define MAP_MAX ((size_t)1 << 22) /* entries per address map */

/* Open addressing: address -> slot.  Key 0 = empty, UINT64_MAX = deleted. */
typedef struct addr_map {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap, used;
} addr_map;

static size_t map_hash(uint64_t k, size_t cap) { return (size_t)((k >> 4) * 0x9E3779B97F4A7C15ull >> 7) & (cap - 1); }

static long map_get(const addr_map *m, uint64_t key) {
    if (!m->cap || key == 0 || key == UINT64_MAX) return -1;
    for (size_t i = map_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) return (long)m->vals[i];
        if (m->keys[i] == 0) return -1;
    }
}

static void map_del(addr_map *m, uint64_t key) {
    if (!m->cap || key == 0 || key == UINT64_MAX) return;
    for (size_t i = map_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            m->keys[i] = UINT64_MAX;
            return;
        }
        if (m->keys[i] == 0) return;
    }
}

static int map_put(addr_map *m, uint64_t key, uint32_t val);

static int map_grow(addr_map *m) {
    addr_map bigger = {0};
    bigger.cap = m->cap ? m->cap * 2 : 256;
    if (bigger.cap > 2 * MAP_MAX) return -1;
    bigger.keys = calloc(bigger.cap, sizeof *bigger.keys);
    bigger.vals = calloc(bigger.cap, sizeof *bigger.vals);
    if (!bigger.keys || !bigger.vals) {
        free(bigger.keys);
        free(bigger.vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0 && m->keys[i] != UINT64_MAX) map_put(&bigger, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = bigger;
    return 0;
}

/* Inserts or replaces; -1 if the map is full (MAP_MAX) or memory is refused. */
static int map_put(addr_map *m, uint64_t key, uint32_t val) {
    if (key == 0 || key == UINT64_MAX) return 0;
    map_del(m, key);
    if ((m->used + 1) * 2 > m->cap && map_grow(m)) return -1;
    for (size_t i = map_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == 0 || m->keys[i] == UINT64_MAX) {
            if (m->keys[i] == 0) m->used++;
            m->keys[i] = key;
            m->vals[i] = val;
            return 0;
        }
    }
}

static void map_free(addr_map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

typedef struct adapter {
    amm_op_list *out;
    amm_trace_adapt st;
    addr_map live, freed;
    uint32_t *free_slots; /* slots given back, reused first */
    size_t nfree, free_cap;
    uint32_t next_slot;
    uint64_t release_freed; /* address whose RELEASE to 0 makes the next FREE of it redundant */
    uint64_t addr;          /* the current event's address, recorded in the ops it produces */
    char *err;
    size_t err_len;
} adapter;

static int fail(adapter *a, const char *fmt, ...) {
    if (a->err && a->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->err, a->err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int emit(adapter *a, amm_op_kind kind, uint32_t slot, uint64_t size, uint64_t align) {
    amm_op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.addr = a->addr;
    op.slot = slot;
    op.size = size;
    op.align = align;
    if (amm_ops_push(a->out, &op)) return fail(a, "out of memory after %llu ops", (unsigned long long)a->st.ops);
    a->st.ops++;
    return 0;
}

/* The last op emitted, to set fields emit() does not take. */
static amm_op *last(adapter *a) { return &a->out->ops[a->out->count - 1]; }

static long take_slot(adapter *a, uint64_t addr) {
    uint32_t s;
    if (a->nfree) {
        s = a->free_slots[--a->nfree];
    } else if (a->next_slot < AMM_OPS_MAX_SLOT) {
        s = a->next_slot++;
    } else {
        return fail(a, "more than %u blocks live at once", AMM_OPS_MAX_SLOT);
    }
    if (map_put(&a->live, addr, s)) return fail(a, "too many live addresses");
    map_del(&a->freed, addr);
    return s;
}

static int give_slot(adapter *a, uint64_t addr, uint32_t s) {
    map_del(&a->live, addr);
    if (map_put(&a->freed, addr, s)) return fail(a, "too many freed addresses");
    if (a->nfree == a->free_cap) {
        size_t cap = a->free_cap ? a->free_cap * 2 : 256;
        uint32_t *grown = realloc(a->free_slots, cap * sizeof *grown);
        if (!grown) return fail(a, "out of memory");
        a->free_slots = grown;
        a->free_cap = cap;
    }
    a->free_slots[a->nfree++] = s;
    return 0;
}

static uint64_t align_of(const amm_trace_record *r) { return r->align_log2 < 64 ? (uint64_t)1 << r->align_log2 : 0; }

/* A new block at rec.addr (alloc, snapshot live, or a copy/realloc whose source is unknown). */
static int new_block(adapter *a, const amm_trace_event *ev, unsigned rc) {
    long s = take_slot(a, ev->rec.addr);
    if (s < 0) return -1;
    if (emit(a, AMM_OP_ALLOC, (uint32_t)s, ev->rec.size, align_of(&ev->rec))) return -1;
    last(a)->flags = (ev->rec.aux_b >> 26) & 7u;
    for (unsigned i = 1; i < rc && i < 1000; i++)
        if (emit(a, AMM_OP_RETAIN, (uint32_t)s, 0, 0)) return -1;
    return 0;
}

static int on_free(adapter *a, const amm_trace_event *ev) {
    if (ev->rec.addr == a->release_freed) {
        a->release_freed = 0; /* already freed by the release */
        return 0;
    }
    long s = map_get(&a->live, ev->rec.addr);
    if (s < 0) return (void)a->st.unmatched++, 0;
    return emit(a, AMM_OP_FREE, (uint32_t)s, 0, 0) || give_slot(a, ev->rec.addr, (uint32_t)s);
}

static int on_realloc(adapter *a, const amm_trace_event *ev) {
    uint64_t old = ev->has_args ? ev->args.addr : 0;
    long s = map_get(&a->live, old);
    if (s < 0) {
        if (old) a->st.unmatched++;
        return new_block(a, ev, 1);
    }
    if (emit(a, AMM_OP_REALLOC, (uint32_t)s, ev->rec.size, align_of(&ev->rec))) return -1;
    map_del(&a->live, old);
    return map_put(&a->live, ev->rec.addr, (uint32_t)s) ? fail(a, "too many live addresses") : 0;
}

static int on_copy(adapter *a, const amm_trace_event *ev) {
    long src = map_get(&a->live, ev->has_args ? ev->args.addr : 0);
    if (src < 0) return new_block(a, ev, 1); /* a foreign source: the copy is a plain block */
    long s = take_slot(a, ev->rec.addr);
    if (s < 0) return -1;
    if (emit(a, AMM_OP_COPY, (uint32_t)s, ev->rec.size, 0)) return -1;
    last(a)->src = (uint32_t)src;
    return 0;
}

static int on_refcount(adapter *a, const amm_trace_event *ev, amm_op_kind kind) {
    long s = map_get(&a->live, ev->rec.addr);
    if (s < 0) return (void)a->st.unmatched++, 0;
    if (emit(a, kind, (uint32_t)s, 0, 0)) return -1;
    if (kind == AMM_OP_RELEASE && ev->rec.aux_a == 0) {
        a->release_freed = ev->rec.addr;
        return give_slot(a, ev->rec.addr, (uint32_t)s);
    }
    return 0;
}

static int on_move(adapter *a, const amm_trace_event *ev) {
    long s = map_get(&a->live, ev->has_args ? ev->args.addr : 0);
    if (s < 0) return (void)a->st.unmatched++, 0;
    map_del(&a->live, ev->args.addr);
    return map_put(&a->live, ev->rec.addr, (uint32_t)s) ? fail(a, "too many live addresses") : 0;
}

/* A recorded fault becomes the misuse op that provokes it, where one does. */
static int on_fault(adapter *a, const amm_trace_event *ev) {
    uint64_t block = ev->has_args ? ev->args.addr : 0, bytes = ev->rec.aux_b;
    long live = map_get(&a->live, block ? block : ev->rec.addr);
    long freed = map_get(&a->freed, block ? block : ev->rec.addr);
    uint32_t k = bytes ? (uint32_t)(bytes - 1) : 0;
    switch (ev->rec.aux_a) {
    case AMM_ERR_OVERFLOW:
    case AMM_ERR_UNDERFLOW:
        if (live < 0) break;
        if (emit(a, ev->rec.aux_a == AMM_ERR_OVERFLOW ? AMM_OP_OVERFLOW : AMM_OP_UNDERFLOW, (uint32_t)live, 0, 0)) return -1;
        last(a)->k = k;
        return 0;
    case AMM_ERR_USE_AFTER_FREE:
        if (freed < 0) break;
        if (emit(a, AMM_OP_WRITE_AFTER_FREE, (uint32_t)freed, 0, 0)) return -1;
        last(a)->k = ev->has_args ? ev->args.size : 0;
        return 0;
    case AMM_ERR_DOUBLE_FREE:
        if (freed < 0) break;
        return emit(a, AMM_OP_DOUBLE_FREE, (uint32_t)freed, 0, 0);
    case AMM_ERR_INTERIOR_POINTER:
        if (live < 0 || ev->rec.addr <= block) break;
        if (emit(a, AMM_OP_INTERIOR_FREE, (uint32_t)live, 0, 0)) return -1;
        last(a)->k = ev->rec.addr - block;
        return 0;
    case AMM_ERR_INVALID_POINTER:
        return emit(a, AMM_OP_FOREIGN, 0, 0, 0);
    case AMM_ERR_SHARED_FREE:
        if (live < 0) break;
        return emit(a, AMM_OP_FREE_SHARED, (uint32_t)live, 0, 0);
    default: break;
    }
    a->st.ignored++;
    return 0;
}

static int on_event(adapter *a, const amm_trace_event *ev) {
    switch (ev->rec.op) {
    case AMM_TOP_ALLOC: return new_block(a, ev, 1);
    case AMM_TOP_LIVE:
        if (ev->has_args && ev->args.aux_b != AMM_BLOCK_LIVE) break;
        return new_block(a, ev, ev->has_args ? ev->args.aux_a : 1);
    case AMM_TOP_FREE: return on_free(a, ev);
    case AMM_TOP_REALLOC: return on_realloc(a, ev);
    case AMM_TOP_COPY: return on_copy(a, ev);
    case AMM_TOP_RETAIN: return on_refcount(a, ev, AMM_OP_RETAIN);
    case AMM_TOP_RELEASE: return on_refcount(a, ev, AMM_OP_RELEASE);
    case AMM_TOP_MOVE: return on_move(a, ev);
    case AMM_TOP_FAULT: return on_fault(a, ev);
    case AMM_TOP_POOL_CREATE:
        if (emit(a, AMM_OP_POOL_CREATE, 0, ev->rec.size, align_of(&ev->rec))) return -1;
        last(a)->n = ev->rec.aux_a;
        return 0;
    case AMM_TOP_DEFRAG_BEGIN:
        if (emit(a, AMM_OP_DEFRAGMENT, 0, 0, 0)) return -1;
        last(a)->flags = ev->rec.aux_a & 3u;
        return 0;
    case AMM_TOP_CHECK: return emit(a, AMM_OP_CHECK, 0, 0, 0);
    default: break;
    }
    a->st.ignored++;
    return 0;
}

int amm_ops_from_trace(const uint8_t *data, size_t len, amm_op_list *out, amm_trace_adapt *st,
                       void (*progress)(uint64_t done, uint64_t total, void *user), void *user, char *err,
                       size_t err_len) {
    adapter a;
    memset(&a, 0, sizeof a);
    a.out = out;
    a.err = err;
    a.err_len = err_len;
    char oerr[256];
    amm_trace_reader *r = amm_trace_open_mem(data, len, oerr, sizeof oerr);
    if (!r) return fail(&a, "unreadable trace: %s", oerr);
    amm_trace_event *ev = malloc(sizeof *ev);
    int rc = ev ? 0 : fail(&a, "out of memory");
    uint64_t last_damage = UINT64_MAX;
    while (rc == 0) {
        amm_trace_status s = amm_trace_next(r, ev);
        if (s == AMM_TRACE_OK) {
            a.st.events++;
            a.addr = ev->rec.op == AMM_TOP_POOL_CREATE || ev->rec.op == AMM_TOP_DEFRAG_BEGIN ? 0 : ev->rec.addr;
            rc = on_event(&a, ev);
            if (progress && (a.st.events & 4095) == 0) progress(amm_trace_offset(r), len, user);
        } else if (s == AMM_TRACE_DAMAGED) {
            a.st.damaged++;
            if (amm_trace_offset(r) == last_damage) break; /* no progress: stop rather than spin */
            last_damage = amm_trace_offset(r);
        } else if (s == AMM_TRACE_FATAL) {
            rc = fail(&a, "unreadable trace: %s", amm_trace_error(r));
        } else {
            break; /* END, or AGAIN (cannot happen in memory) */
        }
    }
    if (progress && rc == 0) progress(len, len, user);
    free(ev);
    amm_trace_close(r);
    map_free(&a.live);
    map_free(&a.freed);
    free(a.free_slots);
    if (st) *st = a.st;
    return rc;
}
