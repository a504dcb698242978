/*
 * ops_exec.c - runs an op list against a fresh amm manager and checks it
 * against a shadow model.
 *
 * The model keeps, per slot, the block's pointer, size, requested alignment,
 * refcount, movable flag and a pattern generation.  Every block is filled
 * with a 64-byte pattern derived from (slot, generation) as soon as it is
 * handed out; the pattern must still be there when the block is freed,
 * resized, copied, moved or checked.  The oracle, op by op:
 *  - every call returns what the API promises (refcounts, -1 refusals, NULL);
 *  - the error handler is called exactly for the faults the op provokes, with
 *    the right kind (and, for canary damage, the right offset and byte count);
 *    out-of-memory reports are tolerated only once an inject op has run;
 *  - at a checkpoint (every check_every ops and at the end): amm_check finds
 *    nothing, every live block is owned, aligned, intact (head and tail; the
 *    whole block at the end) and disjoint from the others, and the stats'
 *    live_blocks / live_bytes equal the model's.
 * The first failure stops the run and names the op.
 *
 * Threads mode splits the ops over two threads by slot (slot % 2) and runs
 * global ops on thread index % 2; moves and failure injection are skipped
 * there (they would touch the other thread's slots or the whole process).
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* amm__os_inject_failures */
#include "ops.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EXEC_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EXEC_ASAN 1
#endif
#ifdef EXEC_ASAN
#include <sanitizer/asan_interface.h>
#define EXEC_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define EXEC_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define EXEC_SITE "amm-replay"      /* allocation site file; the line is the op number */
#define EXEC_MAX_RC 1000u           /* retains beyond this are skipped */
#define EXEC_KEPT_REPORTS 4         /* reports kept (with text) per op */
#define EXEC_HEAD 32                /* bytes checked at each end of a larger block at a checkpoint */
#define EXEC_WHOLE 256              /* blocks up to this size are checked whole at every checkpoint */
#define EXEC_HUGE ((uint64_t)64 << 20) /* requests above this may fail without injection */
#define BIT(kind) (1u << (kind))

enum { RUN_OK = 0, RUN_SKIPPED = 1, RUN_FAIL = -1 };

typedef struct slot {
    unsigned char *ptr;   /* NULL: empty */
    size_t size, align;   /* align as requested (0: default) */
    unsigned rc;
    int movable;
    uint32_t gen;         /* pattern generation */
    unsigned char *freed; /* the last pointer freed from this slot, for misuse ops */
} slot;

typedef struct kept_report {
    amm_error_kind kind;
    long long offset;
    size_t bytes;
    char text[200];
} kept_report;

typedef struct exec exec;

/* One executing thread. */
typedef struct ctx {
    exec *x;
    int id;
    amm_pool *pools[AMM_OPS_POOLS];
    size_t pool_count;
    kept_report reports[EXEC_KEPT_REPORTS];
    size_t nreports;
    size_t op;             /* index of the op running */
    size_t live_blocks, live_bytes;
    amm_exec_result res;
    int failed;
} ctx;

struct exec {
    amm_manager *m;
    amm_config cfg;
    const amm_op_list *l;
    const amm_exec_options *opt;
    slot *slots;
    size_t nslots;
    FILE *devnull;
    int injecting;
    int threads;
    atomic_int stop;
    size_t moves_seen;
    char move_error[200];
    ctx ctxs[2];
};

static _Thread_local ctx *tl_ctx;
static unsigned char foreign_buf[256];

/* ---- helpers ----------------------------------------------------------- */

static int fail(ctx *c, const char *fmt, ...) {
    if (c->failed) return RUN_FAIL;
    c->failed = 1;
    c->res.status = AMM_EXEC_FAULT;
    c->res.op_index = c->op;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->res.message, sizeof c->res.message, fmt, ap);
    va_end(ap);
    return RUN_FAIL;
}

static void on_fault(const amm_report *r, void *user) {
    ctx *c = tl_ctx;
    (void)user;
    if (!c) return;
    if (c->nreports < EXEC_KEPT_REPORTS) {
        kept_report *k = &c->reports[c->nreports];
        k->kind = r->kind;
        k->offset = r->offset;
        k->bytes = r->bytes;
        amm_report_format(r, k->text, sizeof k->text);
    }
    c->nreports++;
}

static void on_move(void *old_ptr, void *new_ptr, size_t size, void *user) {
    exec *x = user;
    x->moves_seen++;
    for (size_t i = 0; i < x->nslots; i++) {
        slot *s = &x->slots[i];
        if (s->ptr != old_ptr) continue;
        if (!s->movable && !x->move_error[0])
            snprintf(x->move_error, sizeof x->move_error, "slot %zu moved but it is not movable", i);
        if (s->size != size && !x->move_error[0])
            snprintf(x->move_error, sizeof x->move_error, "slot %zu moved with size %zu, it has %zu", i, size,
                     s->size);
        s->ptr = new_ptr;
        return;
    }
    if (!x->move_error[0]) snprintf(x->move_error, sizeof x->move_error, "move of %p, no slot has it", old_ptr);
}

static int valid_align(uint64_t a) { return a == 0 || ((a & (a - 1)) == 0 && a <= AMM_MAX_ALIGN); }
static size_t eff_align(size_t a) { return a ? a : AMM_DEFAULT_ALIGN; }
static int site_line(size_t op) { return op > INT_MAX ? INT_MAX : (int)op; }

static void pattern(unsigned char blk[64], size_t slot_no, uint32_t gen) {
    uint32_t h = (uint32_t)slot_no * 2654435761u ^ gen * 40503u ^ 0x9E37u;
    for (size_t i = 0; i < 64; i++) {
        h = h * 1103515245u + 12345u;
        blk[i] = (unsigned char)(h >> 16);
    }
}

/* Fills the slot's block with a fresh pattern generation: one 64-byte period, then doubling copies. */
static void fill(exec *x, size_t i) {
    slot *s = &x->slots[i];
    unsigned char blk[64];
    s->gen++;
    pattern(blk, i, s->gen);
    memcpy(s->ptr, blk, s->size < 64 ? s->size : 64);
    for (size_t n = 64; n < s->size; n *= 2) memcpy(s->ptr + n, s->ptr, s->size - n < n ? s->size - n : n);
}

/* Checks bytes [a, b) of p against slot i's pattern generation gen; fails naming the first bad byte. */
static int verify_range(ctx *c, size_t i, const unsigned char *p, uint32_t gen, size_t a, size_t b, const char *when) {
    unsigned char blk[64];
    pattern(blk, i, gen);
    /* Fast path for a whole block: the first period matches and every byte equals the one 64 before. */
    if (a == 0 && b > 64 && memcmp(p, blk, 64) == 0 && memcmp(p + 64, p, b - 64) == 0) return RUN_OK;
    for (size_t off = a; off < b;) {
        size_t n = 64 - off % 64;
        if (n > b - off) n = b - off;
        if (memcmp(p + off, blk + off % 64, n) != 0) {
            while (p[off] == blk[off % 64]) off++;
            return fail(c, "slot %zu (%p, %zu bytes) %s: byte %zu is 0x%02x, the pattern says 0x%02x", i, (void *)p,
                        c->x->slots[i].size, when, off, p[off], blk[off % 64]);
        }
        off += n;
    }
    return RUN_OK;
}

/* Whole block (asked, or small), or its head and tail only. */
static int verify_slot(ctx *c, size_t i, int whole, const char *when) {
    slot *s = &c->x->slots[i];
    if (whole || s->size <= EXEC_WHOLE) return verify_range(c, i, s->ptr, s->gen, 0, s->size, when);
    if (verify_range(c, i, s->ptr, s->gen, 0, EXEC_HEAD, when)) return RUN_FAIL;
    return verify_range(c, i, s->ptr, s->gen, s->size - EXEC_HEAD, s->size, when);
}

static const char *kind_list(unsigned mask, char *buf, size_t len) {
    size_t pos = 0;
    buf[0] = '\0';
    for (unsigned k = 0; k < AMM_ERR_COUNT; k++) {
        if (!(mask & BIT(k))) continue;
        int w = snprintf(buf + pos, len - pos, "%s%s", pos ? " or " : "", amm_error_name((amm_error_kind)k));
        if (w < 0 || (size_t)w >= len - pos) break;
        pos += (size_t)w;
    }
    return buf[0] ? buf : "none";
}

/*
 * The reports of the op so far must be between min and max reports whose kind
 * is in allowed; out-of-memory reports are tolerated while injecting.  Resets
 * the report list.
 */
static int expect(ctx *c, unsigned allowed, size_t min, size_t max) {
    size_t matched = 0, kept = c->nreports < EXEC_KEPT_REPORTS ? c->nreports : EXEC_KEPT_REPORTS;
    char kinds[160];
    for (size_t i = 0; i < kept; i++) {
        const kept_report *r = &c->reports[i];
        if (allowed & BIT(r->kind)) {
            matched++;
        } else if (!(r->kind == AMM_ERR_OUT_OF_MEMORY && c->x->injecting)) {
            c->nreports = 0;
            return fail(c, "unexpected report (expected %s): %s", kind_list(allowed, kinds, sizeof kinds), r->text);
        }
    }
    if (c->nreports > kept) {
        size_t n = c->nreports;
        c->nreports = 0;
        return fail(c, "%zu reports for one op (expected at most %zu of %s)", n, max, kind_list(allowed, kinds, sizeof kinds));
    }
    c->nreports = 0;
    if (matched < min || matched > max)
        return fail(c, "expected %zu..%zu report(s) of %s, got %zu%s%s", min, max, kind_list(allowed, kinds, sizeof kinds),
                    matched, kept ? ": " : "", kept ? c->reports[0].text : "");
    return RUN_OK;
}

/* Expect exactly one report of kind, and (for canary damage) its offset and byte count. */
static int expect_one(ctx *c, amm_error_kind kind, int exact, long long offset, size_t bytes) {
    kept_report first = c->reports[0];
    size_t n = c->nreports;
    if (expect(c, BIT(kind), 1, 1)) return RUN_FAIL;
    if (exact && n == 1 && (first.offset != offset || first.bytes != bytes))
        return fail(c, "%s reported at offset %lld, %zu bytes; the damage is at offset %lld, %zu bytes: %s",
                    amm_error_name(kind), first.offset, first.bytes, offset, bytes, first.text);
    return RUN_OK;
}

static void model_add(ctx *c, size_t i, unsigned char *p, size_t size, size_t align, int movable) {
    slot *s = &c->x->slots[i];
    s->ptr = p;
    s->size = size;
    s->align = align;
    s->rc = 1;
    s->movable = movable;
    c->live_blocks++;
    c->live_bytes += size;
    fill(c->x, i);
}

static void model_drop(ctx *c, size_t i) {
    slot *s = &c->x->slots[i];
    s->freed = s->ptr;
    s->ptr = NULL;
    c->live_blocks--;
    c->live_bytes -= s->size;
}

/* A slot's block is placed right: aligned as asked and owned by the manager. */
static int verify_placement(ctx *c, size_t i) {
    slot *s = &c->x->slots[i];
    if ((uintptr_t)s->ptr % eff_align(s->align))
        return fail(c, "slot %zu at %p is not aligned to %zu", i, (void *)s->ptr, eff_align(s->align));
    if (!amm_owns(c->x->m, s->ptr)) return fail(c, "slot %zu at %p is live but amm_owns says no", i, (void *)s->ptr);
    return RUN_OK;
}

/* A fresh block holds zeros (AMM_ALLOC_ZERO) or the new-fill byte (fill on). */
static int verify_fresh(ctx *c, const unsigned char *p, size_t size, unsigned flags) {
    size_t n = size < 64 ? size : 64;
    int want = (flags & AMM_ALLOC_ZERO) ? 0 : c->x->cfg.fill ? (int)AMM_FILL_NEW : -1;
    for (size_t i = 0; want >= 0 && i < n; i++)
        if (p[i] != want) return fail(c, "new block %p: byte %zu is 0x%02x, expected 0x%02x", (void *)p, i, p[i], want);
    return RUN_OK;
}

/*
 * An allocating call returned NULL: fine with an out-of-memory report while
 * injecting, or for a huge request (a trace may ask for anything), never
 * silently.
 */
static int null_result(ctx *c, uint64_t bytes, const char *what) {
    int huge = bytes > EXEC_HUGE;
    size_t n = c->nreports;
    unsigned ok = huge ? BIT(AMM_ERR_OUT_OF_MEMORY) | BIT(AMM_ERR_BAD_SIZE) : 0;
    if (expect(c, ok, 0, n)) return RUN_FAIL;
    if (!c->x->injecting && !huge) return fail(c, "%s of %llu bytes returned NULL", what, (unsigned long long)bytes);
    return n ? RUN_OK : fail(c, "%s returned NULL without a report", what);
}

/* After an allocating call: NULL must come with a report; a block must be fresh and placed. */
static int took_block(ctx *c, size_t i, void *p, size_t size, size_t align, unsigned flags, const char *what) {
    if (!p) return null_result(c, size, what);
    if (expect(c, 0, 0, 0) || verify_fresh(c, p, size, flags)) return RUN_FAIL;
    model_add(c, i, p, size, align, (flags & AMM_ALLOC_MOVABLE) != 0);
    return verify_placement(c, i);
}

static int own_slot(ctx *c, uint32_t i) { return i < c->x->nslots && (c->x->threads == 1 || i % 2 == (uint32_t)c->id); }

/* ---- one function per op ----------------------------------------------- */

/* The slots used in each of the context's pools. */
static void pool_usage(ctx *c, size_t used[AMM_OPS_POOLS]) {
    for (size_t i = 0; i < c->pool_count; i++) {
        amm_pool_info info;
        used[i] = amm_pool_info_get(c->x->m, c->pools[i], &info) == 0 ? info.used : 0;
    }
}

/*
 * The pool amm_alloc must take a slot from: the one pool with the smallest
 * block size among those whose slots fit size and alignment, if it has a free
 * slot.  -1 when nothing is claimed (no pool fits, a tie, or it is full).
 */
static long pool_expected(ctx *c, size_t size, size_t align) {
    long best = -1;
    int tie = 0;
    amm_pool_info bi, info;
    memset(&bi, 0, sizeof bi);
    for (size_t i = 0; size > 0 && i < c->pool_count; i++) {
        if (amm_pool_info_get(c->x->m, c->pools[i], &info) || size > info.block_size || eff_align(align) > info.alignment)
            continue;
        if (best < 0 || info.block_size < bi.block_size) {
            best = (long)i, bi = info, tie = 0;
        } else if (info.block_size == bi.block_size) {
            tie = 1;
        }
    }
    return best >= 0 && !tie && bi.free > 0 ? best : -1;
}

/* After a successful alloc: the claimed pool gave the slot, or (no_pool) no pool did. */
static int verify_pool_choice(ctx *c, long want, int no_pool, const size_t before[AMM_OPS_POOLS]) {
    size_t after[AMM_OPS_POOLS];
    pool_usage(c, after);
    for (size_t i = 0; i < c->pool_count; i++) {
        if (no_pool && after[i] != before[i]) return fail(c, "alloc with nopool took a slot of pool %zu", i);
        if ((long)i == want && after[i] != before[i] + 1)
            return fail(c, "alloc did not take a slot of pool %zu, the smallest that fits and has a free slot", i);
    }
    return RUN_OK;
}

static int op_alloc(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot) || c->x->slots[op->slot].ptr) return RUN_SKIPPED;
    unsigned flags = op->flags & 7u;
    int single = c->x->threads == 1 && valid_align(op->align);
    size_t before[AMM_OPS_POOLS];
    long want = -1;
    if (c->x->threads > 1) flags &= ~AMM_ALLOC_MOVABLE;
    if (single) {
        pool_usage(c, before);
        if (!(flags & AMM_ALLOC_NO_POOL)) want = pool_expected(c, (size_t)op->size, (size_t)op->align);
    }
    void *p = amm_alloc_at(c->x->m, (size_t)op->size, (size_t)op->align, flags, EXEC_SITE, site_line(c->op));
    if (!valid_align(op->align)) {
        if (p) return fail(c, "alloc with alignment %llu returned %p", (unsigned long long)op->align, p);
        return expect_one(c, AMM_ERR_BAD_ALIGNMENT, 0, 0, 0);
    }
    if (took_block(c, op->slot, p, (size_t)op->size, (size_t)op->align, flags, "alloc")) return RUN_FAIL;
    return p && single ? verify_pool_choice(c, want, (flags & AMM_ALLOC_NO_POOL) != 0, before) : RUN_OK;
}

/* Frees a live slot whose refcount is 1, checking its pattern first. */
static int free_slot(ctx *c, uint32_t i) {
    slot *s = &c->x->slots[i];
    if (verify_slot(c, i, 1, "before free")) return RUN_FAIL;
    int r = amm_free_at(c->x->m, s->ptr, EXEC_SITE, site_line(c->op));
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (r != 0) return fail(c, "free of slot %u (%p) returned %d", i, (void *)s->ptr, r);
    model_drop(c, i);
    return RUN_OK;
}

static int op_free(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot) || !c->x->slots[op->slot].ptr || c->x->slots[op->slot].rc != 1) return RUN_SKIPPED;
    return free_slot(c, op->slot);
}

static int op_realloc(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot)) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->slot];
    size_t size = (size_t)op->size;
    if (!s->ptr) {
        void *p = amm_realloc_at(c->x->m, NULL, size, (size_t)op->align, EXEC_SITE, site_line(c->op));
        if (!valid_align(op->align)) {
            if (p) return fail(c, "realloc(NULL) with alignment %llu returned %p", (unsigned long long)op->align, p);
            return expect_one(c, AMM_ERR_BAD_ALIGNMENT, 0, 0, 0);
        }
        return took_block(c, op->slot, p, size, (size_t)op->align, 0, "realloc(NULL)");
    }
    if (verify_slot(c, op->slot, 1, "before realloc")) return RUN_FAIL;
    unsigned char *old = s->ptr;
    unsigned char *p = amm_realloc_at(c->x->m, old, size, (size_t)op->align, EXEC_SITE, site_line(c->op));
    if (!valid_align(op->align)) {
        if (p) return fail(c, "realloc with alignment %llu returned %p", (unsigned long long)op->align, (void *)p);
        if (expect_one(c, AMM_ERR_BAD_ALIGNMENT, 0, 0, 0)) return RUN_FAIL;
        return verify_slot(c, op->slot, 0, "after a refused realloc");
    }
    if (!p) {
        if (null_result(c, op->size, "realloc")) return RUN_FAIL;
        return verify_slot(c, op->slot, 0, "after a failed realloc");
    }
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    s->ptr = p;
    size_t keep = size < s->size ? size : s->size;
    if (verify_range(c, op->slot, p, s->gen, 0, keep, "after realloc")) return RUN_FAIL;
    if (p != old) s->freed = old;
    c->live_bytes += size;
    c->live_bytes -= s->size;
    s->size = size;
    if (op->align) s->align = (size_t)op->align;
    fill(c->x, op->slot);
    return verify_placement(c, op->slot);
}

static int op_copy(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot) || !own_slot(c, op->src)) return RUN_SKIPPED;
    slot *d = &c->x->slots[op->slot], *s = &c->x->slots[op->src];
    if (d->ptr || !s->ptr) return RUN_SKIPPED;
    size_t size = op->size <= s->size ? (size_t)op->size : (size_t)(op->size % (s->size + 1));
    if (verify_slot(c, op->src, 0, "before copy")) return RUN_FAIL;
    unsigned char *p = amm_copy_at(c->x->m, s->ptr, size, EXEC_SITE, site_line(c->op));
    if (!p) return null_result(c, size, "copy");
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (memcmp(p, s->ptr, size) != 0) return fail(c, "the copy of slot %u differs from it", op->src);
    model_add(c, op->slot, p, size, 0, 0);
    return verify_placement(c, op->slot);
}

static int op_retain(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot)) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->slot];
    if (!s->ptr || s->rc >= EXEC_MAX_RC) return RUN_SKIPPED;
    unsigned r = amm_retain_at(c->x->m, s->ptr, EXEC_SITE, site_line(c->op));
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (r != s->rc + 1) return fail(c, "retain of slot %u returned %u, the count was %u", op->slot, r, s->rc);
    s->rc = r;
    return RUN_OK;
}

static int op_release(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot)) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->slot];
    if (!s->ptr) return RUN_SKIPPED;
    if (s->rc == 1 && verify_slot(c, op->slot, 1, "before its last release")) return RUN_FAIL;
    unsigned r = amm_release_at(c->x->m, s->ptr, EXEC_SITE, site_line(c->op));
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (r != s->rc - 1) return fail(c, "release of slot %u returned %d, the count was %u", op->slot, (int)r, s->rc);
    s->rc = r;
    if (r == 0) model_drop(c, op->slot);
    return RUN_OK;
}

static int op_pool_create(ctx *c, const amm_op *op) {
    if (c->pool_count == AMM_OPS_POOLS) return RUN_SKIPPED;
    amm_pool *p = amm_pool_create(c->x->m, (size_t)op->size, (size_t)op->n, (size_t)op->align);
    if (!valid_align(op->align) || op->size == 0 || op->n == 0) {
        if (p) return fail(c, "pool_create with bad arguments returned a pool");
        return expect(c, BIT(AMM_ERR_BAD_ALIGNMENT) | BIT(AMM_ERR_BAD_SIZE), 1, 1);
    }
    if (!p) {
        uint64_t bytes = op->n && op->size > UINT64_MAX / op->n ? UINT64_MAX : op->size * op->n;
        return null_result(c, bytes, "pool_create");
    }
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    c->pools[c->pool_count++] = p;
    return RUN_OK;
}

static int op_pool_alloc(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot) || c->x->slots[op->slot].ptr || op->src >= c->pool_count) return RUN_SKIPPED;
    amm_pool *pool = c->pools[op->src];
    amm_pool_info info;
    if (amm_pool_info_get(c->x->m, pool, &info) != 0) return fail(c, "pool %u: amm_pool_info_get refused it", op->src);
    void *p = amm_pool_alloc_at(c->x->m, pool, (size_t)op->size, (size_t)op->align, EXEC_SITE, site_line(c->op));
    if (!valid_align(op->align)) {
        if (p) return fail(c, "pool_alloc with alignment %llu returned %p", (unsigned long long)op->align, p);
        return expect(c, BIT(AMM_ERR_BAD_ALIGNMENT), 0, 1);
    }
    if (!p) {
        if (expect(c, 0, 0, 0)) return RUN_FAIL;
        int fits = op->size <= info.block_size && op->align <= info.alignment;
        /* with two threads the other one may take the last slot between the info and the alloc */
        if (fits && info.free > 0 && c->x->threads == 1)
            return fail(c, "pool_alloc of %llu bytes from pool %u returned NULL with %zu free slots",
                        (unsigned long long)op->size, op->src, info.free);
        return RUN_OK;
    }
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)info.base;
    if (a < base || a + op->size > base + info.slab_bytes)
        return fail(c, "pool_alloc returned %p outside pool %u's slab", p, op->src);
    return took_block(c, op->slot, p, (size_t)op->size, (size_t)op->align, 0, "pool_alloc");
}

static int op_defragment(ctx *c, const amm_op *op) {
    exec *x = c->x;
    unsigned flags = op->flags & 3u;
    if (x->threads > 1) flags &= ~AMM_DEFRAG_COMPACT;
    amm_defrag_report rep;
    int compact = (flags & AMM_DEFRAG_COMPACT) != 0; /* never in threads mode: the move state is shared */
    if (compact) {
        x->moves_seen = 0;
        x->move_error[0] = '\0';
    }
    amm_defragment(x->m, flags, &rep);
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (compact && x->move_error[0]) return fail(c, "%s", x->move_error);
    if (rep.blocks_moved != (compact ? x->moves_seen : 0))
        return fail(c, "defragment says %zu blocks moved, the move callback saw %zu", rep.blocks_moved,
                    compact ? x->moves_seen : 0);
    if (rep.before.live_bytes != rep.after.live_bytes || rep.before.live_blocks != rep.after.live_blocks)
        return fail(c, "defragment changed live blocks/bytes: %zu/%zu -> %zu/%zu", rep.before.live_blocks,
                    rep.before.live_bytes, rep.after.live_blocks, rep.after.live_bytes);
    for (size_t i = 0; compact && x->moves_seen && i < x->nslots; i++) {
        if (x->slots[i].ptr && x->slots[i].movable &&
            (verify_slot(c, i, 1, "after compaction") || verify_placement(c, i)))
            return RUN_FAIL;
    }
    return RUN_OK;
}

static int checkpoint(ctx *c, int whole);

static int op_check(ctx *c, const amm_op *op) {
    (void)op;
    size_t n = amm_check(c->x->m);
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    return n ? fail(c, "amm_check found %zu problems", n) : RUN_OK;
}

static int op_stats(ctx *c, const amm_op *op) {
    (void)op;
    if (c->x->threads > 1) {
        amm_stats st;
        amm_get_stats(c->x->m, &st);
        return expect(c, 0, 0, 0);
    }
    return checkpoint(c, 0);
}

static int op_print(ctx *c, const amm_op *op) {
    if (!c->x->devnull && c->x->threads == 1) c->x->devnull = fopen("/dev/null", "w"); /* most runs never print */
    if (!c->x->devnull) return RUN_SKIPPED;
    if (op->k & 1)
        amm_dump_json(c->x->m, c->x->devnull);
    else
        amm_print(c->x->m, c->x->devnull);
    return expect(c, 0, 0, 0);
}

static int op_set_movable(ctx *c, const amm_op *op) {
    if (c->x->threads > 1 || !own_slot(c, op->slot) || !c->x->slots[op->slot].ptr) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->slot];
    int r = amm_set_movable(c->x->m, s->ptr, (int)(op->k & 1));
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (r != 0) return fail(c, "set_movable of slot %u returned %d", op->slot, r);
    s->movable = (int)(op->k & 1);
    return RUN_OK;
}

static int op_inject(ctx *c, const amm_op *op) {
    if (c->x->threads > 1) return RUN_SKIPPED;
    amm__os_inject_failures(op->k, op->n);
    c->x->injecting = 1;
    return RUN_OK;
}

/* ---- misuse ops: each provokes one fault and checks it is reported once --- */

typedef struct find_state {
    const void *ptr;
    int state; /* -1: not a live or quarantined block's user pointer */
    size_t size;
} find_state;

static int find_visit(const amm_block_info *bi, void *user) {
    find_state *f = user;
    if (bi->state == AMM_BLOCK_FREE || bi->user != f->ptr) return 0;
    f->state = (int)bi->state;
    f->size = bi->size;
    return 1;
}

/* The walker's state for the block whose user pointer is p (-1: none); *size its size. */
static int block_state(amm_manager *m, const void *p, size_t *size) {
    find_state f = {p, -1, 0};
    amm_walk(m, find_visit, &f);
    if (size) *size = f.size;
    return f.state;
}

/* 1 if p is the user pointer of a block the model holds live. */
static int model_live(const exec *x, const void *p) {
    for (size_t i = 0; i < x->nslots; i++)
        if (x->slots[i].ptr == p) return 1;
    return 0;
}

static void flip(unsigned char *p, size_t n) {
    EXEC_UNPOISON(p, n);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)~p[i];
}

/* Runs amm_check after deliberate damage: exactly one report of kind. */
static int check_damage(ctx *c, amm_error_kind kind, int exact, long long offset, size_t bytes) {
    size_t n = amm_check(c->x->m);
    if (expect_one(c, kind, exact, offset, bytes)) return RUN_FAIL;
    return n == 1 ? RUN_OK : fail(c, "amm_check counted %zu problems for one %s", n, amm_error_name(kind));
}

static int op_overflow(ctx *c, const amm_op *op, int under) {
    slot *s = &c->x->slots[op->slot];
    size_t canary = c->x->cfg.canary;
    if (!own_slot(c, op->slot) || !s->ptr || canary == 0) return RUN_SKIPPED;
    size_t k = 1 + (size_t)(op->k % canary);
    uintptr_t at = under ? (uintptr_t)s->ptr - k : (uintptr_t)s->ptr + s->size;
    flip((unsigned char *)at, k);
    if (under) return check_damage(c, AMM_ERR_UNDERFLOW, 1, -(long long)k, k);
    return check_damage(c, AMM_ERR_OVERFLOW, 1, (long long)s->size, k);
}

/* Frees the slot's block if it is live with refcount 1; then slot->freed is the pointer to misuse. */
static int free_for_misuse(ctx *c, uint32_t i) {
    slot *s = &c->x->slots[i];
    if (s->ptr && s->rc == 1) return free_slot(c, i);
    return s->ptr ? RUN_SKIPPED : RUN_OK;
}

static int op_write_after_free(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot)) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->slot];
    size_t size = 0;
    int r = free_for_misuse(c, op->slot);
    if (r != RUN_OK) return r;
    if (!s->freed || !c->x->cfg.fill || model_live(c->x, s->freed) ||
        block_state(c->x->m, s->freed, &size) != AMM_BLOCK_QUARANTINED || size == 0)
        return RUN_SKIPPED;
    size_t off = (size_t)(op->k % size);
    flip(s->freed + off, 1);
    return check_damage(c, AMM_ERR_USE_AFTER_FREE, 0, (long long)off, 1);
}

static int op_double_free(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot)) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->slot];
    int r = free_for_misuse(c, op->slot);
    if (r != RUN_OK) return r;
    if (!s->freed || model_live(c->x, s->freed)) return RUN_SKIPPED;
    int quarantined = block_state(c->x->m, s->freed, NULL) == AMM_BLOCK_QUARANTINED;
    r = amm_free_at(c->x->m, s->freed, EXEC_SITE, site_line(c->op));
    if (quarantined) {
        if (expect_one(c, AMM_ERR_DOUBLE_FREE, 0, 0, 0)) return RUN_FAIL;
    } else if (expect(c, BIT(AMM_ERR_DOUBLE_FREE) | BIT(AMM_ERR_INVALID_POINTER) | BIT(AMM_ERR_INTERIOR_POINTER), 1, 1)) {
        return RUN_FAIL;
    }
    return r == -1 ? RUN_OK : fail(c, "the second free of %p returned %d", (void *)s->freed, r);
}

static int op_interior_free(ctx *c, const amm_op *op) {
    slot *s = &c->x->slots[op->slot];
    if (!own_slot(c, op->slot) || !s->ptr || s->size < 2) return RUN_SKIPPED;
    size_t off = 1 + (size_t)(op->k % (s->size - 1));
    int r = amm_free_at(c->x->m, s->ptr + off, EXEC_SITE, site_line(c->op));
    if (expect_one(c, AMM_ERR_INTERIOR_POINTER, 0, 0, 0)) return RUN_FAIL;
    if (r != -1) return fail(c, "free of slot %u + %zu returned %d", op->slot, off, r);
    return verify_slot(c, op->slot, 0, "after an interior free");
}

static int op_foreign(ctx *c, const amm_op *op) {
    amm_manager *m = c->x->m;
    unsigned char *p = foreign_buf + op->k % sizeof foreign_buf;
    int refused = 0;
    switch ((amm_op_api)op->flags) {
    case AMM_API_FREE: refused = amm_free_at(m, p, EXEC_SITE, site_line(c->op)) == -1; break;
    case AMM_API_REALLOC: refused = amm_realloc_at(m, p, 16, 0, EXEC_SITE, site_line(c->op)) == NULL; break;
    case AMM_API_RETAIN: refused = amm_retain_at(m, p, EXEC_SITE, site_line(c->op)) == 0; break;
    case AMM_API_RELEASE: refused = amm_release_at(m, p, EXEC_SITE, site_line(c->op)) == (unsigned)-1; break;
    case AMM_API_SIZE: refused = amm_size(m, p) == 0; break;
    case AMM_API_SET_MOVABLE: refused = amm_set_movable(m, p, 1) == -1; break;
    default: return RUN_SKIPPED;
    }
    if (expect_one(c, AMM_ERR_INVALID_POINTER, 0, 0, 0)) return RUN_FAIL;
    return refused ? RUN_OK : fail(c, "a foreign pointer was not refused");
}

static int op_free_shared(ctx *c, const amm_op *op) {
    slot *s = &c->x->slots[op->slot];
    if (!own_slot(c, op->slot) || !s->ptr) return RUN_SKIPPED;
    if (s->rc == 1) {
        amm_op retain = *op;
        retain.kind = AMM_OP_RETAIN;
        if (op_retain(c, &retain) != RUN_OK) return RUN_FAIL;
    }
    int r = amm_free_at(c->x->m, s->ptr, EXEC_SITE, site_line(c->op));
    if (expect_one(c, AMM_ERR_SHARED_FREE, 0, 0, 0)) return RUN_FAIL;
    if (r != -1) return fail(c, "free of shared slot %u returned %d", op->slot, r);
    return verify_slot(c, op->slot, 0, "after a refused shared free");
}

static int op_copy_overread(ctx *c, const amm_op *op) {
    if (!own_slot(c, op->slot) || !own_slot(c, op->src)) return RUN_SKIPPED;
    slot *s = &c->x->slots[op->src];
    if (!s->ptr) return RUN_SKIPPED;
    size_t size = s->size + 1 + (size_t)(op->k % 64);
    void *p = amm_copy_at(c->x->m, s->ptr, size, EXEC_SITE, site_line(c->op));
    if (p) {
        amm_free(c->x->m, p);
        c->nreports = 0;
        return fail(c, "copy of %zu bytes from a %zu-byte block was not refused", size, s->size);
    }
    return expect_one(c, AMM_ERR_OVERFLOW, 0, 0, 0);
}

/* Damages a live block's user bytes without telling the model (text-only op). */
static int op_scribble(ctx *c, const amm_op *op) {
    slot *s = &c->x->slots[op->slot];
    if (!own_slot(c, op->slot) || !s->ptr || s->size == 0) return RUN_SKIPPED;
    s->ptr[op->k % s->size] ^= 0x5A;
    return RUN_OK;
}

/* ---- dispatch, checkpoints, the run ------------------------------------ */

static int run_op(ctx *c, const amm_op *op) {
    if (amm_op_is_misuse(op->kind) && (!c->x->opt->misuse || c->x->threads > 1)) return RUN_SKIPPED;
    switch (op->kind) {
    case AMM_OP_ALLOC: return op_alloc(c, op);
    case AMM_OP_FREE: return op_free(c, op);
    case AMM_OP_REALLOC: return op_realloc(c, op);
    case AMM_OP_COPY: return op_copy(c, op);
    case AMM_OP_RETAIN: return op_retain(c, op);
    case AMM_OP_RELEASE: return op_release(c, op);
    case AMM_OP_POOL_CREATE: return op_pool_create(c, op);
    case AMM_OP_POOL_ALLOC: return op_pool_alloc(c, op);
    case AMM_OP_DEFRAGMENT: return op_defragment(c, op);
    case AMM_OP_CHECK: return op_check(c, op);
    case AMM_OP_STATS: return op_stats(c, op);
    case AMM_OP_PRINT: return op_print(c, op);
    case AMM_OP_SET_MOVABLE: return op_set_movable(c, op);
    case AMM_OP_INJECT: return op_inject(c, op);
    case AMM_OP_OVERFLOW: return op_overflow(c, op, 0);
    case AMM_OP_UNDERFLOW: return op_overflow(c, op, 1);
    case AMM_OP_WRITE_AFTER_FREE: return op_write_after_free(c, op);
    case AMM_OP_DOUBLE_FREE: return op_double_free(c, op);
    case AMM_OP_INTERIOR_FREE: return op_interior_free(c, op);
    case AMM_OP_FOREIGN: return op_foreign(c, op);
    case AMM_OP_FREE_SHARED: return op_free_shared(c, op);
    case AMM_OP_COPY_OVERREAD: return op_copy_overread(c, op);
    case AMM_OP_SCRIBBLE: return op_scribble(c, op);
    default: return RUN_SKIPPED;
    }
}

typedef struct span {
    uintptr_t a, b;
    size_t slot;
} span;

static int span_cmp(const void *l, const void *r) {
    const span *x = l, *y = r;
    return x->a < y->a ? -1 : x->a > y->a;
}

/* The live blocks as the walker shows them. */
typedef struct walked {
    amm_block_info *v;
    size_t n, cap;
    int oom;
} walked;

static int walk_live(const amm_block_info *bi, void *user) {
    walked *w = user;
    if (bi->state != AMM_BLOCK_LIVE) return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        amm_block_info *grown = realloc(w->v, cap * sizeof *grown);
        if (!grown) return w->oom = 1;
        w->v = grown;
        w->cap = cap;
    }
    w->v[w->n++] = *bi;
    return 0;
}

static int info_cmp(const void *l, const void *r) {
    uintptr_t a = (uintptr_t)((const amm_block_info *)l)->user, b = (uintptr_t)((const amm_block_info *)r)->user;
    return a < b ? -1 : a > b;
}

/* The walker shows exactly the model's live blocks (v, n: sorted spans), with their size,
 * refcount, movable flag, alignment and intact canaries. */
static int verify_walk(ctx *c, const span *v, size_t n) {
    exec *x = c->x;
    walked w = {0};
    amm_walk(x->m, walk_live, &w);
    int r = RUN_OK;
    if (w.oom) goto done; /* no memory for the check: skip it rather than report a false fault */
    if (w.n) qsort(w.v, w.n, sizeof *w.v, info_cmp);
    for (size_t i = 0; i < w.n || i < n; i++) {
        if (i >= w.n || i >= n || (uintptr_t)w.v[i].user != v[i].a) {
            const void *p = i < w.n ? w.v[i].user : NULL;
            r = fail(c, "the walker shows %zu live blocks, the model %zu (first difference: %p / slot %zu)", w.n, n,
                     p, i < n ? v[i].slot : (size_t)-1);
            break;
        }
        const slot *s = &x->slots[v[i].slot];
        const amm_block_info *b = &w.v[i];
        if (b->size != s->size || b->refcount != s->rc || !b->canary_ok || b->alignment < eff_align(s->align) ||
            ((b->flags & AMM_ALLOC_MOVABLE) != 0) != (s->movable != 0)) {
            r = fail(c, "slot %zu: the walker shows size %zu refcount %u alignment %zu movable %d canaries %s; "
                        "the model has size %zu refcount %u alignment %zu movable %d",
                     v[i].slot, b->size, b->refcount, b->alignment, (b->flags & AMM_ALLOC_MOVABLE) != 0,
                     b->canary_ok ? "intact" : "damaged", s->size, s->rc, eff_align(s->align), s->movable);
            break;
        }
    }
done:
    free(w.v);
    return r;
}

/* No two live blocks share a byte (a zero-length block counts as one byte), and the
 * walker agrees with the model about every live block. */
static int verify_blocks(ctx *c) {
    exec *x = c->x;
    span *v = malloc((x->nslots ? x->nslots : 1) * sizeof *v);
    size_t n = 0;
    if (!v) return RUN_OK; /* no memory for the check: skip it rather than report a false fault */
    for (size_t i = 0; i < x->nslots; i++) {
        if (!x->slots[i].ptr) continue;
        uintptr_t a = (uintptr_t)x->slots[i].ptr;
        v[n++] = (span){a, a + (x->slots[i].size ? x->slots[i].size : 1), i};
    }
    qsort(v, n, sizeof *v, span_cmp);
    for (size_t i = 1; i < n; i++) {
        if (v[i].a < v[i - 1].b) {
            size_t s1 = v[i - 1].slot, s2 = v[i].slot;
            free(v);
            return fail(c, "slots %zu and %zu overlap", s1, s2);
        }
    }
    int r = verify_walk(c, v, n);
    free(v);
    return r;
}

/* The full model check: amm_check, placement, patterns, disjointness, stats. */
static int checkpoint(ctx *c, int whole) {
    exec *x = c->x;
    size_t n = amm_check(x->m);
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (n) return fail(c, "amm_check found %zu problems", n);
    if (!amm_check_fast(x->m)) return fail(c, "amm_check_fast says the counters' invariants do not hold");
    size_t blocks = 0, bytes = 0;
    for (size_t i = 0; i < x->nslots; i++) {
        if (!x->slots[i].ptr) continue;
        if (verify_placement(c, i) || verify_slot(c, i, whole, whole ? "at the end" : "at a checkpoint")) return RUN_FAIL;
        blocks++;
        bytes += x->slots[i].size;
    }
    if (verify_blocks(c)) return RUN_FAIL;
    amm_stats st;
    amm_get_stats(x->m, &st);
    if (expect(c, 0, 0, 0)) return RUN_FAIL;
    if (st.live_blocks != blocks || st.live_bytes != bytes)
        return fail(c, "stats say %zu live blocks / %zu bytes, the model has %zu / %zu", st.live_blocks, st.live_bytes,
                    blocks, bytes);
    if (st.live_bytes + st.quarantine_bytes > st.reserved_bytes)
        return fail(c, "stats: live %zu + quarantine %zu > reserved %zu bytes", st.live_bytes, st.quarantine_bytes,
                    st.reserved_bytes);
    if (st.reuse_bytes > st.free_bytes || st.largest_free > st.free_bytes)
        return fail(c, "stats: kept %zu or largest free %zu > free %zu bytes", st.reuse_bytes, st.largest_free,
                    st.free_bytes);
    return RUN_OK;
}

static void *run_ctx(void *arg) {
    ctx *c = arg;
    exec *x = c->x;
    size_t since = 0, check_every = x->threads > 1 ? 0 : x->opt->check_every;
    tl_ctx = c;
    for (size_t i = 0; i < x->l->count && !atomic_load(&x->stop); i++) {
        const amm_op *op = &x->l->ops[i];
        uint32_t owner = (op->kind == AMM_OP_ALLOC || op->kind == AMM_OP_FREE || op->kind == AMM_OP_REALLOC ||
                          op->kind == AMM_OP_COPY || op->kind == AMM_OP_RETAIN || op->kind == AMM_OP_RELEASE ||
                          op->kind == AMM_OP_POOL_ALLOC || op->kind == AMM_OP_SET_MOVABLE)
                             ? op->slot
                             : (uint32_t)i;
        if (x->threads > 1 && owner % 2 != (uint32_t)c->id) continue;
        c->op = i;
        c->nreports = 0;
        if (x->opt->verbose) {
            char line[160];
            amm_op_format(op, i, line, sizeof line);
            fprintf(stderr, "%s\n", line);
        }
        int r = run_op(c, op);
        if (r == RUN_OK && c->nreports) r = expect(c, 0, 0, 0); /* e.g. a report from a skipped path */
        if (r == RUN_FAIL) break;
        if (r == RUN_SKIPPED) c->res.ops_skipped++;
        c->res.ops_run++;
        if (c->live_bytes > c->res.peak_live_bytes) c->res.peak_live_bytes = c->live_bytes;
        if (c->live_blocks > c->res.peak_live_blocks) c->res.peak_live_blocks = c->live_blocks;
        if (!amm_check_fast(x->m)) {
            fail(c, "amm_check_fast says the counters' invariants do not hold");
            break;
        }
        if (check_every && ++since >= check_every) {
            since = 0;
            if (checkpoint(c, 0)) break;
        }
        if (x->opt->sample && x->opt->sample_every && c->id == 0 && (i + 1) % x->opt->sample_every == 0) {
            amm_stats st;
            amm_get_stats(x->m, &st);
            x->opt->sample(i + 1, &st, x->opt->sample_user);
        }
        if (x->opt->progress && c->id == 0 && (i & 1023) == 0) x->opt->progress(i, x->l->count, x->opt->progress_user);
    }
    if (c->failed) atomic_store(&x->stop, 1);
    tl_ctx = NULL;
    return NULL;
}

void amm_exec_options_default(amm_exec_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->check_every = 1;
    opt->misuse = 1;
    opt->threads = 1;
}

static void setup_error(amm_exec_result *res, const char *fmt, const char *detail) {
    res->status = AMM_EXEC_SETUP;
    snprintf(res->message, sizeof res->message, fmt, detail);
}

/* The manager's configuration: defaults (never the environment), then options. */
static int make_config(exec *x, amm_exec_result *res) {
    char err[200];
    amm_config_defaults(&x->cfg);
    const char *options = x->opt->options                       ? x->opt->options
                          : x->threads > 1 && (x->l->count & 1) ? AMM_FUZZ_OPTIONS_NO_QUARANTINE
                                                                : AMM_FUZZ_OPTIONS;
    if (amm_config_parse(&x->cfg, options, err, sizeof err) != 0) {
        setup_error(res, "bad manager options: %s", err);
        return -1;
    }
    x->cfg.on_error = AMM_ON_ERROR_REPORT;
    x->cfg.on_fault = on_fault;
    x->cfg.on_fault_user = x;
    if (x->opt->trace_path) {
        int w = snprintf(x->cfg.trace_buf, sizeof x->cfg.trace_buf, "file:%s", x->opt->trace_path);
        if (w < 0 || (size_t)w >= sizeof x->cfg.trace_buf) {
            setup_error(res, "trace path too long: %s", x->opt->trace_path);
            return -1;
        }
        x->cfg.trace = x->cfg.trace_buf;
    }
    return 0;
}

static size_t slots_needed(const amm_op_list *l) {
    size_t n = AMM_OPS_SLOTS;
    for (size_t i = 0; i < l->count; i++) {
        if (l->ops[i].slot >= n) n = (size_t)l->ops[i].slot + 1;
        if (l->ops[i].src >= n && (l->ops[i].kind == AMM_OP_COPY || l->ops[i].kind == AMM_OP_COPY_OVERREAD))
            n = (size_t)l->ops[i].src + 1;
    }
    return n;
}

/* Runs the contexts, then the final whole check, then destroys the manager. */
static void run_all(exec *x, amm_exec_result *res) {
    pthread_t th;
    int spawned = x->threads > 1 && pthread_create(&th, NULL, run_ctx, &x->ctxs[1]) == 0;
    if (x->threads > 1 && !spawned) x->threads = 1; /* no second thread: run everything here */
    run_ctx(&x->ctxs[0]);
    if (spawned) pthread_join(th, NULL);
    ctx *c = &x->ctxs[0];
    if (spawned) {
        c->live_blocks += x->ctxs[1].live_blocks;
        c->live_bytes += x->ctxs[1].live_bytes;
        c->res.ops_run += x->ctxs[1].res.ops_run;
        c->res.ops_skipped += x->ctxs[1].res.ops_skipped;
        if (x->ctxs[1].failed && (!c->failed || x->ctxs[1].res.op_index < c->res.op_index)) {
            c->res.status = x->ctxs[1].res.status;
            c->res.op_index = x->ctxs[1].res.op_index;
            memcpy(c->res.message, x->ctxs[1].res.message, sizeof c->res.message);
            c->failed = 1;
        }
    }
    amm__os_inject_failures(0, 0);
    tl_ctx = c;
    c->op = x->l->count;
    if (!c->failed) checkpoint(c, 1);
    if (x->opt->sample) {
        amm_stats st;
        amm_get_stats(x->m, &st);
        x->opt->sample(x->l->count, &st, x->opt->sample_user);
    }
    c->nreports = 0;
    amm_destroy(x->m);
    if (!c->failed) expect(c, 0, 0, 0); /* destroy checks the quarantine */
    tl_ctx = NULL;
    size_t run = c->res.ops_run, skipped = c->res.ops_skipped;
    *res = c->res;
    res->ops_run = run;
    res->ops_skipped = skipped;
}

amm_exec_status amm_exec_run(const amm_op_list *l, const amm_exec_options *opt, amm_exec_result *res) {
    amm_exec_options defaults;
    exec *x = calloc(1, sizeof *x);
    memset(res, 0, sizeof *res);
    if (!opt) {
        amm_exec_options_default(&defaults);
        opt = &defaults;
    }
    if (!x) {
        setup_error(res, "%s", "out of memory");
        return res->status;
    }
    x->l = l;
    x->opt = opt;
    x->threads = opt->threads > 1 ? 2 : 1;
    x->nslots = slots_needed(l);
    x->slots = x->nslots <= AMM_OPS_MAX_SLOT ? calloc(x->nslots, sizeof *x->slots) : NULL;
    for (int i = 0; i < 2; i++) {
        x->ctxs[i].x = x;
        x->ctxs[i].id = i;
    }
    if (!x->slots) {
        setup_error(res, "%s", "too many slots or out of memory for them");
    } else if (make_config(x, res) == 0) {
        tl_ctx = &x->ctxs[0];
        x->m = amm_create(&x->cfg);
        tl_ctx = NULL;
        if (!x->m) {
            setup_error(res, "%s", "amm_create refused the configuration");
        } else {
            amm_set_move_callback(x->m, on_move, x);
            if (x->threads > 1) x->devnull = fopen("/dev/null", "w"); /* shared: opened before the threads start */
            run_all(x, res);
            if (x->devnull) fclose(x->devnull);
        }
    }
    amm_exec_status st = res->status;
    free(x->slots);
    free(x);
    return st;
}

/* ---- fuzz entry ---------------------------------------------------------- */

/* AMM_FUZZ_CHECK_EVERY (default AMM_FUZZ_CHECK_DEFAULT): the fuzz targets' checkpoint interval. */
static size_t fuzz_check_every(void) {
    static size_t every;
    if (!every) {
        const char *e = getenv("AMM_FUZZ_CHECK_EVERY");
        long v = e ? strtol(e, NULL, 10) : 0;
        every = v > 0 ? (size_t)v : AMM_FUZZ_CHECK_DEFAULT;
    }
    return every;
}

void amm_fuzz_ops_input(const uint8_t *data, size_t size, amm_fuzz_target target) {
    static const char *const names[] = {"fuzz_ops", "fuzz_misuse", "fuzz_threads"};
    amm_op_list l = {0};
    amm_exec_options o;
    amm_exec_result r;
    amm_exec_options_default(&o);
    o.check_every = fuzz_check_every();
    o.misuse = target == AMM_FUZZ_MISUSE;
    o.threads = target == AMM_FUZZ_THREADS ? 2 : 1;
    if (amm_ops_decode(data, size, target == AMM_FUZZ_MISUSE ? AMM_OPS_FULL : AMM_OPS_BASIC, AMM_FUZZ_MAX_OPS, &l))
        return; /* no memory for the list: nothing to test */
    amm_exec_run(&l, &o, &r);
    amm_ops_free(&l);
    if (r.status == AMM_EXEC_CLEAN) return;
    fprintf(stderr,
            "\n%s: %s at op #%zu: %s\n"
            "replay: amm-replay print CRASH_FILE --target %s; amm-replay run CRASH_FILE --target %s\n",
            names[target], r.status == AMM_EXEC_FAULT ? "FAULT" : "SETUP FAILURE", r.op_index, r.message,
            names[target], names[target]);
    abort();
}
