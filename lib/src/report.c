/*
 * report.c - fault reports: names, the one-line format, the default handler,
 * and amm__fault, the single path every fault takes (count, trace, handler,
 * then abort if on_error=abort).  The library prints nothing elsewhere.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const kind_names[] = {
#define AMM__X(e, name, desc) name,
    AMM_ERROR_KINDS(AMM__X)
#undef AMM__X
};

const char *amm_error_name(amm_error_kind kind) {
    return (unsigned)kind < AMM_ERR_COUNT ? kind_names[kind] : "unknown";
}

const char *amm__base_name(const char *path) {
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

int amm__site_format_path(char *buf, size_t len, const char *file, int line, int whole_path) {
    if (!file) return snprintf(buf, len, "-");
    const char *name = whole_path ? file : amm__base_name(file);
    if (line > 0) return snprintf(buf, len, "%s:%d", name, line);
    return snprintf(buf, len, "%s", name);
}

int amm__site_format(char *buf, size_t len, const char *file, int line) {
    return amm__site_format_path(buf, len, file, line, 0);
}

/* Appends with snprintf semantics: *n counts what would have been written. */
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t at = *n < len ? *n : len;
    int k = vsnprintf(buf ? buf + at : NULL, buf ? len - at : 0, fmt, ap);
    va_end(ap);
    if (k > 0) *n += (size_t)k;
}

/* " allocated at SITE" where the block's site is known, else "". */
static void site_words(const amm_report *r, char *out, size_t len) {
    static const char lead[] = " allocated at ";
    out[0] = '\0';
    if (!r->alloc_site.file || len < sizeof lead) return;
    memcpy(out, lead, sizeof lead);
    amm__site_format(out + sizeof lead - 1, len - (sizeof lead - 1), r->alloc_site.file, r->alloc_site.line);
}

static void describe(const amm_report *r, char *buf, size_t len, size_t *n) {
    char at[300];
    const char *s = r->bytes == 1 ? "" : "s";
    site_words(r, at, sizeof at);
    switch (r->kind) {
    case AMM_ERR_OVERFLOW:
        put(buf, len, n, "%zu byte%s past the end of a %zu-byte block at %p%s", r->bytes, s, r->block_size, r->block, at);
        break;
    case AMM_ERR_UNDERFLOW:
        put(buf, len, n, "%zu byte%s before the start of a %zu-byte block at %p%s", r->bytes, s, r->block_size, r->block,
            at);
        break;
    case AMM_ERR_DOUBLE_FREE:
        if (r->block) put(buf, len, n, "%p, a %zu-byte block%s, was already freed", r->ptr, r->block_size, at);
        else put(buf, len, n, "%p was already freed", r->ptr);
        break;
    case AMM_ERR_INVALID_POINTER:
        put(buf, len, n, "%p was not handed out by this manager", r->ptr);
        break;
    case AMM_ERR_INTERIOR_POINTER:
        put(buf, len, n, "%p is %lld bytes inside a %zu-byte block at %p%s, not its start", r->ptr, r->offset,
            r->block_size, r->block, at);
        break;
    case AMM_ERR_USE_AFTER_FREE:
        if (r->block && r->bytes == 0) {
            put(buf, len, n, "a read of a freed %zu-byte block at %p%s", r->block_size, r->block, at);
        } else if (r->block) {
            put(buf, len, n, "%zu byte%s written at offset %lld of a freed %zu-byte block at %p%s", r->bytes, s,
                r->offset, r->block_size, r->block, at);
        } else {
            put(buf, len, n, "%zu byte%s written at %p, in freed memory", r->bytes, s, r->ptr);
        }
        break;
    case AMM_ERR_SHARED_FREE:
        put(buf, len, n, "%p, a %zu-byte block%s, has refcount %u: not freed (release it instead)", r->ptr,
            r->block_size, at, r->refcount);
        break;
    case AMM_ERR_BAD_ALIGNMENT:
        put(buf, len, n, "alignment %zu is not a power of two up to %zu", r->alignment, (size_t)AMM_MAX_ALIGN);
        break;
    case AMM_ERR_OUT_OF_MEMORY:
        put(buf, len, n, "the system refused memory for %zu bytes", r->bytes);
        break;
    case AMM_ERR_BAD_SIZE:
        put(buf, len, n, "%zu bytes cannot be allocated", r->bytes);
        break;
    case AMM_ERR_REFCOUNT_OVERFLOW:
        put(buf, len, n, "the refcount of %p%s is at its maximum (%u)", r->ptr, at, r->refcount);
        break;
    case AMM_ERR_BAD_OPTION:
    case AMM_ERR_CORRUPTION:
    case AMM_ERR_NONE:
    case AMM_ERR_COUNT:
        if (r->ptr) put(buf, len, n, "at %p", r->ptr);
        break;
    }
}

int amm_report_format(const amm_report *r, char *buf, size_t len) {
    size_t n = 0;
    if (buf && len) buf[0] = '\0';
    if (!r) return 0;
    put(buf, len, &n, "amm: %s: ", amm_error_name(r->kind));
    describe(r, buf, len, &n);
    if (r->detail) {
        int lead = r->kind != AMM_ERR_BAD_OPTION && r->kind != AMM_ERR_CORRUPTION ? 1 : r->ptr != NULL;
        put(buf, len, &n, "%s%s", lead ? ": " : "", r->detail);
    }
    if (r->operation) {
        put(buf, len, &n, " (detected in %s", r->operation);
        if (r->op_site.file) {
            char site[AMM__SITE_TEXT];
            amm__site_format(site, sizeof site, r->op_site.file, r->op_site.line);
            put(buf, len, &n, " at %s", site);
        }
        put(buf, len, &n, ")");
    }
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

void amm_default_error_handler(const amm_report *report, void *user) {
    (void)user;
    char line[512];
    amm_report_format(report, line, sizeof line);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

void amm__fault(amm_manager *m, amm_error_kind kind, const void *ptr, const amm__block *b, const char *operation,
                const char *detail, long long offset, size_t bytes, const char *file, int line) {
    amm_report r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.ptr = ptr;
    r.operation = operation;
    r.detail = detail;
    r.offset = offset;
    r.bytes = bytes;
    r.op_site = (amm_site){file, line};
    if (b) r.origin = (amm_origin)b->origin;
    if (b && (b->state == AMM_BLOCK_LIVE || b->state == AMM_BLOCK_QUARANTINED || b->state == AMM__BINNED ||
              (b->state == AMM__CACHED && b->serial) || b->origin == AMM_ORIGIN_POOL)) {
        /* a free pool slot and a heap chunk kept for reuse keep their last block's user pointer, size and site */
        r.block = (const void *)b->user;
        r.block_size = b->size;
        r.alignment = amm__align_of(b);
        r.origin = (amm_origin)b->origin;
        r.refcount = b->refcount;
        r.alloc_site = (amm_site){b->file, b->line};
    }
    if (kind == AMM_ERR_BAD_ALIGNMENT) r.alignment = bytes;
    if (!m) {
        amm_default_error_handler(&r, NULL);
        return;
    }
    m->faults++;
    AMM__TRACE(m, amm__trace_fault(m, &r));
    if (m->on_fault) m->on_fault(&r, m->on_fault_user);
    else amm_default_error_handler(&r, m);
    if (m->cfg.on_error == AMM_ON_ERROR_ABORT) {
        if (m->tracer) amm__trace_stop_locked(m); /* keep the trace up to the fault */
        abort();
    }
}
