/*
 * amm.h - AdvancedMemoryManager, the full public API.
 *
 * amm is an instrumented allocator: every block it hands out is surrounded by
 * byte-exact canaries, tracked by an out-of-band record and validated whenever
 * a pointer comes back.  Faults never crash the allocator: they reach an
 * error handler with a structured report and the faulty operation is refused.
 *
 * Conventions used by every function below:
 *  - Cost is given in terms of n = live blocks, r = regions/pools, s = the
 *    size of the block concerned.  "O(1)" excludes the canary check and fill
 *    of the block itself, which are O(canary + slack) and O(s) respectively.
 *  - Thread safety: every function taking an amm_manager may be called from
 *    any thread concurrently; a manager serialises them with its own lock.
 *    The error handler and the walk visitor run with that lock held and must
 *    not call back into the same manager.  fork() is safe: amm holds every
 *    manager's lock across it (waiting for the threads inside amm to leave),
 *    so the child finds them unlocked; the program's own fork handlers may
 *    call amm, and a fork from inside a callback keeps that callback's lock.
 *  - A pointer handed in is looked up before it is dereferenced.  A pointer
 *    amm did not hand out is refused with an AMM_ERR_INVALID_POINTER (or
 *    AMM_ERR_INTERIOR_POINTER) report; nothing is written through it.
 */
#ifndef AMM_AMM_H
#define AMM_AMM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AMM_VERSION_MAJOR 0
#define AMM_VERSION_MINOR 1
#define AMM_VERSION_PATCH 0

/* Largest alignment amm accepts (any power of two up to this; 0 = default). */
#define AMM_MAX_ALIGN ((size_t)1 << 20)
/* Alignment used when 0 is passed. */
#define AMM_DEFAULT_ALIGN ((size_t)16)

/* Fill patterns: every new block's user bytes, and every freed block's bytes
 * while it sits in quarantine (with the fill option on).  Canary bytes are
 * derived from a per-manager secret, always in 0x80-0xFE and never equal
 * these: no byte 0-127 (ASCII, small non-negative integers) written past a
 * block matches one. */
#define AMM_FILL_NEW 0xAAu
#define AMM_FILL_FREED 0xDDu

typedef struct amm_manager amm_manager; /* opaque; the seed calls it MemoryManager */
typedef struct amm_pool amm_pool;       /* opaque; the seed calls it MemPool */

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

/* X(enum suffix, short name printed in reports, description) */
#define AMM_ERROR_KINDS(X)                                                        \
    X(NONE, "none", "no fault")                                                   \
    X(OVERFLOW, "heap-buffer-overflow", "a write past the end of a block")        \
    X(UNDERFLOW, "heap-buffer-underflow", "a write before the start of a block")  \
    X(DOUBLE_FREE, "double-free", "a block freed twice")                          \
    X(INVALID_POINTER, "invalid-pointer", "a pointer amm never handed out")       \
    X(INTERIOR_POINTER, "interior-pointer", "a pointer into the middle of a block") \
    X(USE_AFTER_FREE, "use-after-free", "a write to a freed block")               \
    X(SHARED_FREE, "free-of-shared-block", "a direct free of a block with refcount > 1") \
    X(BAD_ALIGNMENT, "bad-alignment", "an alignment that is not a power of two up to AMM_MAX_ALIGN") \
    X(OUT_OF_MEMORY, "out-of-memory", "the system refused memory")                \
    X(BAD_OPTION, "bad-option", "an unknown option or a bad option value")        \
    X(BAD_SIZE, "bad-size", "a size too large to represent")                      \
    X(REFCOUNT_OVERFLOW, "refcount-overflow", "a reference count at its maximum") \
    X(CORRUPTION, "corruption", "allocator metadata found inconsistent")

typedef enum amm_error_kind {
#define AMM__X(e, name, desc) AMM_ERR_##e,
    AMM_ERROR_KINDS(AMM__X)
#undef AMM__X
    AMM_ERR_COUNT
} amm_error_kind;

/* Where a block came from. */
typedef enum amm_origin {
    AMM_ORIGIN_HEAP = 0,  /* a managed heap region (segregated fit) */
    AMM_ORIGIN_POOL = 1,  /* a slot of a fixed-size pool */
    AMM_ORIGIN_LARGE = 2  /* its own mapping (size >= large threshold) */
} amm_origin;

/* A source location, captured by the AMM_* macros.  file may be NULL. */
typedef struct amm_site {
    const char *file; /* must outlive the manager: a string literal (__FILE__) */
    int line;
} amm_site;

#define AMM_SITE_HERE ((amm_site){__FILE__, __LINE__})
#define AMM_SITE_NONE ((amm_site){NULL, 0})

/*
 * A fault report.  Every field that does not apply is zero / NULL.
 *  ptr        the pointer the faulting operation was given (or the block)
 *  block      the user pointer of the block concerned, if one was identified
 *  block_size the block's requested size in bytes
 *  offset     for overflow/underflow/use-after-free: the offset from the
 *             start of the block of the first damaged byte (negative before it)
 *  bytes      how many bytes are damaged (overflow: the distance from the
 *             block's end to the furthest damaged byte, inclusive)
 *  alloc_site where the block was allocated; op_site where the faulting call was made
 *  detail     a short static string with extra words (may be NULL)
 */
typedef struct amm_report {
    amm_error_kind kind;
    const void *ptr;
    const void *block;
    size_t block_size;
    size_t alignment;
    amm_origin origin;
    long long offset;
    size_t bytes;
    unsigned refcount;
    amm_site alloc_site;
    amm_site op_site;
    const char *operation; /* "free", "realloc", "check", ... */
    const char *detail;
} amm_report;

typedef void (*amm_error_fn)(const amm_report *report, void *user);

/* Short name of a kind ("heap-buffer-overflow"); "unknown" if out of range. O(1). */
const char *amm_error_name(amm_error_kind kind);

/*
 * Formats the one-line diagnostic the default handler prints (without the
 * trailing newline) into buf.  Returns the length snprintf would return.  O(1).
 * Example: "amm: heap-buffer-overflow: 3 bytes past the end of a 24-byte
 *           block at 0x7f.. allocated at demo.c:42 (detected in free)"
 */
int amm_report_format(const amm_report *report, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum amm_on_error { AMM_ON_ERROR_REPORT = 0, AMM_ON_ERROR_ABORT = 1 } amm_on_error;

/*
 * X(field, type-tag, default, min, max, help).  One table drives the config
 * struct, the AMM_OPTIONS parser, the JSON dump and the README.
 * type-tags: SIZE (accepts K/M/G suffixes), UINT, BOOL (on/off/1/0/true/false),
 * ONERR (report|abort), STR (a string kept by reference into the config's own buffer).
 */
#define AMM_OPTIONS_TABLE(X)                                                                   \
    X(canary, SIZE, 16, 0, 4096, "guard bytes before and after every block (multiple of 8; 0 disables guards)") \
    X(quarantine, SIZE, 1 << 20, 0, (size_t)1 << 40, "bytes of freed blocks held back to catch use-after-free") \
    X(quarantine_blocks, UINT, 4096, 0, 1 << 24, "most freed blocks held in quarantine")      \
    X(on_error, ONERR, AMM_ON_ERROR_REPORT, 0, 1, "report: print and refuse the operation; abort: print then abort()") \
    X(fill, BOOL, 1, 0, 1, "fill new memory with 0xAA and freed memory with 0xDD")              \
    X(region_size, SIZE, 1 << 20, 1 << 16, (size_t)1 << 34, "bytes mapped per managed heap region") \
    X(large_threshold, SIZE, 1 << 18, 4096, (size_t)1 << 40, "blocks this large or larger get their own mapping") \
    X(purge, SIZE, 8 << 10, 0, (size_t)1 << 40, "free heap spans this large give their whole pages back to the system (0: only amm_defragment does)") \
    X(purge_delay, UINT, 1, 0, 1u << 20, "milliseconds a purge batch waits at least after the last one (0: none)") \
    X(reuse, SIZE, 64 << 10, 0, (size_t)1 << 30, "freed heap chunks up to 4 KiB (and canaries) are kept whole for the next request of their size, up to this many bytes in all (0: every free merges at once)") \
    X(tcache, UINT, 16, 0, 32, "a manager shared by threads (and no quarantine) gives each allocating thread a cache of up to this many chunks per size (chunks up to 1 KiB) or pool (0: off)") \
    X(leaks, BOOL, 0, 0, 1, "amm_destroy (and the LD_PRELOAD shim at exit) reports blocks still live, by allocation site") \
    X(check_every, UINT, 0, 0, 1u << 31, "run amm_check every N operations (0: never)")          \
    X(sample_every, UINT, 1024, 0, 1u << 31, "trace a stats sample every N operations (0: never)") \
    X(trace, STR, 0, 0, 0, "trace destination: file:PATH, fd:N or unix:PATH (empty: off)")

typedef struct amm_config {
    size_t canary;
    size_t quarantine;
    size_t quarantine_blocks;
    amm_on_error on_error;
    int fill;
    size_t region_size;
    size_t large_threshold;
    size_t purge;
    size_t purge_delay;
    size_t reuse;
    size_t tcache;
    int leaks;
    size_t check_every;
    size_t sample_every;
    const char *trace;       /* NULL or "" = off */
    amm_error_fn on_fault;   /* NULL = the default handler (one line to stderr) */
    void *on_fault_user;
    char trace_buf[256];     /* storage for trace when parsed from a string */
} amm_config;

/* Fills cfg with the built-in defaults (not the environment).  O(1). */
void amm_config_defaults(amm_config *cfg);

/*
 * Applies "key=value,key=value" to cfg.  Every pair is applied or reported:
 * on the first bad pair, writes a message naming it into err (if err_len > 0)
 * and returns -1, having applied the pairs before it.  Returns 0 on success.
 * NULL or "" is a success that changes nothing.  O(length).
 */
int amm_config_parse(amm_config *cfg, const char *options, char *err, size_t err_len);

/* Writes the option table (name, default, help) to out, for --help texts. */
void amm_options_print_help(FILE *out);

/* ------------------------------------------------------------------------ */
/* Managers                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Creates a manager.  cfg NULL means the defaults with AMM_OPTIONS from the
 * environment applied on top; a bad AMM_OPTIONS pair is reported through the
 * default handler as AMM_ERR_BAD_OPTION and that pair ignored (the rest
 * apply).  cfg is copied.  Returns NULL only if the system refuses memory for
 * the manager itself or cfg holds an out-of-range value (reported).  O(1).
 */
amm_manager *amm_create(const amm_config *cfg);

/*
 * Releases every region, pool, mapping and record of the manager, including
 * blocks still live (they are counted in the final trace record).  Quarantine
 * is checked for writes after free first (reported).  m NULL is a no-op. O(n + r).
 */
void amm_destroy(amm_manager *m);

/* Replaces the error handler (NULL restores the default).  O(1). */
void amm_set_error_handler(amm_manager *m, amm_error_fn fn, void *user);

/* The handler that prints one line to stderr (and aborts if on_error=abort). */
void amm_default_error_handler(const amm_report *report, void *user);

/* Number of faults reported by this manager so far.  O(1). */
size_t amm_fault_count(const amm_manager *m);

/* ------------------------------------------------------------------------ */
/* Blocks                                                                   */
/* ------------------------------------------------------------------------ */

/* Flags for amm_alloc_at. */
#define AMM_ALLOC_MOVABLE 0x1u  /* compaction may move the block (see amm_defragment) */
#define AMM_ALLOC_NO_POOL 0x2u  /* do not take a pool slot even if one fits */
#define AMM_ALLOC_ZERO 0x4u     /* zero the user bytes */

/*
 * Allocates size bytes aligned to align (a power of two <= AMM_MAX_ALIGN, or
 * 0 for AMM_DEFAULT_ALIGN).  Tries the smallest pool whose slot fits size and
 * align (unless AMM_ALLOC_NO_POOL), then the heap; blocks of at least
 * large_threshold bytes get their own mapping.  size 0 returns a unique
 * zero-length block.  The block starts with refcount 1.
 * Fails (NULL, with a report) on a bad alignment, an impossible size, or when
 * the system refuses memory.  O(1) (pool, heap) or one mmap (large).
 */
void *amm_alloc_at(amm_manager *m, size_t size, size_t align, unsigned flags, const char *file, int line);
#define amm_alloc(m, size, align) amm_alloc_at((m), (size), (align), 0u, __FILE__, __LINE__)
#define amm_alloc_flags(m, size, align, flags) amm_alloc_at((m), (size), (align), (flags), __FILE__, __LINE__)

/*
 * Frees a block with refcount 1.  NULL is a no-op.  Refused with a report for
 * a pointer amm did not hand out, a block already freed (double free), or a
 * block whose refcount is above 1 (free-of-shared-block; use amm_release).
 * The canaries are checked first; damage is reported and the block is still
 * freed.  Returns 0 if the block was freed, -1 if the call was refused.  O(1).
 */
int amm_free_at(amm_manager *m, void *ptr, const char *file, int line);
#define amm_free(m, ptr) amm_free_at((m), (ptr), __FILE__, __LINE__)

/*
 * Resizes a block to new_size, keeping its contents up to the smaller size,
 * its refcount, flags and site.  align 0 keeps the block's alignment; another
 * alignment moves the block if it is not already aligned so.  Grows or shrinks
 * in place when the neighbour allows, else moves.  ptr NULL is amm_alloc.
 * new_size 0 keeps a valid zero-length block (it does not free).
 * On failure returns NULL, reports, and leaves the old block untouched.  O(1) + copy.
 */
void *amm_realloc_at(amm_manager *m, void *ptr, size_t new_size, size_t align, const char *file, int line);
#define amm_realloc(m, ptr, size, align) amm_realloc_at((m), (ptr), (size), (align), __FILE__, __LINE__)

/*
 * Allocates a new block of size bytes (default alignment) and copies size
 * bytes from src.  If src is an amm block, size must not exceed it (else the
 * copy is refused as an overflow read and NULL returned); a foreign src is
 * copied as given.  NULL src or size 0 yields a zero-length/empty copy. O(s).
 */
void *amm_copy_at(amm_manager *m, const void *src, size_t size, const char *file, int line);
#define amm_copy(m, src, size) amm_copy_at((m), (src), (size), __FILE__, __LINE__)

/* Adds a reference.  Returns the new count, or 0 if refused (bad pointer). O(1). */
unsigned amm_retain_at(amm_manager *m, void *ptr, const char *file, int line);
#define amm_retain(m, ptr) amm_retain_at((m), (ptr), __FILE__, __LINE__)

/* Drops a reference; at zero the block is freed.  Returns the new count,
 * 0 when freed, or (unsigned)-1 if refused.  O(1). */
unsigned amm_release_at(amm_manager *m, void *ptr, const char *file, int line);
#define amm_release(m, ptr) amm_release_at((m), (ptr), __FILE__, __LINE__)

/* Requested size of a live block, or 0 (reported) for a pointer amm does not own. O(1). */
size_t amm_size(amm_manager *m, const void *ptr);

/* Returns 1 if ptr is the user pointer of a live block of m, else 0, without reporting. O(1). */
int amm_owns(amm_manager *m, const void *ptr);

/* Marks a live block movable (1) or pinned (0).  Returns 0, or -1 if refused. O(1). */
int amm_set_movable(amm_manager *m, void *ptr, int movable);

/* ------------------------------------------------------------------------ */
/* Pools                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Creates a pool of block_count slots of block_size bytes aligned to align,
 * each guarded by canaries, in one slab mapping.  Returns NULL (reported) on a
 * bad alignment, zero size/count, or when memory is refused.  O(block_count):
 * a slab of up to 16 MiB is canary-filled at once; a larger one's slots are
 * filled when first used, so no page of it is touched until then.
 */
amm_pool *amm_pool_create(amm_manager *m, size_t block_size, size_t block_count, size_t align);

/* Allocates from this pool only (pool NULL: the smallest pool that fits); NULL (no report)
 * if full or size/align do not fit; a pool of another manager is reported.  A full pool
 * whose slots sit in quarantine takes back the oldest one (checked first) rather than fail;
 * amm_alloc goes to the heap instead, and takes a quarantined slot back only when the system
 * refuses memory.
 * O(1), O(pools) for NULL. */
void *amm_pool_alloc_at(amm_manager *m, amm_pool *pool, size_t size, size_t align, const char *file, int line);

/* Number of pools; the i-th pool (creation order) or NULL.  O(1). */
size_t amm_pool_count(amm_manager *m);
amm_pool *amm_pool_get(amm_manager *m, size_t index);

typedef struct amm_pool_info {
    void *base;          /* start of the slab */
    size_t slab_bytes;   /* bytes mapped for the slab */
    size_t block_size;   /* largest request a slot takes */
    size_t stride;       /* distance between slots */
    size_t alignment;
    size_t block_count;
    size_t used;         /* slots live */
    size_t quarantined;  /* slots held in quarantine */
    size_t free;         /* slots on the free list (or held free by thread caches) */
    size_t high_water;   /* most slots live at once */
} amm_pool_info;

/* Fills info for pool.  Returns 0, or -1 if pool is not one of m's pools. O(1). */
int amm_pool_info_get(amm_manager *m, const amm_pool *pool, amm_pool_info *info);

/* ------------------------------------------------------------------------ */
/* Checking, walking, statistics                                            */
/* ------------------------------------------------------------------------ */

/*
 * Full walk: verifies every block's canaries, every quarantined block's fill
 * pattern, and the allocator's own invariants (see internal.h); reports each
 * problem found.  Returns the number of problems (0 = healthy).  O(n + r) + bytes checked.
 */
size_t amm_check(amm_manager *m);

/* Cheap check of the manager's counters' invariants.  Returns 1 if they hold, 0 if not. O(1). */
int amm_check_fast(amm_manager *m);

typedef enum amm_block_state {
    AMM_BLOCK_LIVE = 0,
    AMM_BLOCK_FREE = 1,        /* a free heap span or a free pool slot */
    AMM_BLOCK_QUARANTINED = 2  /* freed, held back, filled with 0xDD */
} amm_block_state;

/* What the walker shows of a block or a free span. */
typedef struct amm_block_info {
    amm_block_state state;
    amm_origin origin;
    const void *user;     /* user pointer (live/quarantined); the span start for free spans */
    const void *raw;      /* first byte of the chunk/slot/mapping holding it */
    size_t size;          /* requested size (live/quarantined) or span bytes (free) */
    size_t raw_size;      /* bytes of the chunk/slot/mapping */
    size_t alignment;
    unsigned refcount;
    unsigned flags;       /* AMM_ALLOC_* flags */
    int canary_ok;        /* 1 if both canaries are intact (live/quarantined), else 0 */
    amm_site site;
    uint64_t serial;      /* allocation serial number (age: smaller is older) */
    size_t region_index;  /* index of its region, pool or large mapping in walk order */
} amm_block_info;

/* Called once per block, in address order per region; return non-zero to stop. */
typedef int (*amm_visit_fn)(const amm_block_info *info, void *user);

/* Visits every live, quarantined and free block.  Returns the number visited. O(n + r). */
size_t amm_walk(amm_manager *m, amm_visit_fn visit, void *user);

/*
 * Statistics.  X(field, unit, description) - one list for the struct, the
 * JSON dump, the trace samples and the printer.
 * Invariant: live_bytes + quarantine_bytes <= reserved_bytes, and
 *            external_frag = 1 - largest_free / free_bytes (0 when nothing is free),
 *            overhead = (reserved_bytes - live_bytes) / reserved_bytes (0 when nothing is reserved).
 */
#define AMM_STATS_COUNTS(X)                                                          \
    X(live_blocks, "blocks", "blocks handed out and not freed")                     \
    X(live_bytes, "bytes", "sum of requested sizes of live blocks")                 \
    X(peak_live_bytes, "bytes", "highest live_bytes seen")                          \
    X(reserved_bytes, "bytes", "bytes mapped: heap regions + pool slabs + large mappings") \
    X(resident_bytes, "bytes", "bytes of reserved memory resident in RAM (mincore)") \
    X(free_bytes, "bytes", "bytes in free heap spans")                              \
    X(largest_free, "bytes", "largest free heap span")                              \
    X(reuse_bytes, "bytes", "freed chunks kept whole for reuse (counted in free_bytes)") \
    X(cached_bytes, "bytes", "chunks thread caches hold for their threads' next allocs (neither live nor free)") \
    X(quarantine_blocks, "blocks", "freed blocks held in quarantine")               \
    X(quarantine_bytes, "bytes", "bytes held in quarantine (chunks)")               \
    X(region_count, "regions", "managed heap regions")                              \
    X(pool_count, "pools", "pools")                                                 \
    X(pool_slots, "slots", "slots in all pools")                                    \
    X(pool_slots_used, "slots", "pool slots live")                                  \
    X(large_count, "blocks", "blocks with their own mapping")                       \
    X(total_allocs, "ops", "allocations since creation")                            \
    X(total_frees, "ops", "frees since creation")                                   \
    X(faults, "faults", "faults reported since creation")                           \
    X(bytes_moved, "bytes", "bytes moved by compaction since creation")

#define AMM_STATS_RATIOS(X)                                                          \
    X(external_frag, "ratio", "1 - largest free span / total free")                 \
    X(overhead, "ratio", "(reserved - live) / reserved")

typedef struct amm_stats {
#define AMM__X(f, unit, desc) size_t f;
    AMM_STATS_COUNTS(AMM__X)
#undef AMM__X
#define AMM__X(f, unit, desc) double f;
    AMM_STATS_RATIOS(AMM__X)
#undef AMM__X
} amm_stats;

/* Fills st.  O(r + reserved pages) for resident_bytes; the rest O(1). */
void amm_get_stats(amm_manager *m, amm_stats *st);

/* Writes {"options":..., "stats":..., "pools":[...], "blocks":[...]} to out.  O(n + r). */
void amm_dump_json(amm_manager *m, FILE *out);

/* Writes the human-readable block table, pool occupancy and fragmentation. O(n + r). */
void amm_print(amm_manager *m, FILE *out);

/*
 * The leak report: the blocks still live, grouped by allocation site, most
 * bytes first, one line per site, then a summary line:
 *   amm: leak: 72 bytes in 3 blocks allocated at parser.c:88
 *   amm: leak summary: 96 bytes in 4 blocks still live, from 2 sites
 * At most max_sites site lines (0: all).  Writes nothing when no block is
 * live; out NULL only counts.  Returns the number of live blocks.  The lock
 * is held only while the blocks are collected, never while out is written.
 * With the leaks option on, amm_destroy writes it to stderr first.
 * O(n log n), memory from the system (not malloc).
 */
size_t amm_leak_report(amm_manager *m, FILE *out, size_t max_sites);

/* ------------------------------------------------------------------------ */
/* Defragmentation                                                          */
/* ------------------------------------------------------------------------ */

/* Told of every block compaction moves.  The old pointer is invalid afterwards. */
typedef void (*amm_move_fn)(void *old_ptr, void *new_ptr, size_t size, void *user);

/* Registers the callback defragment_memory / amm_defragment use for moves. O(1). */
void amm_set_move_callback(amm_manager *m, amm_move_fn fn, void *user);

#define AMM_DEFRAG_RELEASE 0x1u  /* return free pages and empty regions to the system */
#define AMM_DEFRAG_COMPACT 0x2u  /* slide movable blocks down to close holes */
#define AMM_DEFRAG_ALL (AMM_DEFRAG_RELEASE | AMM_DEFRAG_COMPACT)

typedef struct amm_defrag_report {
    amm_stats before;
    amm_stats after;
    size_t blocks_moved;
    size_t bytes_moved;
    size_t regions_released;
    size_t bytes_released; /* bytes unmapped or madvised away */
} amm_defrag_report;

/*
 * Defragments.  With AMM_DEFRAG_COMPACT, movable blocks are slid toward the
 * start of their region (pinned blocks and pools stay), each move reported to
 * the move callback.  With AMM_DEFRAG_RELEASE, free whole pages are returned
 * (madvise) and empty regions unmapped.  report may be NULL.  O(n + r) + bytes moved.
 */
void amm_defragment(amm_manager *m, unsigned flags, amm_defrag_report *report);

#ifdef __cplusplus
}
#endif
#endif /* AMM_AMM_H */
