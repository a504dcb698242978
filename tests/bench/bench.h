/*
 * bench.h - shared declarations of amm-bench.
 *
 * amm-bench measures amm against its peers in one run: glibc malloc, mimalloc,
 * jemalloc, and amm in two modes (checked = defaults, fast = canary=0,
 * quarantine=0, fill=0).  Every allocator is reached through the same small
 * vtable (bench_alloc), so each workload is written once and every column pays
 * the same indirect-call cost.
 *
 * The peers are dlopen()ed with RTLD_LOCAL instead of being linked: both
 * Debian libraries export unprefixed malloc/free, and linking either would
 * silently replace glibc's malloc for the whole process (including amm's own
 * internal allocations), so the "glibc" column would not be glibc.
 *
 * Files:
 *   bench.c        main, options, child-process dispatch, machine header
 *   allocators.c   the vtables, peer loading and verification, trim/footprint
 *   measure.c      clocks, RSS, medians, random numbers, child processes
 *   report.c       tables printed as text or JSON
 *   wl_pairs.c     alloc+free pairs and pool pairs (single thread)
 *   wl_mixed.c     mixed workload: realloc growth, seeded random lifetimes
 *   wl_threads.c   one thread allocating, one freeing, through an SPSC ring; threads doing pairs each
 *   wl_frag.c      fragmentation then compaction / trim
 *   targets.c      issue 3's targets, checked against the figures of the run
 */
#ifndef AMM_BENCH_H
#define AMM_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <amm/amm.h>

/* ------------------------------------------------------------------------ */
/* Allocators                                                               */
/* ------------------------------------------------------------------------ */

typedef enum bench_kind {
    BENCH_GLIBC = 0,
    BENCH_MIMALLOC,
    BENCH_JEMALLOC,
    BENCH_AMM_CHECKED,
    BENCH_AMM_FAST,
    BENCH_KIND_COUNT
} bench_kind;

/* The options string that turns amm's costly checks off ("fast" mode). */
#define BENCH_AMM_FAST_OPTIONS "canary=0,quarantine=0,fill=0"
/* Options applied to both amm columns after their own, e.g. "reuse=0". */
#define BENCH_AMM_EXTRA_ENV "AMM_BENCH_OPTIONS"

typedef struct bench_alloc {
    bench_kind kind;
    const char *name;       /* column label: "glibc", "mimalloc", ... */
    int available;          /* 0: library missing, see why_missing */
    char why_missing[160];
    void *(*alloc)(void *ctx, size_t size);
    void (*release)(void *ctx, void *ptr);
    void *(*resize)(void *ctx, void *ptr, size_t size);
    void *ctx;              /* the amm_manager for amm kinds while begun; else NULL */
} bench_alloc;

typedef struct bench_versions {
    char glibc[32];
    char mimalloc[32];
    char jemalloc[96];
    char amm[32];
    char malloc_provider[256]; /* object that "malloc" resolves to in this process */
} bench_versions;

/* Loads and verifies the peers (once per process) and fills all[kind]. */
void bench_allocs_init(bench_alloc all[BENCH_KIND_COUNT]);
const bench_versions *bench_get_versions(void);
/* Parses a column label back to its kind; -1 if unknown. */
int bench_kind_from_name(const char *name);

/* Prepares a (fresh) allocator instance: creates the amm manager for amm
 * kinds.  Returns 0, or -1 (reported as a failure). */
int bench_alloc_begin(bench_alloc *a);
/* Ends it: for amm, runs amm_check and verifies no fault was reported, then
 * destroys the manager.  Returns the number of problems (each reported). */
int bench_alloc_end(bench_alloc *a);
/* The amm manager of a begun amm allocator, else NULL. */
amm_manager *bench_alloc_amm(const bench_alloc *a);

/* Returns free memory to the system the allocator's own way: malloc_trim(0),
 * mi_collect(true), jemalloc arena purge.  (amm: see wl_frag.c.) */
void bench_alloc_trim(bench_alloc *a);

/* Allocator-reported footprint in bytes; -1 where the allocator cannot say. */
typedef struct bench_footprint {
    double reserved;  /* mapped / committed by the allocator */
    double resident;  /* resident bytes the allocator knows of */
} bench_footprint;
void bench_alloc_footprint(bench_alloc *a, bench_footprint *fp);

/* ------------------------------------------------------------------------ */
/* Measuring                                                                */
/* ------------------------------------------------------------------------ */

/* Wall-clock ns (CLOCK_MONOTONIC): for the two-thread workload. */
uint64_t bench_now_ns(void);
/* CPU ns of the calling thread (CLOCK_THREAD_CPUTIME_ID): single-thread
 * workloads use it, so time the shared machine gives to other processes is
 * not charged to whichever allocator was running. */
uint64_t bench_cpu_ns(void);
double bench_median(double *values, size_t n); /* sorts values; n >= 1 */

/*
 * One timed run of a workload on one allocator: returns its figure (ns per
 * op, ...) or -1 after a reported failure.
 */
typedef double (*bench_run_fn)(bench_alloc *a, void *arg);

/* Optional hook: adjusts the copy of a begun allocator that is timed (e.g.
 * swaps in a pool's vtable).  Returns 0, or -1 to drop the column. */
typedef int (*bench_prepare_fn)(bench_alloc *timed, void *arg);

/*
 * Measures one table row: begins every available allocator of all, applies
 * prepare (may be NULL), runs fn interleaved - one untimed warm-up each, then
 * `repeats` rounds that each visit every allocator once, so a burst of load
 * on a shared machine hits every column alike - and ends them.
 * ns[kind] = the median, or -1 if unavailable or failed.
 */
void bench_measure_row(bench_alloc all[BENCH_KIND_COUNT], bench_run_fn fn, bench_prepare_fn prepare, void *arg,
                       int repeats, double ns[BENCH_KIND_COUNT]);

/* Resident bytes of this process now (/proc/self/statm). */
double bench_rss_now(void);
/* Resets the process's peak-RSS mark (clear_refs); returns 0 if it could. */
int bench_rss_peak_reset(void);
/* Peak resident bytes since start or the last reset (VmHWM). */
double bench_rss_peak(void);

/* Deterministic random numbers (splitmix64 seeded, xorshift-free). */
typedef struct bench_rng {
    uint64_t state;
} bench_rng;
void bench_rng_seed(bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(bench_rng *r);
/* Uniform in [lo, hi]. */
size_t bench_rng_range(bench_rng *r, size_t lo, size_t hi);

/* Records a failure (printed to stderr as "FAIL: ..."); main exits 1 if any. */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int bench_failures(void);

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */
/* ------------------------------------------------------------------------ */

/* A child's result: "RESULT k=v k=v ..." on its stdout. */
#define BENCH_MAX_KV 16
typedef struct bench_kv {
    int count;
    char key[BENCH_MAX_KV][32];
    double value[BENCH_MAX_KV];
} bench_kv;

/* Adds k=v to kv (ignored beyond BENCH_MAX_KV). */
void bench_kv_put(bench_kv *kv, const char *key, double value);
/* Value of key, or fallback if absent. */
double bench_kv_get(const bench_kv *kv, const char *key, double fallback);
/* Prints kv as the RESULT line a child sends. */
void bench_kv_print(const bench_kv *kv, FILE *out);

/*
 * Runs "<this executable> --child WORKLOAD ALLOC --seed S [--quick]" in a fresh
 * process (so RSS figures are not polluted by earlier workloads) and parses
 * its RESULT line into kv.  Returns 0, or -1 on any failure (reported).
 */
int bench_run_child(const char *workload, const char *alloc_name, uint64_t seed, int quick, bench_kv *kv);

/* ------------------------------------------------------------------------ */
/* Reporting                                                                */
/* ------------------------------------------------------------------------ */

#define BENCH_MAX_COLS 12
#define BENCH_MAX_ROWS 24

typedef enum bench_cell_kind { CELL_EMPTY = 0, CELL_TEXT, CELL_NUM, CELL_RATIO } bench_cell_kind;

typedef struct bench_cell {
    bench_cell_kind kind;
    double value;
    double ratio;  /* CELL_RATIO: value / baseline */
    int decimals;
    char text[80];
} bench_cell;

typedef struct bench_table {
    char title[200];
    char note[240];
    int ncols;
    int nrows;
    char cols[BENCH_MAX_COLS][40];
    bench_cell cells[BENCH_MAX_ROWS][BENCH_MAX_COLS];
} bench_table;

void bench_table_init(bench_table *t, const char *title, const char *note);
int bench_table_col(bench_table *t, const char *name);
int bench_table_row(bench_table *t); /* -1 when full */
void bench_table_text(bench_table *t, int row, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void bench_table_num(bench_table *t, int row, int col, double value, int decimals);
void bench_table_ratio(bench_table *t, int row, int col, double value, double baseline, int decimals);
/* One cell per allocator in row: ns[k] with its ratio to glibc's, "n/a" where k is missing. */
void bench_table_ratios(bench_table *t, int row, const int col[BENCH_KIND_COUNT], const bench_alloc all[BENCH_KIND_COUNT],
                        const double ns[BENCH_KIND_COUNT]);
/* Prints the table now (text mode) or keeps it for the final JSON document. */
void bench_table_emit(const bench_table *t);

void bench_report_set_json(int on);
int bench_report_json(void);
/* Adds a "machine" field (printed as a header line in text mode). */
void bench_report_meta(const char *key, const char *value);
/* Writes the JSON document (JSON mode only). */
void bench_report_finish(FILE *out);

/* ------------------------------------------------------------------------ */
/* Targets (issue 3), checked against this run: targets.c                   */
/* ------------------------------------------------------------------------ */

/* X(id, limit, description) - met when the worst figure seen is <= limit. */
#define BENCH_TARGETS(X)                                                                           \
    X(POOL_FAST, 1.0, "amm-fast pool pair / mimalloc malloc+free pair, same size")                \
    X(POOL_CHECKED, 1.0, "amm-checked pool pair / mimalloc malloc+free pair, same size")          \
    X(FAST_PAIRS, 1.0, "amm-fast alloc+free pair / glibc's")                                      \
    X(CHECKED_PAIRS, 2.0, "amm-checked alloc+free pair / glibc's")                                \
    X(RSS_FAST, 1.3, "amm-fast peak RSS / peak live, mixed workload")                             \
    X(RSS_CHECKED, 1.3, "amm-checked peak RSS / peak live, mixed workload")                       \
    X(FRAG_FAST, 0.05, "amm-fast external fragmentation after compaction")                        \
    X(FRAG_CHECKED, 0.05, "amm-checked external fragmentation after compaction")

typedef enum bench_target {
#define BENCH__X(id, limit, what) BENCH_TARGET_##id,
    BENCH_TARGETS(BENCH__X)
#undef BENCH__X
    BENCH_TARGET_COUNT
} bench_target;

/* Records a figure for target t (the worst is kept, with where). */
void bench_target_observe(bench_target t, double value, const char *where);
/* Emits the targets table (targets with no figure are left out). */
void bench_targets_emit(void);

/* ------------------------------------------------------------------------ */
/* Workloads                                                                */
/* ------------------------------------------------------------------------ */

typedef struct bench_opts {
    int quick;       /* tiny iteration counts (smoke test) */
    int repeats;     /* timed repetitions; the median is reported */
    uint64_t seed;
} bench_opts;

void wl_pairs(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);
void wl_pool(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);
void wl_mixed(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);
void wl_threads(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);
void wl_frag(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);

/* Child bodies (run in a fresh process by bench_run_child). */
int wl_mixed_child(bench_alloc *a, uint64_t seed, int quick, bench_kv *out);
int wl_frag_child(bench_alloc *a, uint64_t seed, int quick, bench_kv *out);

#endif /* AMM_BENCH_H */
