/*
 * ops.h - the one op representation shared by the fuzz byte decoder, the
 * trace adapter, the text form and the executor (DESIGN.md "The data path").
 *
 *   fuzz input bytes --amm_ops_decode--+
 *   text op list ----amm_ops_parse_text+--> amm_op_list --amm_exec_run--> amm API
 *   trace file ------amm_ops_from_trace+         |
 *                                                +--amm_op_format--> "#12 alloc slot=3 size=24 align=16"
 *
 * An op names blocks by slot (a small index), never by address, so a list
 * replays deterministically against a fresh manager.  Every kind has a fixed
 * list of fields (AMM_OP_KINDS below); the byte codec, the text printer and
 * parser, and the JSON printer all walk that one table.
 *
 * Byte format (amm_ops_decode): one opcode byte (kind = byte % number of kinds
 * in the mode), then each field of the kind in order:
 *   slot, src   1 byte, % AMM_OPS_SLOTS
 *   pool        1 byte, % AMM_OPS_POOLS
 *   size        1-3 bytes: b0 < 0x80: b0; b0 < 0xE0: (b0-0x80)<<8 | b1;
 *               else ((b0-0xE0)<<16 | b1<<8 | b2) % (1 MiB + 1)      -> 0..1 MiB
 *   bsize       2 bytes: 1 + (b0<<8 | b1) % 512                      -> 1..512
 *   count       1 byte: 1 + b % 32                                   -> 1..32
 *               (small pools: amm_check reads every free slot, so big slabs would
 *               dominate the fuzzers' time; text lists and traces may ask for any size)
 *   align       1 byte, b % 24: 0 -> 0 (default), 1..17 -> 1 << (v-1) (1..64 KiB),
 *               18..23 -> the bad alignments 3, 24, 48, 1000, 65537, 2 MiB
 *   flags       1 byte & 7 (AMM_ALLOC_MOVABLE | NO_POOL | ZERO)
 *   dflags      1 byte & 3 (AMM_DEFRAG_RELEASE | COMPACT)
 *   on, mode    1 byte & 1
 *   k, after    1 byte
 *   fails       1 byte: 1 + b % 8
 *   api         1 byte % 6 (free, realloc, retain, release, size, set_movable)
 * A truncated last op is dropped.  Every byte string decodes to some list.
 *
 * Text format: one op per line, "#N kind field=value ...", where "#N" (the op
 * number, optional) and anything after "->" are ignored; blank lines and
 * lines starting with "//" or "# " are comments.  Flags are written as names
 * joined by '|' (movable|nopool|zero, release|compact) or as numbers.
 *
 * Not thread safe except where noted; no function here allocates through amm.
 */
#ifndef AMM_FUZZ_OPS_H
#define AMM_FUZZ_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <amm/amm.h>

#define AMM_OPS_SLOTS 32u          /* slots a decoded fuzz input uses */
#define AMM_OPS_POOLS 8u           /* pools the executor keeps (pool_create beyond: skipped) */
#define AMM_OPS_MAX_SLOT (1u << 20) /* largest slot number a list may use (traces) */
#define AMM_OPS_MAX_SIZE ((uint64_t)1 << 20)
/* Manager options the fuzz targets and amm-replay use unless told otherwise:
 * a small quarantine keeps amm_check (which reads all of it) cheap and makes
 * evictions frequent; purge_delay=0 makes purging depend on the ops alone, not
 * on the clock, so a run repeats exactly. */
#define AMM_FUZZ_OPTIONS "quarantine=64K,quarantine_blocks=64,purge_delay=0"
/* ... and, with two threads, for an op list of odd length: no quarantine, so
 * the thread caches run (a quarantine turns them off); the choice follows
 * the list, so a replay of the input repeats it. */
#define AMM_FUZZ_OPTIONS_NO_QUARANTINE "quarantine=0,quarantine_blocks=0,purge_delay=0"

/* Fields an op kind may use.  X(enum, text name); NONE (0) pads a kind's list. */
#define AMM_OP_FIELDS(X) \
    X(NONE, "")          \
    X(SLOT, "slot")      \
    X(SRC, "src")        \
    X(POOL, "pool")      \
    X(SIZE, "size")      \
    X(BSIZE, "size")     \
    X(COUNT, "count")    \
    X(ALIGN, "align")    \
    X(FLAGS, "flags")    \
    X(DFLAGS, "flags")   \
    X(ON, "on")          \
    X(MODE, "json")      \
    X(K, "k")            \
    X(AFTER, "after")    \
    X(FAILS, "fails")    \
    X(API, "api")

typedef enum amm_op_field {
#define AMM__X(e, name) AMM_OPF_##e,
    AMM_OP_FIELDS(AMM__X)
#undef AMM__X
    AMM_OPF__END
} amm_op_field;

#define AMM_OP_MAX_FIELDS 4

/*
 * X(enum, text name, fields..., up to AMM_OP_MAX_FIELDS; AMM_OPF_NONE if none).
 * The basic kinds come first (fuzz_ops, fuzz_threads decode only those); the
 * misuse kinds, from AMM_OP_FIRST_MISUSE on, are decoded in AMM_OPS_FULL mode.
 *   alloc          allocate into an empty slot (occupied: skipped)
 *   free           free the slot's block (refcount must be 1: else skipped)
 *   realloc        resize the slot's block (empty slot: like alloc)
 *   copy           amm_copy of src's first `size` bytes (reduced into 0..src size) into slot
 *   retain/release refcount +1 / -1 (release at 1 frees)
 *   pool_create    a pool of count slots of size bytes
 *   pool_alloc     allocate from pool number `pool` (creation order)
 *   defragment     amm_defragment(flags); moves update the slots
 *   check, stats   amm_check must find 0; the stats must equal the model
 *   print          amm_print (json=0) or amm_dump_json (json=1) to /dev/null
 *   set_movable    amm_set_movable(on)
 *   inject         amm__os_inject_failures(after, fails): system maps fail
 *   overflow       flip k bytes (reduced into 1..canary) just past the block's end
 *   underflow      flip k bytes (reduced into 1..canary) just before the block
 *   write_after_free free the block (if live), flip byte k % size of it while quarantined
 *   double_free    free the block (if live), then free it again
 *   interior_free  free ptr + k (k reduced into 1..size-1)
 *   foreign        call api (free, realloc, ...) with a pointer amm never handed out
 *   free_shared    retain if the refcount is 1, then free: refused as shared
 *   copy_overread  amm_copy of size(src) + 1 + k % 64 bytes: refused as an overflow
 * Each misuse op is followed by amm_check; the oracle is one report of the right kind.
 *   scribble       (text only, never decoded from bytes) flips byte k % size of a
 *                  live block behind the model's back: the executor must catch it.
 *                  It exists to show the oracle can fail (tests/fuzz, amm-replay tests).
 */
#define AMM_OP_KINDS(X)                                                  \
    X(ALLOC, "alloc", AMM_OPF_SLOT, AMM_OPF_SIZE, AMM_OPF_ALIGN, AMM_OPF_FLAGS) \
    X(FREE, "free", AMM_OPF_SLOT)                                         \
    X(REALLOC, "realloc", AMM_OPF_SLOT, AMM_OPF_SIZE, AMM_OPF_ALIGN)      \
    X(COPY, "copy", AMM_OPF_SLOT, AMM_OPF_SRC, AMM_OPF_SIZE)              \
    X(RETAIN, "retain", AMM_OPF_SLOT)                                     \
    X(RELEASE, "release", AMM_OPF_SLOT)                                   \
    X(POOL_CREATE, "pool_create", AMM_OPF_BSIZE, AMM_OPF_COUNT, AMM_OPF_ALIGN) \
    X(POOL_ALLOC, "pool_alloc", AMM_OPF_SLOT, AMM_OPF_POOL, AMM_OPF_SIZE, AMM_OPF_ALIGN) \
    X(DEFRAGMENT, "defragment", AMM_OPF_DFLAGS)                           \
    X(CHECK, "check", AMM_OPF_NONE)                                                     \
    X(STATS, "stats", AMM_OPF_NONE)                                                     \
    X(PRINT, "print", AMM_OPF_MODE)                                       \
    X(SET_MOVABLE, "set_movable", AMM_OPF_SLOT, AMM_OPF_ON)               \
    X(INJECT, "inject", AMM_OPF_AFTER, AMM_OPF_FAILS)                     \
    X(OVERFLOW, "overflow", AMM_OPF_SLOT, AMM_OPF_K)                      \
    X(UNDERFLOW, "underflow", AMM_OPF_SLOT, AMM_OPF_K)                    \
    X(WRITE_AFTER_FREE, "write_after_free", AMM_OPF_SLOT, AMM_OPF_K)      \
    X(DOUBLE_FREE, "double_free", AMM_OPF_SLOT)                           \
    X(INTERIOR_FREE, "interior_free", AMM_OPF_SLOT, AMM_OPF_K)            \
    X(FOREIGN, "foreign", AMM_OPF_API, AMM_OPF_K)                         \
    X(FREE_SHARED, "free_shared", AMM_OPF_SLOT)                           \
    X(COPY_OVERREAD, "copy_overread", AMM_OPF_SLOT, AMM_OPF_SRC, AMM_OPF_K)       \
    X(SCRIBBLE, "scribble", AMM_OPF_SLOT, AMM_OPF_K)

typedef enum amm_op_kind {
#define AMM__X(e, name, ...) AMM_OP_##e,
    AMM_OP_KINDS(AMM__X)
#undef AMM__X
    AMM_OP_KIND_COUNT
} amm_op_kind;

#define AMM_OP_FIRST_MISUSE AMM_OP_OVERFLOW
#define AMM_OP_DECODABLE AMM_OP_SCRIBBLE /* kinds from here on are text only */

/* Decoding modes: which kinds the opcode byte selects among. */
typedef enum amm_ops_mode {
    AMM_OPS_BASIC = 0, /* alloc .. inject (fuzz_ops, fuzz_threads) */
    AMM_OPS_FULL = 1   /* every kind, misuse included (fuzz_misuse) */
} amm_ops_mode;

/* Values of the api field of a foreign op. */
#define AMM_OP_APIS(X) X(FREE, "free") X(REALLOC, "realloc") X(RETAIN, "retain") \
    X(RELEASE, "release") X(SIZE, "size") X(SET_MOVABLE, "set_movable")
typedef enum amm_op_api {
#define AMM__X(e, name) AMM_API_##e,
    AMM_OP_APIS(AMM__X)
#undef AMM__X
    AMM_API_COUNT
} amm_op_api;

/* One op.  Fields a kind does not use are 0. */
typedef struct amm_op {
    amm_op_kind kind;
    uint32_t slot;   /* slot */
    uint32_t src;    /* src (copy), pool (pool_alloc) */
    uint64_t size;   /* size, bsize */
    uint64_t align;  /* align */
    uint64_t k;      /* k, after, on, json */
    uint64_t n;      /* count, fails */
    uint32_t flags;  /* flags, dflags, api */
    uint64_t addr;   /* informational: the address a trace recorded for the op's block, printed as
                        " -> 0x..." (0: none); the parser skips it, the codec does not carry it */
} amm_op;

typedef struct amm_op_list {
    amm_op *ops;
    size_t count, cap;
} amm_op_list;

/* List storage (plain malloc).  push returns 0, or -1 if memory is refused. */
int amm_ops_push(amm_op_list *l, const amm_op *op);
void amm_ops_free(amm_op_list *l);

const char *amm_op_kind_name(amm_op_kind kind);           /* "alloc", or "unknown" */
int amm_op_kind_from_name(const char *name, size_t len);  /* -1 if unknown */
size_t amm_ops_mode_kinds(amm_ops_mode mode);              /* kinds selectable in mode */
int amm_op_is_misuse(amm_op_kind kind);

/* Bytes -> ops.  Stops at max_ops (0 = no limit).  Returns 0, or -1 if memory is refused. O(len). */
int amm_ops_decode(const uint8_t *data, size_t len, amm_ops_mode mode, size_t max_ops, amm_op_list *out);

/* Ops -> bytes that decode to the same list.  Returns 0, or -1 with err naming
 * the op and field that has no byte form (e.g. align=5). *out is malloc'd. */
int amm_ops_encode(const amm_op_list *l, amm_ops_mode mode, uint8_t **out, size_t *len, char *err, size_t err_len);

/* One op as text ("#12 alloc slot=3 size=24 align=16").  Returns snprintf's length. */
int amm_op_format(const amm_op *op, size_t index, char *buf, size_t len);
/* One op as a JSON object ({"n":12,"op":"alloc","slot":3,...}). */
int amm_op_format_json(const amm_op *op, size_t index, char *buf, size_t len);

/* Text -> ops.  Returns 0, or -1 with err naming the line ("line 4: unknown op 'alocc'"). */
int amm_ops_parse_text(const char *text, size_t len, amm_op_list *out, char *err, size_t err_len);

/* Input formats and content detection. */
typedef enum amm_ops_format { AMM_FMT_AUTO = 0, AMM_FMT_RAW, AMM_FMT_TEXT, AMM_FMT_TRACE } amm_ops_format;
const char *amm_ops_format_name(amm_ops_format f);
/* AMMTRACE magic -> trace; only printable ASCII and whitespace -> text; else raw. */
amm_ops_format amm_ops_detect(const uint8_t *data, size_t len);

/* What the trace adapter did with the events it read. */
typedef struct amm_trace_adapt {
    uint64_t events;     /* events read */
    uint64_t ops;        /* ops produced */
    uint64_t ignored;    /* events with no op (regions, samples, ...) */
    uint64_t unmatched;  /* events naming an address with no live slot */
    uint64_t damaged;    /* damage reports the reader resynchronised past */
} amm_trace_adapt;

/*
 * Trace (in memory) -> ops: maps each live address to a slot (lowest free
 * slot first), pools to pool numbers, faults to misuse ops where they have
 * one.  Returns 0; -1 with err on an unreadable trace or too many live blocks.
 * progress (may be NULL) is told the bytes consumed now and then.
 */
int amm_ops_from_trace(const uint8_t *data, size_t len, amm_op_list *out, amm_trace_adapt *st,
                       void (*progress)(uint64_t done, uint64_t total, void *user), void *user,
                       char *err, size_t err_len);

/* Buffer -> ops in the given (or detected) format; *used gets the format. */
int amm_ops_load(const uint8_t *data, size_t len, amm_ops_format format, amm_ops_mode mode,
                 amm_op_list *out, amm_ops_format *used, char *err, size_t err_len);

/* Reads a whole file (at most max bytes) into a malloc'd buffer. 0, or -1 with err. */
int amm_read_file(const char *path, size_t max, uint8_t **data, size_t *len, char *err, size_t err_len);

/* ------------------------------------------------------------------------ */
/* Executor                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct amm_exec_options {
    size_t check_every;     /* amm_check + full model check every N ops (0: only at the end) */
    int misuse;             /* run misuse ops (else they are skipped) */
    int threads;            /* 1, or 2: ops go to thread slot % 2 (no moves, no inject) */
    const char *trace_path; /* write the replay's trace here (NULL: none) */
    const char *options;    /* AMM_OPTIONS-style string for the manager (NULL: AMM_FUZZ_OPTIONS, see there) */
    int verbose;            /* print each op to stderr as it runs */
    void (*progress)(uint64_t done, uint64_t total, void *user);
    void *progress_user;
    /* Called every sample_every ops (0: never) and at the end with the manager's stats. */
    void (*sample)(size_t op, const amm_stats *st, void *user);
    size_t sample_every;
    void *sample_user;
} amm_exec_options;

typedef enum amm_exec_status {
    AMM_EXEC_CLEAN = 0, /* every op ran and every check held */
    AMM_EXEC_FAULT = 1, /* a check failed or an unexpected fault was reported */
    AMM_EXEC_SETUP = 2  /* could not start (bad options, no manager, no memory) */
} amm_exec_status;

typedef struct amm_exec_result {
    amm_exec_status status;
    size_t op_index;       /* the op at fault (status FAULT); ops count if at the end */
    char message[640];     /* what failed, in one line */
    size_t ops_run, ops_skipped, faults_expected;
    size_t peak_live_bytes, peak_live_blocks;
} amm_exec_result;

void amm_exec_options_default(amm_exec_options *opt);

/* Runs the list against a fresh manager.  Thread safe (no global state but
 * the failure injection, which it resets at the end). */
amm_exec_status amm_exec_run(const amm_op_list *l, const amm_exec_options *opt, amm_exec_result *res);

/* ------------------------------------------------------------------------ */
/* Fuzz entry points (fuzz_ops.c, fuzz_misuse.c, fuzz_threads.c)            */
/* ------------------------------------------------------------------------ */

#define AMM_FUZZ_MAX_OPS 2048     /* ops decoded from one input */
/* The fuzz targets' checkpoint interval (amm_check is O(heap) and dominates
 * the cost); AMM_FUZZ_CHECK_EVERY overrides it, and amm-replay checks after
 * every op by default.  amm_check_fast runs after every op regardless. */
#define AMM_FUZZ_CHECK_DEFAULT 8

typedef enum amm_fuzz_target { AMM_FUZZ_OPS, AMM_FUZZ_MISUSE, AMM_FUZZ_THREADS } amm_fuzz_target;

/* Decodes and runs one input; on a fault prints it, with the amm-replay
 * command that replays it, and aborts (so the fuzzer keeps the input). */
void amm_fuzz_ops_input(const uint8_t *data, size_t size, amm_fuzz_target target);

#endif /* AMM_FUZZ_OPS_H */
