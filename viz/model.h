/*
 * model.h - the heap state amm-viz rebuilds from trace events.  No SDL here.
 *
 * The model is fed one amm_trace_event at a time (vm_model_apply) and holds
 * what the viewer draws: regions and pools (sorted by base address), live and
 * quarantined blocks (a dense array plus an address hash, so apply is O(1)
 * and a frame can walk every block in O(n)), sites, faults, stats samples
 * over time and a ring of the latest events.
 *
 * Memory is bounded by vm_limits: beyond max_blocks new blocks are counted
 * as untracked, beyond max_regions regions are ignored (counted), and the
 * rings (log, samples, faults, fault marks) overwrite or decimate their
 * oldest entries.  Nothing in a stream, however malformed, makes apply fail:
 * inconsistent events (free of an unknown block, ...) are counted as
 * anomalies and skipped.
 *
 * Extents: a block covers [raw, raw_end) where raw = user - front (the
 * trace's user-raw field).  raw_end is exact for pool slots (the slot end);
 * for heap and large blocks it is estimated as user + size + canary rounded
 * up to 16 bytes (the chunk granule); the trace does not carry chunk slack.
 *
 * Seeking: vm_model_copy makes a deep copy (a checkpoint); replaying the
 * events after the checkpoint's seq reproduces the state at any later point.
 */
#ifndef AMM_VIZ_MODEL_H
#define AMM_VIZ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "amm/trace.h"

/* A pseudo-op the ingest inserts when a new stream (a new connection) starts:
 * the heap state is cleared, history (log, samples) kept. */
#define VM_OP_STREAM_START 0xFFu

typedef enum vm_region_kind {
    VM_REGION_HEAP = 0,    /* a managed heap region (REGION_MAP origin heap) */
    VM_REGION_POOL = 1,    /* a pool slab (POOL_CREATE) */
    VM_REGION_LARGE = 2,   /* a large block's own mapping */
    VM_REGION_INFERRED = 3 /* made up to hold blocks seen outside any known region */
} vm_region_kind;

typedef struct vm_region {
    uint64_t base, size;
    uint32_t id;           /* region id or pool id from the trace */
    uint8_t kind;          /* vm_region_kind */
    /* pools only (valid when kind == VM_REGION_POOL) */
    uint64_t block_size, stride, front;
    uint32_t slots;
    /* occupancy, all kinds */
    uint32_t used, quarantined, high_water;
    uint64_t live_bytes;
} vm_region;

/* A live or quarantined block.  state: AMM_BLOCK_LIVE or AMM_BLOCK_QUARANTINED. */
typedef struct vm_block {
    uint64_t user, size;
    uint64_t born_seq;     /* seq of the alloc (kept across realloc in place and moves) */
    uint64_t moved_from;   /* user pointer before the last compaction move (0: never moved) */
    uint64_t moved_seq;
    uint32_t front;        /* user - raw */
    uint32_t back;         /* raw_end - (user + size) */
    uint32_t site;         /* site id (0: unknown) */
    uint32_t refcount;
    uint8_t align_log2, origin, flags, state;
    uint8_t fault;         /* 1 once a fault concerned this block */
} vm_block;

/* A compact event: a record and its args (args.op == AMM_TOP_ARGS when present). */
typedef struct vm_event {
    uint64_t seq, time_ns;
    amm_trace_record rec, args;
} vm_event;

typedef struct vm_sample {
    uint64_t seq, time_ns;
    uint64_t live_bytes, reserved, resident, free_bytes;
    uint32_t ext_frag_ppm, live_blocks;
    uint8_t marker;        /* 0 sample, 1 defrag-begin, 2 defrag-end */
} vm_sample;

typedef struct vm_fault {
    uint64_t seq;
    uint64_t ptr, block, size, bytes;
    int64_t offset;
    uint32_t kind;         /* amm_error_kind */
    uint64_t lo, hi;       /* the address range the map marks red */
} vm_fault;

typedef struct vm_site {
    uint32_t id, line;
    char file[96];
} vm_site;

/* A hash slot: user pointer -> block index + 1 (key and value together: one cache line visit). */
typedef struct vm_hent {
    uint64_t key;
    uint64_t val;
} vm_hent;

typedef struct vm_limits {
    size_t max_blocks;     /* default 8M */
    size_t max_regions;    /* default 65536 */
    size_t log_capacity;   /* default 8192 events */
    size_t sample_capacity;/* default 4096 (decimated by half when full) */
    size_t fault_capacity; /* default 1024 */
    size_t max_sites;      /* default 65536 (site ids at or above are ignored) */
} vm_limits;

typedef struct vm_model {
    vm_limits lim;
    /* blocks: dense array + open addressing hash user -> index+1 */
    vm_block *blocks;
    size_t nblocks, cap_blocks;
    vm_hent *hash;     /* open addressing, key 0 = empty */
    size_t hcap;
    /* regions, sorted by base, non-overlapping */
    vm_region *regions;
    size_t nregions, cap_regions;
    size_t region_hint;           /* the region found by the last lookup (a cache) */
    /* sites: indexed by id */
    vm_site *sites;
    size_t nsites_cap;
    size_t nsites;
    /* rings */
    vm_event *log;
    size_t log_head, log_count;   /* log_head = index of the next write */
    vm_sample *samples;
    size_t nsamples, sample_stride, sample_skip;
    vm_fault *faults;
    size_t fault_head, fault_count;
    /* totals */
    uint64_t events, last_seq, last_time_ns;
    uint64_t op_counts[AMM_TOP_COUNT + 1];
    uint64_t anomalies, untracked, regions_ignored, dropped, faults_total;
    uint64_t streams, managers, defrags, moves;
    uint64_t live_bytes, quar_bytes, reserved;
    size_t live_blocks, quar_blocks;
    uint32_t canary;              /* from MANAGER_CREATE (default 16) */
    uint64_t quarantine_limit;    /* from MANAGER_CREATE: 0 = quarantine off */
    int in_snapshot;
    vm_sample last_sample;        /* the latest SAMPLE/DEFRAG figures */
    int have_sample;
} vm_model;

void vm_limits_default(vm_limits *lim);

/* Initialises m (lim NULL: defaults).  Returns 0, or -1 if memory is refused (m is then empty and safe to free). */
int vm_model_init(vm_model *m, const vm_limits *lim);
void vm_model_free(vm_model *m);
/* Clears the heap state (blocks, regions), keeping history, sites and totals. */
void vm_model_clear_heap(vm_model *m);
/* Deep copy of src into dst (dst initialised or zeroed).  0, or -1 if refused (dst then empty). */
int vm_model_copy(vm_model *dst, const vm_model *src);
/* Approximate bytes held by m (for checkpoint budgets). */
size_t vm_model_bytes(const vm_model *m);

/* Applies one event.  Never fails; inconsistencies are counted in m->anomalies. O(1) amortised. */
void vm_model_apply(vm_model *m, const amm_trace_event *ev);
/* The same for a compact event (site text from the model's own table is not needed: SITE events carry no text). */
void vm_event_from_trace(vm_event *out, const amm_trace_event *ev);
void vm_event_to_trace(amm_trace_event *out, const vm_event *ev);

/*
 * Hides memory latency when applying a batch: stage 0 prefetches the hash
 * slot of user, stage 1 (some events later, the slot then cached) the block.
 * Only a hint: no effect on the state.  O(1).
 */
void vm_model_prefetch(const vm_model *m, uint64_t user, int stage);

/* Lookups.  NULL when not found.  find: O(1); containing: O(n). */
const vm_block *vm_model_find(const vm_model *m, uint64_t user);
const vm_block *vm_model_block_containing(const vm_model *m, uint64_t lo, uint64_t hi);
/* Index of the region containing addr, or -1.  O(log r). */
long vm_model_region_of(const vm_model *m, uint64_t addr);
const vm_site *vm_model_site(const vm_model *m, uint32_t id);

/* Block extents. */
static inline uint64_t vm_block_raw(const vm_block *b) { return b->user - b->front; }
static inline uint64_t vm_block_raw_end(const vm_block *b) { return b->user + b->size + b->back; }

/* The i-th latest event (0 = newest), or NULL. */
const vm_event *vm_model_log_get(const vm_model *m, size_t i);
/* The i-th latest fault (0 = newest), or NULL. */
const vm_fault *vm_model_fault_get(const vm_model *m, size_t i);

/*
 * A text picture of region ri in address order, for tests and --dump:
 * "heap#1 [U48 Q32 F944]": U live (xN refcount above 1, ! faulted),
 * Q quarantined, F a gap, each with its raw extent in bytes.  Returns the length
 * snprintf would need.  O(n log n).
 */
int vm_model_picture(const vm_model *m, size_t ri, char *buf, size_t len);

/* One readable line for an event ("#12 alloc 0x1000 48 B align 16 site demo.c:10"). */
int vm_event_format(const vm_model *m, const vm_event *ev, char *buf, size_t len);

/* Name of a region kind. */
const char *vm_region_kind_name(unsigned kind);

#endif /* AMM_VIZ_MODEL_H */
