/*
 * internal.h - structures and cross-file functions of libamm.  Not installed.
 *
 * Cross-file names carry the amm__ prefix.  Every function here that takes an
 * amm_manager expects its lock (m->lock) to be held unless it says otherwise.
 *
 * The block record (amm__block) lives out of band: in record slabs mapped by
 * meta.c, never next to user memory, so an overflow can damage canaries but
 * never the allocator's metadata.
 *
 * Heap chunk layout (one chunk = one amm__block of origin HEAP):
 *
 *   raw                     user                  user+size          raw+raw_size
 *    |<--- front canary ---->|<---- user bytes ---->|<-- back canary + slack -->|
 *    |   front = user - raw  |      size bytes      |  >= canary bytes, to the  |
 *    |   (>= canary, 16-mult)|                      |  16-byte chunk boundary   |
 *
 * Pool slot layout (slot i of a pool, stride bytes each, from the slab base):
 *
 *   base + i*stride          user = slot + front      user+size       slot+stride
 *    |<--- front canary ---->|<--- user bytes ------->|<-- back canary --------->|
 *
 * Large mapping: the same as a heap chunk, raw = the mapping base; the front
 * may hold alignment padding before the canary (all of it is canary bytes).
 *
 * Invariants (checked by amm_check, see stats.c):
 *   I1 per region: chunks tile the region: raw(next) = raw(prev) + raw_size(prev)
 *   I2 no two physically adjacent chunks are both FREE (coalescing is immediate)
 *   I3 every FREE chunk is on the free list of its size class, and only those
 *   I4 registry holds exactly the LIVE, QUARANTINED and BINNED heap chunks, keyed by user
 *   I5 m->heap_free_bytes = sum of FREE and BINNED chunk sizes
 *   I6 m->live_blocks/live_bytes = sum over LIVE blocks of 1/size (heap+pool+large)
 *   I7 m->q_blocks/q_bytes = quarantine list length / sum of raw_size
 *   I8 m->reserved = sum of region sizes + pool slab bytes + large mapping bytes
 *   I9 per pool: used + quarantined + free = block_count; free = free stack depth
 *   I10 the dirty lists (m->dirty_head, m->dirty_aged) hold exactly the FREE chunks flagged
 *       AMM__CHUNK_DIRTY, those flagged AMM__CHUNK_AGED on the aged one
 *   I11 the reuse lists (m->reuse) hold exactly the AMM__BINNED chunks, each in the list of its
 *       size; m->reuse_blocks/reuse_bytes count them (at most cfg.reuse bytes); they stay in the
 *       registry (I4) and count as free bytes (I5); m->reuse_loose is NULL or one of them
 *   I12 m->pool_rank holds every pool once, by (block_size, creation index) ascending, each with
 *       its pool's block_size
 *
 * A thread cache (tcache.c) holds AMM__CACHED heap chunks: in the registry,
 * counted in their region's used_chunks, neither live nor free.  Every check
 * and walk empties the caches first (amm__tcache_flush_all), so the
 * invariants above never meet one.
 */
#ifndef AMM_INTERNAL_H
#define AMM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

#include "amm/amm.h"
#include "amm/trace.h"

#define AMM__GRANULE ((size_t)16)       /* heap chunk granularity and minimum alignment */
#define AMM__MIN_SPLIT ((size_t)32)     /* a remainder smaller than this stays as slack */
#define AMM__CHUNK_CLEAN 0x80u          /* FREE heap chunk flag: its whole pages are not resident */
#define AMM__CHUNK_DIRTY 0x40u          /* FREE heap chunk flag: on a dirty list (heap.c, purging) */
#define AMM__CHUNK_AGED 0x20u           /* ... the aged one */
#define AMM__SL_LOG 4                   /* TLSF second-level subdivisions: 16 */
#define AMM__SL_COUNT (1u << AMM__SL_LOG)
#define AMM__FL_COUNT 40                /* first levels: chunk sizes up to 2^46 */
#define AMM__BINNED 3                   /* internal block state: a freed heap chunk kept whole for reuse */
#define AMM__CACHED 4                   /* internal block state: a heap chunk held by a thread cache (tcache.c) */
#define AMM__REUSE_CHUNK_MAX ((size_t)4160) /* chunks up to this size are kept for reuse: 4 KiB, canaries <= 32 */
#define AMM__REUSE_CLASSES (AMM__REUSE_CHUNK_MAX / 16 + 1)

_Static_assert((AMM__GRANULE & (AMM__GRANULE - 1)) == 0, "granule must be a power of two");
_Static_assert(AMM__MIN_SPLIT % AMM__GRANULE == 0, "split remainders are whole granules");
_Static_assert(AMM__SL_COUNT <= 32, "second-level bitmap is 32 bits");
_Static_assert(AMM__FL_COUNT <= 64, "first-level bitmap is 64 bits");

typedef struct amm__region amm__region;
typedef struct amm__block amm__block;

/* A block record: a heap chunk, a pool slot or a large mapping.  104 bytes:
 * a free heap chunk's list links share room with the serial and site that
 * only a block (live, quarantined, kept, or a pool slot) has, and the region
 * with the pool (origin says which). */
struct amm__block {
    uintptr_t raw;         /* first byte of the chunk/slot/mapping (always valid) */
    size_t raw_size;       /* bytes of the chunk/slot/mapping (always valid) */
    uintptr_t user;        /* user pointer; valid when state != FREE (and in a free pool slot) */
    size_t size;           /* requested bytes; as user */
    union {
        struct {           /* HEAP FREE: segregated free list links; an unused record: the record free list */
            amm__block *prev_free;
            amm__block *next_free;
        };
        struct {           /* every other record */
            uint64_t serial;    /* allocation serial (0: never allocated, pool slots) */
            const char *file;   /* allocation site; NULL if unknown */
        };
    };
    int line;
    uint32_t refcount;     /* >= 1 when LIVE */
    uint8_t align_log2;    /* alignment the user asked for (after defaulting) */
    uint8_t state;         /* amm_block_state, AMM__BINNED or AMM__CACHED (amm__state_peek: a neighbour's) */
    uint8_t origin;        /* amm_origin */
    uint8_t flags;         /* AMM_ALLOC_* flags kept with the block; AMM__CHUNK_* on a FREE heap chunk */
    union {
        amm__region *region; /* HEAP: the region */
        amm_pool *pool;      /* POOL: the pool (LARGE: neither) */
    };
    amm__block *prev_phys; /* HEAP: neighbours in address order (boundary tags, out of band) */
    amm__block *next_phys;
    union {
        amm__block *q_prev;    /* QUARANTINED: FIFO links, oldest at m->q_head; FREE heap chunk: the dirty list; */
        struct amm__tcache *tc_owner; /* LIVE with AMM__TC_OWNED: the thread cache it came from */
    };
    amm__block *q_next;    /* BINNED: the reuse list of its size; CACHED: its cache's list */
};
_Static_assert(sizeof(amm__block) <= 104, "a block record stays at 104 bytes (RSS: one per block and free span)");

/* The state of a heap chunk's neighbour, read under the manager lock: a
 * thread cache's owner makes its chunks LIVE without that lock (tcache.c),
 * so that byte is written and read atomically (CACHED and LIVE are both in
 * use to a merge: the answer does not depend on the race). */
static inline uint8_t amm__state_peek(const amm__block *b) { return __atomic_load_n(&b->state, __ATOMIC_RELAXED); }

/* The pool of a block, or NULL for a heap chunk or large mapping. */
static inline amm_pool *amm__pool_of(const amm__block *b) { return b->origin == AMM_ORIGIN_POOL ? b->pool : NULL; }

/* A managed heap region: one mapping tiled by chunks. */
struct amm__region {
    uintptr_t base;
    size_t size;
    size_t id;             /* stable id for the trace */
    amm__block *first;     /* lowest chunk */
    size_t used_chunks;    /* LIVE + QUARANTINED chunks in it */
    size_t used_bytes;     /* raw bytes of those chunks (compaction orders regions by it) */
    size_t shadowed;       /* bytes from base the sanitizers may have been told about */
    size_t rank;           /* compaction only: position in fullest-first order */
};

struct amm_pool {
    amm_manager *m;
    uintptr_t base;        /* slab start, aligned to max(align, page) */
    size_t slab_bytes;
    size_t block_size, stride, front, count;
    uint8_t align_log2;
    size_t id;             /* creation index */
    amm__block *slots;     /* count records, one per slot (meta mapping) */
    uint32_t *free_stack;  /* slot indexes; free_top of them are free */
    size_t free_top;
    size_t used, quarantined, high_water;
    size_t tc_held;        /* slots thread caches hold (tcache.c); 0 once they are emptied */
    int tc_kept;           /* a thread cache has kept its slots: used is exact only once they are folded */
    int prefilled;         /* every slot was canary-filled at creation (small slabs) */
    size_t shadowed;       /* bytes from base the sanitizers may have been told about */
};

/* A pool in the manager's by-size order: its block_size beside it, so the
 * search for the smallest fitting pool reads one array, not every pool. */
typedef struct amm__pool_rank {
    uintptr_t block_size;  /* first: the key amm__first_above reads */
    amm_pool *pool;
} amm__pool_rank;
_Static_assert(offsetof(amm__pool_rank, block_size) == 0, "amm__first_above reads the key first");

/* The region table: every heap region, pool slab and large mapping, sorted by base. */
typedef enum amm__range_kind { AMM__RANGE_HEAP, AMM__RANGE_POOL, AMM__RANGE_LARGE } amm__range_kind;
typedef struct amm__range {
    uintptr_t start, end;  /* start first: the key amm__first_above reads */
    amm__range_kind kind;
    void *obj;             /* amm__region*, amm_pool*, or amm__block* */
} amm__range;
_Static_assert(offsetof(amm__range, start) == 0, "amm__first_above reads the key first");

/* Open-addressing hash: user pointer -> heap block record. */
typedef struct amm__registry {
    uintptr_t *keys;       /* 0 = empty */
    amm__block **vals;
    size_t cap;            /* power of two */
    size_t count;
} amm__registry;

/* Record slabs: fixed-size records handed out from mapped slabs. */
typedef struct amm__meta {
    amm__block *free_list;   /* linked through next_free */
    void *slabs;             /* list of slabs (first word links them) */
    size_t records_live;
} amm__meta;

struct amm__tracer; /* trace_writer.c */

/* A manager's lock: one compare-and-swap to take it and one exchange to give
 * it back when nobody waits (no call, no type dispatch); a thread that finds
 * it taken spins briefly (sections are short), then sleeps on a futex.
 * state: 0 free, 1 held, 2 held and someone may be waiting. */
typedef struct amm__mutex {
    atomic_int state;
} amm__mutex;

/* ---- thread caches (tcache.c explains them) ---- */
#define AMM__TC_CHUNK_MAX ((size_t)1024) /* heap chunks up to this many bytes (guards included) are cached */
#define AMM__TC_CLASSES (AMM__TC_CHUNK_MAX / AMM__GRANULE + 1)
#define AMM__TC_SERIALS 64               /* allocation serials a cache takes at a time */
#define AMM__TC_OWNED 0x10u              /* LIVE block flag: a cache handed it out; tc_owner names the cache */
#define AMM__TC_FREEING 0x08u            /* ... replaced by this when its owner's short free claims it */
#define AMM__TC_MAP 1024                 /* blocks a cache remembers handing out (direct-mapped by address) */
#define AMM__TC_POOLS 4                  /* pools a cache keeps slots of (the first its owner uses) */
#define AMM__TC_LISTS (AMM__TC_CLASSES + AMM__TC_POOLS) /* heap classes, then pool j at AMM__TC_CLASSES + j */

/* A block a cache handed out, by user pointer: the owner's free finds its record here. */
typedef struct amm__tc_entry {
    _Atomic(uintptr_t) user;   /* 0: empty; the owner sets it, a free elsewhere may clear it (amm__tcache_give_back) */
    amm__block *b;
} amm__tc_entry;

typedef struct amm__tcache amm__tcache;
struct amm__tcache {
    /* read by the owner and by frees elsewhere, written rarely (a cache line of its own) */
    _Atomic(amm_manager *) m;  /* NULL once the manager is destroyed */
    const void *owner;         /* the owning thread's tag (amm__tcache_self) */
    atomic_int stop;           /* a flush wants the cache: the owner keeps out (amm__tc_enter) */
    int enabled;               /* it may hand out and take back (set by a refill, cleared by a flush: manager lock) */
    size_t pool_limit;         /* requests smaller are the pools' first (not NO_POOL): not served here (as enabled) */
    amm_pool *pool[AMM__TC_POOLS]; /* the pools of lists AMM__TC_CLASSES + j (set once, by the owner, locked) */
    int orphan;                /* its thread has exited: no chunk goes back to it (manager lock) */
    amm__tcache *t_next;       /* the owning thread's caches (that thread only) */
    amm__tcache *m_prev, *m_next; /* the manager's caches (manager lock) */
    /* the owner's, written on every alloc and free it serves */
    _Alignas(64) atomic_int busy; /* the owner is inside (amm__tc_enter) */
    size_t live_blocks, live_bytes, allocs, frees; /* not yet in the manager's counters (mod 2^64) */
    uint64_t serial_next, serial_end;       /* serials taken from the manager, not yet used */
    atomic_size_t taken;       /* chunks it handed out less those its owner freed into it (relaxed; the owner's) */
    size_t pool_used[AMM__TC_POOLS]; /* slots of pool[j] it handed out less those freed into it, not yet folded */
    amm__block *local[AMM__TC_LISTS]; /* the owner's chunks by list (heap: chunk bytes / 16), through q_next */
    /* written by frees elsewhere (under the manager's lock) */
    _Alignas(64) size_t held;  /* chunks given to it (refills, frees): held - taken are in it */
    size_t taken_seen;         /* taken, as last read */
    /* chunks freed back to it, pushed under the manager's lock, taken whole by the owner */
    _Alignas(64) _Atomic(amm__block *) remote[AMM__TC_LISTS];
    amm__tc_entry map[AMM__TC_MAP]; /* the owner's: what it handed out, by amm__tc_slot (a later one evicts) */
};

/* How the owner's fast path and a flush keep apart.  The owner marks the
 * cache busy, then looks for a stop; a flush (under the manager's lock)
 * marks stop, then waits until the cache is not busy.  One of the two must
 * see the other's mark: with amm__tc_asym (membarrier registered) the owner
 * pays no fence, as the flush makes every running thread of the process
 * execute one (membarrier(2)) between its mark and its look; otherwise the
 * owner's mark is a sequentially consistent exchange. */
extern atomic_int amm__tc_asym;
static inline int amm__tc_enter(amm__tcache *c) {
    if (atomic_load_explicit(&amm__tc_asym, memory_order_relaxed)) {
        atomic_store_explicit(&c->busy, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst); /* the compiler keeps the mark before the look */
    } else {
        atomic_exchange_explicit(&c->busy, 1, memory_order_seq_cst);
    }
    if (!atomic_load_explicit(&c->stop, memory_order_seq_cst)) return 1; /* (a plain load on x86) */
    atomic_store_explicit(&c->busy, 0, memory_order_release);
    return 0;
}
static inline void amm__tc_leave(amm__tcache *c) { atomic_store_explicit(&c->busy, 0, memory_order_release); }

/* The map entry of a user pointer. */
static inline size_t amm__tc_slot(uintptr_t user) {
    return (size_t)((user >> 4) ^ (user >> 15)) & (AMM__TC_MAP - 1);
}

struct amm_manager {
    /* The lock alone in the first cache line (a thread spinning on it takes
     * nothing else from the holder), then what every alloc and free writes in
     * the next two lines: spread over the struct, they were 4 more lines to
     * move between cores when two threads share a manager. */
    amm__mutex lock;
    _Alignas(64) size_t live_blocks; /* counters: see the invariants above */
    size_t live_bytes, peak_live_bytes;
    size_t total_allocs, total_frees;
    uint64_t serial;
    size_t heap_free_bytes;
    amm__block *reuse_loose;   /* the one kept chunk that was freed next to a free span, or NULL */
    size_t reuse_blocks, reuse_bytes;
    size_t pool_slots_used, large_count;
    struct amm__tracer *tracer;  /* NULL: tracing off, no cost beyond this test */
    size_t ops_since_check, ops_since_sample;
    const void *tc_first;      /* the first thread that called in (its tag, amm__tcache_self) */
    int tc_shared;             /* a second thread has called in: allocating threads get caches (tcache.c) */

    /* read by every call, written at creation (and by the fork handlers) */
    _Alignas(64) amm_manager *all_prev, *all_next; /* every live manager, for fork (manager.c) */
    amm_config cfg;
    size_t canary;           /* cfg.canary */
    size_t front;            /* heap front canary bytes: canary rounded up to the granule */
    uint8_t pattern[8];      /* canary byte for address a is pattern[a & 7] */
    uint8_t pattern_run[256]; /* the canary of any 8-aligned 256-byte span: one memcmp/memcpy per span */
    uint64_t secret;
    amm_error_fn on_fault;
    void *on_fault_user;
    amm_move_fn on_move;
    void *on_move_user;

    /* heap */
    uint64_t fl_bitmap;
    uint32_t sl_bitmap[AMM__FL_COUNT];
    amm__block *bins[AMM__FL_COUNT][AMM__SL_COUNT];
    amm__block *reuse[AMM__REUSE_CLASSES]; /* BINNED chunks by raw_size / 16, linked through q_prev/q_next */
    amm__region **regions;   /* in creation order */
    size_t region_count, region_cap, next_region_id;

    amm__registry registry;
    amm__meta meta;
    amm__range *ranges;      /* sorted by start */
    size_t range_count, range_cap;

    amm_pool **pools;        /* creation order */
    size_t pool_count, pool_cap;
    amm__pool_rank *pool_rank; /* the same pools by block_size, then creation order (pool.c) */
    size_t pool_rank_cap;
    uintptr_t pool_lo;       /* every pool slab lies in [pool_lo, pool_lo + pool_span) (span 0: no pool) */
    size_t pool_span;
    size_t pool_max_block;   /* the largest block_size of any pool (0: no pool): a bigger request skips them */

    /* quarantine FIFO */
    amm__block *q_head, *q_tail;
    size_t q_blocks, q_bytes;

    /* the other counters (see invariants above) */
    size_t reserved, pool_slots, faults, bytes_moved;
    size_t purge_dirty;     /* bytes freed into dirty chunks since the last purge (heap.c) */
    uint64_t purge_last_ns; /* when the last purge batch ended */
    amm__block *dirty_head; /* free chunks >= cfg.purge holding freed, maybe resident, pages */
    amm__block *dirty_aged; /* ... dirty since before the last purge */

    amm__tcache *tc_head;      /* every thread cache of this manager (tcache.c) */
};

/* ---- locks (manager.c; the futex calls in os.c) ---- */
void amm__lock(amm_manager *m);
void amm__unlock(amm_manager *m);
int amm__fork_held(void);   /* 1 on the forking thread between amm's prepare and release: every lock is its own */
void amm__fork_wait(void);  /* returns once no fork is being prepared */
void amm__mutex_wait(amm__mutex *mu);  /* os.c: takes mu, sleeping while it is held */
void amm__mutex_wake(amm__mutex *mu);  /* os.c: wakes one waiter */
/* 0 if mu was free and is now held, -1 if it is held. */
static inline int amm__mutex_trylock(amm__mutex *mu) {
    int expect = 0;
    return atomic_compare_exchange_strong_explicit(&mu->state, &expect, 1, memory_order_acquire,
                                                   memory_order_relaxed) ? 0 : -1;
}
static inline void amm__mutex_lock(amm__mutex *mu) {
    if (amm__mutex_trylock(mu) != 0) amm__mutex_wait(mu);
}
static inline void amm__mutex_unlock(amm__mutex *mu) {
    if (atomic_exchange_explicit(&mu->state, 0, memory_order_release) == 2) amm__mutex_wake(mu);
}

/* ---- os.c: every system call about memory lives there ---- */
size_t amm__page_size(void);
void *amm__os_map(size_t bytes);                   /* NULL on failure; zeroed */
void *amm__os_map_aligned(size_t bytes, size_t align, size_t *mapped); /* base aligned; *mapped = bytes */
void amm__os_unmap(void *p, size_t bytes);
/* For mappings whose first `shadowed` bytes the sanitizers were told about (sanitize.h). */
void amm__os_unmap_shadowed(void *p, size_t bytes, size_t shadowed);
size_t amm__os_purge(uintptr_t start, uintptr_t end); /* madvise whole pages inside; returns bytes */
size_t amm__os_resident(uintptr_t start, size_t bytes); /* mincore */
uint64_t amm__os_random(void);
uint64_t amm__os_now_ns(void);                     /* CLOCK_MONOTONIC */
uint16_t amm__thread_id(void);                     /* small 1-based id per thread */
/* Failure injection for fuzzing/tests: the next `after` maps succeed, then
 * maps fail while `fail_count` > 0.  Defaults: never fail. */
void amm__os_inject_failures(uint64_t after, uint64_t fail_count);

/* ---- meta.c ---- */
amm__block *amm__record_new(amm_manager *m);       /* zeroed record; NULL if refused */
void amm__record_free(amm_manager *m, amm__block *b);
void amm__meta_destroy(amm_manager *m);
/* Grows a mapped array of elem-sized items to hold at least need; 0 ok, -1 refused. */
int amm__array_reserve(void **arr, size_t *cap, size_t need, size_t elem);
void amm__array_free(void *arr, size_t cap, size_t elem);

/* ---- registry.c ---- */
int amm__registry_put(amm_manager *m, amm__block *b);   /* key b->user; -1 if refused */
/* Fibonacci hashing: the high bits of the product are the well-mixed ones,
 * so they are folded down onto the bits the table's mask keeps. */
static inline size_t amm__registry_hash(uintptr_t p) {
    uint64_t x = ((uint64_t)p >> 4) * 0x9E3779B97F4A7C15ull; /* user pointers are 16-aligned or more */
    return (size_t)(x >> 32 ^ x >> 48);
}
/* The heap block whose user pointer this is, or NULL (never dereferences user). */
static inline amm__block *amm__registry_get(const amm_manager *m, uintptr_t user) {
    const amm__registry *r = &m->registry;
    if (!r->cap || !user) return NULL;
    size_t mask = r->cap - 1, i = amm__registry_hash(user) & mask;
    while (r->keys[i]) {
        if (r->keys[i] == user) return r->vals[i];
        i = (i + 1) & mask;
    }
    return NULL;
}
void amm__registry_del(amm_manager *m, uintptr_t user);
void amm__registry_destroy(amm_manager *m);
int amm__range_add(amm_manager *m, uintptr_t start, uintptr_t end, amm__range_kind kind, void *obj);
void amm__range_del(amm_manager *m, uintptr_t start);

/* The result of looking a pointer up. */
typedef enum amm__lookup_kind {
    AMM__PTR_BLOCK,      /* b is the block whose user pointer this is (any state) */
    AMM__PTR_INTERIOR,   /* inside an amm range but not a block start; b = the containing block if known */
    AMM__PTR_FOREIGN     /* not in any amm range */
} amm__lookup_kind;
/* amm__lookup (hot.h) classifies a pointer; registry.c has its rare step: */
/* The heap chunk of region reg holding addr, by walking the region (error path only: O(chunks)). */
amm__block *amm__heap_containing(const amm__region *reg, uintptr_t addr);

/* ---- guard.c: canaries, fill patterns, quarantine ---- */
void amm__guard_init(amm_manager *m);
void amm__canary_fill(const amm_manager *m, uintptr_t start, uintptr_t end);
/* Returns the address of the first/last damaged byte in [start,end), or 0. */
uintptr_t amm__canary_first_bad(const amm_manager *m, uintptr_t start, uintptr_t end);
uintptr_t amm__canary_last_bad(const amm_manager *m, uintptr_t start, uintptr_t end);
/* Sets the sanitizer view of b from its state: guards closed and user open when
 * LIVE, the whole chunk closed as freed otherwise (sanitize.h). */
void amm__san_restore(const amm_manager *m, const amm__block *b);
/* 1 if both canaries of b are intact (no report, no repair). */
int amm__guard_intact(const amm_manager *m, const amm__block *b);
/* Writes both canaries of a block (front: [raw, user), back: [user+size, raw+raw_size)). */
void amm__guard_write(const amm_manager *m, const amm__block *b);
/* Checks both canaries; reports each damaged side, repairs it; returns problems found. */
size_t amm__guard_check(amm_manager *m, amm__block *b, const char *operation, const char *file, int line);
/* Checks a quarantined block's freed fill; reports and refills; returns problems found. */
size_t amm__guard_check_freed(amm_manager *m, amm__block *b, const char *operation);
/* Puts a freed block into quarantine (or releases it at once) and evicts the oldest over the bounds. */
void amm__quarantine_push(amm_manager *m, amm__block *b);
/* 1 if a freed b goes into quarantine, 0 if it is released at once. */
static inline int amm__quarantines(const amm_manager *m, const amm__block *b) {
    return m->cfg.quarantine && m->cfg.quarantine_blocks && b->raw_size <= m->cfg.quarantine;
}
/* 1 if b has guard bytes (a canary, or slack after its last byte) to write and check. */
static inline int amm__has_guards(const amm__block *b) {
    return b->raw != b->user || b->user + b->size != b->raw + b->raw_size;
}
void amm__quarantine_flush(amm_manager *m);                           /* evict everything (destroy, defragment) */
/* Evicts the oldest quarantined slot of pool p (if any), as if it left quarantine. */
void amm__quarantine_evict_pool(amm_manager *m, amm_pool *p);

/* ---- heap.c: TLSF over out-of-band chunk records ---- */
amm__block *amm__heap_alloc(amm_manager *m, size_t size, size_t align);  /* LIVE record, guards written */
/* A chunk of need bytes from the free lists (or a new region) for align: registered at
 * raw + front, counted in its region's used_chunks, its state the caller's to set; NULL if refused. */
amm__block *amm__heap_take(amm_manager *m, size_t need, size_t align);
/* (release, and alloc from the reuse lists: hot.h) */
void amm__heap_free_used(amm_manager *m, amm__block *b);  /* out of the registry, merged into the free lists */
void amm__reuse_free(amm_manager *m, amm__block *c);      /* a kept chunk to the free lists */
void amm__heap_unbin(amm_manager *m);                                    /* reuse lists -> free lists */
int amm__heap_resize(amm_manager *m, amm__block *b, size_t new_size);    /* in place; 0 ok, -1 cannot */
size_t amm__heap_largest_free(const amm_manager *m);
void amm__heap_destroy(amm_manager *m);
size_t amm__heap_release_memory(amm_manager *m, size_t *regions_released); /* purge + unmap empty */
size_t amm__heap_compact(amm_manager *m, size_t *blocks_moved);          /* returns bytes moved */
size_t amm__heap_check(amm_manager *m);                                  /* invariants I1-I5, I10, I11 */
/* Chunk bytes a request needs (front canary + size + back canary, rounded). */
static inline size_t amm__heap_chunk_need(const amm_manager *m, size_t size) {
    if (size > SIZE_MAX / 2) return SIZE_MAX;
    size_t need = m->front + ((size + m->canary + (AMM__GRANULE - 1)) & ~(AMM__GRANULE - 1));
    return need < AMM__GRANULE ? AMM__GRANULE : need;
}

/* ---- large.c ---- */
amm__block *amm__large_alloc(amm_manager *m, size_t size, size_t align);
void amm__large_release(amm_manager *m, amm__block *b);
int amm__large_resize(amm_manager *m, amm__block *b, size_t new_size);

/* ---- pool.c (alloc, release and lookup of a slot: hot.h) ---- */
amm_pool *amm__pool_new(amm_manager *m, size_t block_size, size_t count, size_t align); /* args valid */
amm__block *amm__pool_alloc_any(amm_manager *m, size_t size, size_t align, int evict); /* smallest fitting pool */
/* A freed slot is canary again, end to end, so amm_check finds writes into it (fill on). */
void amm__pool_refill(amm_manager *m, amm__block *b);
int amm__pool_resize(amm_manager *m, amm__block *b, size_t new_size);
void amm__pool_destroy_all(amm_manager *m);
size_t amm__pool_check(amm_manager *m, amm_pool *p);
size_t amm__pool_rank_check(amm_manager *m);        /* invariant I12 */

/* ---- block helpers (manager.c) ---- */
static inline size_t amm__align_of(const amm__block *b) { return (size_t)1 << b->align_log2; }
static inline uintptr_t amm__align_up(uintptr_t v, size_t a) { return (v + (a - 1)) & ~(uintptr_t)(a - 1); }
static inline int amm__is_pow2(size_t v) { return v != 0 && (v & (v - 1)) == 0; }
/* Binary search over n records, stride bytes apart and sorted by a leading
 * key (a uintptr_t first member, read through a uintptr_t lvalue): the index
 * of the first whose key is > key (n if none).  The range table and the pools' by-size
 * order use it. */
static inline size_t amm__first_above(const void *records, size_t n, size_t stride, uintptr_t key) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uintptr_t k = *(const uintptr_t *)(const void *)((const char *)records + mid * stride);
        if (k <= key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}
static inline unsigned amm__log2(size_t v) { return v ? (unsigned)(63 - __builtin_clzll((unsigned long long)v)) : 0; }

/* ---- report.c ---- */
/* A site as printouts name it: the file's base name, then ":LINE" when a line
 * is known (line 0: the LD_PRELOAD shim's sites, names without one); "-" for
 * none.  _path: the whole path instead of the base name when whole_path. */
#define AMM__SITE_TEXT 300
int amm__site_format(char *buf, size_t len, const char *file, int line);
int amm__site_format_path(char *buf, size_t len, const char *file, int line, int whole_path);
const char *amm__base_name(const char *path); /* after the last '/'; NULL stays NULL */
/* Fills in what it can from b (may be NULL), counts the fault, traces it and calls the handler. */
void amm__fault(amm_manager *m, amm_error_kind kind, const void *ptr, const amm__block *b,
                const char *operation, const char *detail, long long offset, size_t bytes,
                const char *file, int line);

/* ---- tcache.c: per-thread caches of small heap chunks ---- */
extern _Thread_local amm__tcache *amm__tl_caches __attribute__((tls_model("initial-exec"))); /* this thread's caches, the last used first */
/* This thread's tag: the address of its cache list, unique among running threads. */
static inline const void *amm__tcache_self(void) { return &amm__tl_caches; }
/* This thread's cache of m (moved to the front of its list), or NULL; detached ones are freed on the way. */
amm__tcache *amm__tcache_find(amm_manager *m);
/* 1 if threads may cache chunks of this manager now (shared; no tracer, periodic check or quarantine). */
int amm__tcache_enabled(const amm_manager *m);
/* The chunk bytes a request needs if a cache may hold them, else 0 (any alignment <= 16). */
static inline size_t amm__tcache_need(const amm_manager *m, size_t size, size_t align) {
    if (align > AMM__GRANULE || size > AMM__TC_CHUNK_MAX) return 0;
    size_t need = amm__heap_chunk_need(m, size);
    return need <= AMM__TC_CHUNK_MAX && need < m->cfg.large_threshold ? need : 0;
}
/* Refills c's (empty) class for need-byte chunks: the manager's lock held, by c's owner.  Chunks added. */
size_t amm__tcache_refill(amm_manager *m, amm__tcache *c, size_t need);
/* Refills c's (empty) list of pool p (list j, c->pool[j] == p), as amm__tcache_refill. */
size_t amm__tcache_refill_pool(amm_manager *m, amm__tcache *c, size_t j);
/* The list of pool p in c (AMM__TC_CLASSES + j), or 0 if c keeps none of p's slots. */
static inline size_t amm__tc_pool_list(const amm__tcache *c, const amm_pool *p) {
    for (size_t j = 0; j < AMM__TC_POOLS; j++) {
        if (c->pool[j] == p) return AMM__TC_CLASSES + j;
    }
    return 0;
}
/* b (a heap chunk or pool slot out of use, counters taken off) back to the cache that handed it
 * out, if that cache takes it: 1, else 0 (the heap or pool takes it).  The manager lock is held. */
int amm__tcache_give_back(amm_manager *m, amm__block *b);
/* Adds c's counters into the manager's (its lock held; c stopped, or its owner the caller). */
void amm__tcache_fold(amm_manager *m, amm__tcache *c);
/* Folds every cache's counters, returning the bytes of the chunks they hold
 * (stats), or also gives every cached chunk back (walks, checks, compaction,
 * a new pool, a tracer); the manager lock is held. */
size_t amm__tcache_fold_all(amm_manager *m);
void amm__tcache_flush_all(amm_manager *m);
/* A cache of m for this thread, linked (the manager lock is held): an exited thread's if m has
 * one, else mem made one; NULL if this thread has no exit hook (amm__tcache_thread_register). */
amm__tcache *amm__tcache_new(amm_manager *m, void *mem);
void *amm__tcache_map(void);                        /* memory for one cache, before the lock */
void amm__tcache_unmap(void *mem);
void amm__tcache_thread_register(void);             /* this thread's caches are flushed at its exit (no lock held) */
void amm__tcache_detach_all(amm_manager *m);        /* amm_destroy, before it frees m: the caches forget it */
/* Fork: every cache of a manager stopped (after the managers' locks are taken); let go; in the
 * child, other threads' caches are emptied and left as orphans. */
void amm__tcache_fork_lock(amm_manager *m);
void amm__tcache_fork_unlock(amm_manager *m, int child);
void amm__tcache_fork_mutex(int take);             /* the global detach mutex: taken (blocking) or released */
void amm__tcache_fork_child(void);                 /* in the child, first: what the threads left half done */
int amm__tcache_fork_trylock(void);                /* ... taken if free: 0, else -1 */

/* ---- stats.c ---- */
void amm__stats_locked(amm_manager *m, amm_stats *st);
size_t amm__walk_locked(amm_manager *m, amm_visit_fn visit, void *user);
size_t amm__check_locked(amm_manager *m);

/* ---- options.c ---- */
/* Applies AMM_OPTIONS from the environment, reporting each bad pair to stderr's default handler form. */
void amm__config_from_env(amm_config *cfg);
/* Checks every field of cfg against the table; -1 with a message if one is out of range. */
int amm__config_check(const amm_config *cfg, char *err, size_t err_len);

/* ---- trace_writer.c: all called with m->lock held; each is a no-op cost when m->tracer is NULL ---- */
#define AMM__TRACING(m) ((m)->tracer != NULL)
#define AMM__TRACE(m, call) do { if (AMM__TRACING(m)) { call; } } while (0)
int amm__trace_start_locked(amm_manager *m, const char *dest);
void amm__trace_stop_locked(amm_manager *m);
void amm__trace_forget_in_child(amm_manager *m); /* after fork, in the child: tracing off, nothing written */
void amm__trace_forget_all_in_child(void);        /* ... for every tracer the exit flush tracks */
void amm__trace_manager(amm_manager *m, amm_trace_op op);          /* MANAGER_CREATE/DESTROY */
void amm__trace_region(amm_manager *m, amm_trace_op op, uintptr_t base, size_t size, amm_origin kind, size_t id);
void amm__trace_pool(amm_manager *m, const amm_pool *p);           /* POOL_CREATE */
void amm__trace_block(amm_manager *m, amm_trace_op op, const amm__block *b); /* ALLOC, LIVE */
void amm__trace_free(amm_manager *m, const amm__block *b, int quarantined);
void amm__trace_resize(amm_manager *m, amm_trace_op op, const amm__block *b, uintptr_t old_user, size_t old_size); /* REALLOC, COPY (old_user = source), MOVE */
void amm__trace_refcount(amm_manager *m, amm_trace_op op, const amm__block *b); /* RETAIN, RELEASE */
void amm__trace_fault(amm_manager *m, const amm_report *r);
void amm__trace_simple(amm_manager *m, amm_trace_op op, uint64_t addr, uint64_t size, uint32_t aux_a, uint32_t aux_b); /* QUARANTINE_RELEASE, PURGE, CHECK */
void amm__trace_defrag(amm_manager *m, amm_trace_op op, unsigned flags, const amm_stats *st, size_t blocks_moved, size_t regions_released);
void amm__trace_sample(amm_manager *m);

#endif /* AMM_INTERNAL_H */
