/*
 * stats.c - everything that looks at the whole manager: statistics, the
 * block walker, the full check (amm_check), the cheap check, the JSON dump
 * and the human-readable print.  All of them enumerate blocks through one
 * walk over the range table (address order), never through other lists.
 */
#include <inttypes.h>
#include <string.h>

#include "hot.h"

static double ratio(size_t num, size_t den) { return den ? (double)num / (double)den : 0.0; }

void amm__stats_locked(amm_manager *m, amm_stats *st) {
    size_t cached = amm__tcache_fold_all(m); /* the thread caches' allocs counted */
    memset(st, 0, sizeof *st);
    st->cached_bytes = cached;
    st->live_blocks = m->live_blocks;
    st->live_bytes = m->live_bytes;
    st->peak_live_bytes = m->peak_live_bytes;
    st->reserved_bytes = m->reserved;
    for (size_t i = 0; i < m->range_count; i++) {
        st->resident_bytes += amm__os_resident(m->ranges[i].start, m->ranges[i].end - m->ranges[i].start);
    }
    st->free_bytes = m->heap_free_bytes;
    st->reuse_bytes = m->reuse_bytes;
    st->largest_free = amm__heap_largest_free(m);
    st->quarantine_blocks = m->q_blocks;
    st->quarantine_bytes = m->q_bytes;
    st->region_count = m->region_count;
    st->pool_count = m->pool_count;
    st->pool_slots = m->pool_slots;
    st->pool_slots_used = m->pool_slots_used;
    st->large_count = m->large_count;
    st->total_allocs = m->total_allocs;
    st->total_frees = m->total_frees;
    st->faults = m->faults;
    st->bytes_moved = m->bytes_moved;
    st->external_frag = st->free_bytes ? 1.0 - ratio(st->largest_free, st->free_bytes) : 0.0;
    st->overhead = m->reserved > m->live_bytes ? ratio(m->reserved - m->live_bytes, m->reserved) : 0.0;
}

void amm_get_stats(amm_manager *m, amm_stats *st) {
    if (!st) return;
    if (!m) {
        memset(st, 0, sizeof *st);
        return;
    }
    amm__lock(m);
    amm__stats_locked(m, st);
    amm__unlock(m);
}

/* ---- walking ---- */

static int canary_intact(const amm_manager *m, const amm__block *b) {
    return b->state == AMM_BLOCK_FREE || amm__guard_intact(m, b);
}

static void block_info(const amm_manager *m, const amm__block *b, size_t region_index, amm_block_info *out) {
    memset(out, 0, sizeof *out);
    /* a chunk kept for reuse is free space to the outside */
    out->state = b->state == AMM__BINNED ? AMM_BLOCK_FREE : (amm_block_state)b->state;
    out->origin = (amm_origin)b->origin;
    out->raw = (const void *)b->raw;
    out->raw_size = b->raw_size;
    out->region_index = region_index;
    if (out->state == AMM_BLOCK_FREE) {
        out->user = (const void *)b->raw;
        out->size = b->raw_size;
        out->canary_ok = 1;
        return;
    }
    out->user = (const void *)b->user;
    out->size = b->size;
    out->alignment = amm__align_of(b);
    out->refcount = b->state == AMM_BLOCK_LIVE ? b->refcount : 0;
    out->flags = b->flags & (AMM_ALLOC_MOVABLE | AMM_ALLOC_NO_POOL);
    out->canary_ok = canary_intact(m, b);
    out->site = (amm_site){b->file, b->line};
    out->serial = b->serial;
}

/* Calls fn for each record in address order; stops when fn returns non-zero. */
typedef int (*record_fn)(amm_manager *m, amm__block *b, size_t range_index, void *user);

static size_t each_record(amm_manager *m, record_fn fn, void *user) {
    size_t n = 0;
    for (size_t i = 0; i < m->range_count; i++) {
        amm__range *r = &m->ranges[i];
        if (r->kind == AMM__RANGE_HEAP) {
            for (amm__block *c = ((amm__region *)r->obj)->first; c;) {
                amm__block *next = c->next_phys;
                n++;
                if (fn(m, c, i, user)) return n;
                c = next;
            }
        } else if (r->kind == AMM__RANGE_POOL) {
            amm_pool *p = r->obj;
            for (size_t s = 0; s < p->count; s++) {
                n++;
                if (fn(m, &p->slots[s], i, user)) return n;
            }
        } else {
            n++;
            if (fn(m, r->obj, i, user)) return n;
        }
    }
    return n;
}

typedef struct visit_ctx {
    amm_visit_fn visit;
    void *user;
} visit_ctx;

static int visit_one(amm_manager *m, amm__block *b, size_t range_index, void *user) {
    visit_ctx *ctx = user;
    amm_block_info info;
    block_info(m, b, range_index, &info);
    return ctx->visit(&info, ctx->user);
}

size_t amm__walk_locked(amm_manager *m, amm_visit_fn visit, void *user) {
    visit_ctx ctx = {visit, user};
    amm__tcache_flush_all(m); /* a walk meets no cached chunk */
    return each_record(m, visit_one, &ctx);
}

size_t amm_walk(amm_manager *m, amm_visit_fn visit, void *user) {
    if (!m || !visit) return 0;
    amm__lock(m);
    size_t n = amm__walk_locked(m, visit, user);
    amm__unlock(m);
    return n;
}

/* ---- checking ---- */

typedef struct check_ctx {
    size_t problems, live_blocks, live_bytes;
} check_ctx;

static int check_one(amm_manager *m, amm__block *b, size_t range_index, void *user) {
    (void)range_index;
    check_ctx *ctx = user;
    if (b->state == AMM_BLOCK_LIVE) {
        ctx->live_blocks++;
        ctx->live_bytes += b->size;
        ctx->problems += amm__guards_check(m, b, "check", NULL, 0);
    } else if (b->state == AMM_BLOCK_QUARANTINED) {
        ctx->problems += amm__guard_check_freed(m, b, "check");
        ctx->problems += amm__guards_check(m, b, "check", NULL, 0);
    } else if (b->origin == AMM_ORIGIN_POOL && m->cfg.fill && (b->serial || b->pool->prefilled)) {
        /* a free slot is canary end to end (with fill off, a freed slot is left as it was) */
        amm__san_open(b->raw, b->raw_size);
        uintptr_t first = amm__canary_first_bad(m, b->raw, b->raw + b->raw_size);
        if (first) {
            uintptr_t last = amm__canary_last_bad(m, b->raw, b->raw + b->raw_size);
            amm__fault(m, AMM_ERR_USE_AFTER_FREE, (void *)first, NULL, "check", "a write into a free pool slot",
                       (long long)(first - b->raw - b->pool->front), last - first + 1, NULL, 0);
            amm__canary_fill(m, b->raw, b->raw + b->raw_size);
            ctx->problems++;
        }
        amm__san_freed(b->raw, b->raw_size);
    }
    return 0;
}

size_t amm__check_locked(amm_manager *m) {
    check_ctx ctx = {0, 0, 0};
    amm__tcache_flush_all(m); /* the invariants hold with every cache empty */
    ctx.problems += amm__heap_check(m);
    for (size_t i = 0; i < m->pool_count; i++) ctx.problems += amm__pool_check(m, m->pools[i]);
    ctx.problems += amm__pool_rank_check(m);
    each_record(m, check_one, &ctx);
    size_t qn = 0, qb = 0;
    for (const amm__block *q = m->q_head; q; q = q->q_next) {
        qn++;
        qb += q->raw_size;
        if (q->state != AMM_BLOCK_QUARANTINED || qn > m->q_blocks) break;
    }
    if (ctx.live_blocks != m->live_blocks || ctx.live_bytes != m->live_bytes || qn != m->q_blocks || qb != m->q_bytes) {
        amm__fault(m, AMM_ERR_CORRUPTION, NULL, NULL, "check", "block counters disagree with the blocks", 0, 0, NULL, 0);
        ctx.problems++;
    }
    AMM__TRACE(m, amm__trace_simple(m, AMM_TOP_CHECK, 0, 0, (uint32_t)ctx.problems, 0));
    return ctx.problems;
}

size_t amm_check(amm_manager *m) {
    if (!m) return 1;
    amm__lock(m);
    size_t n = amm__check_locked(m);
    amm__unlock(m);
    return n;
}

int amm_check_fast(amm_manager *m) {
    if (!m) return 0;
    amm__lock(m);
    amm__tcache_fold_all(m); /* the thread caches' counts in */
    int ok = m->live_bytes + m->q_bytes <= m->reserved && m->heap_free_bytes <= m->reserved &&
             m->pool_slots_used <= m->pool_slots && m->total_frees <= m->total_allocs &&
             m->live_blocks == m->total_allocs - m->total_frees && m->registry.count * 2 <= m->registry.cap + 1 &&
             m->live_bytes <= m->peak_live_bytes;
    amm__unlock(m);
    return ok;
}

/* ---- printing ---- */

static const char *origin_name(amm_origin o) {
    return o == AMM_ORIGIN_POOL ? "pool" : o == AMM_ORIGIN_LARGE ? "large" : "heap";
}

static const char *state_name(amm_block_state s) {
    return s == AMM_BLOCK_LIVE ? "live" : s == AMM_BLOCK_QUARANTINED ? "quarantined" : "free";
}


static int print_one(const amm_block_info *b, void *user) {
    FILE *out = user;
    if (b->state == AMM_BLOCK_FREE) return 0;
    fprintf(out, "  %-18p %10zu %6zu %4u  %-5s %-11s %-7s ", b->user, b->size, b->alignment, b->refcount,
            origin_name(b->origin), state_name(b->state), b->canary_ok ? "ok" : "DAMAGED");
    char site[AMM__SITE_TEXT];
    amm__site_format(site, sizeof site, b->site.file, b->site.line);
    fprintf(out, "%s\n", site);
    return 0;
}

void amm_print(amm_manager *m, FILE *out) {
    if (!m || !out) return;
    amm__lock(m);
    amm_stats st;
    amm__stats_locked(m, &st);
    fprintf(out, "amm: %zu live block%s, %zu bytes live, %zu quarantined, %zu bytes reserved, %zu resident\n",
            st.live_blocks, st.live_blocks == 1 ? "" : "s", st.live_bytes, st.quarantine_blocks, st.reserved_bytes,
            st.resident_bytes);
    fprintf(out, "  %-18s %10s %6s %4s  %-5s %-11s %-7s %s\n", "address", "size", "align", "ref", "from", "state",
            "canary", "site");
    amm__walk_locked(m, print_one, out);
    for (size_t i = 0; i < m->pool_count; i++) {
        const amm_pool *p = m->pools[i];
        fprintf(out, "  pool %zu: %zu-byte slots x %zu (align %zu, stride %zu): %zu used, %zu quarantined, %zu free, high water %zu\n",
                i, p->block_size, p->count, (size_t)1 << p->align_log2, p->stride, p->used, p->quarantined,
                p->free_top + p->tc_held, p->high_water); /* (slots thread caches hold are free) */
    }
    fprintf(out, "  fragmentation: external %.1f%% (largest free span %zu of %zu free bytes), overhead %.1f%%\n",
            st.external_frag * 100.0, st.largest_free, st.free_bytes, st.overhead * 100.0);
    amm__unlock(m);
}

/* ---- JSON ---- */

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c < 0x20) fprintf(out, "\\u%04x", c);
        else fputc(c, out);
    }
    fputc('"', out);
}

typedef struct json_ctx {
    FILE *out;
    int first;
} json_ctx;

static int json_block(const amm_block_info *b, void *user) {
    json_ctx *ctx = user;
    fprintf(ctx->out, "%s\n    {\"state\":\"%s\",\"origin\":\"%s\",\"addr\":\"%p\",\"raw\":\"%p\",\"size\":%zu,\"raw_size\":%zu,"
            "\"align\":%zu,\"refcount\":%u,\"flags\":%u,\"canary_ok\":%s,\"serial\":%" PRIu64 ",\"region\":%zu,\"site\":",
            ctx->first ? "" : ",", state_name(b->state), origin_name(b->origin), b->user, b->raw, b->size, b->raw_size,
            b->alignment, b->refcount, b->flags, b->canary_ok ? "true" : "false", b->serial, b->region_index);
    if (b->site.file) {
        fputc('{', ctx->out);
        fprintf(ctx->out, "\"file\":");
        json_string(ctx->out, b->site.file);
        fprintf(ctx->out, ",\"line\":%d}}", b->site.line);
    } else {
        fprintf(ctx->out, "null}");
    }
    ctx->first = 0;
    return 0;
}

void amm_dump_json(amm_manager *m, FILE *out) {
    if (!m || !out) return;
    amm__lock(m);
    amm_stats st;
    amm__stats_locked(m, &st);
    fprintf(out, "{\n  \"options\": {");
    int first = 1;
#define AMM__X(field, type, def, min, max, help) \
    fprintf(out, "%s\"%s\":", first ? "" : ",", #field); \
    first = 0; \
    json_opt_##type(out, m->cfg.field);
#define json_opt_SIZE(o, v) fprintf(o, "%zu", (size_t)(v))
#define json_opt_UINT(o, v) fprintf(o, "%zu", (size_t)(v))
#define json_opt_BOOL(o, v) fprintf(o, "%s", (v) ? "true" : "false")
#define json_opt_ONERR(o, v) fprintf(o, "\"%s\"", (v) == AMM_ON_ERROR_ABORT ? "abort" : "report")
#define json_opt_STR(o, v) json_string(o, (v) ? (v) : "")
    AMM_OPTIONS_TABLE(AMM__X)
#undef AMM__X
    fprintf(out, "},\n  \"stats\": {");
    first = 1;
#define AMM__X(f, unit, desc) fprintf(out, "%s\"%s\":%zu", first ? "" : ",", #f, st.f), first = 0;
    AMM_STATS_COUNTS(AMM__X)
#undef AMM__X
#define AMM__X(f, unit, desc) fprintf(out, ",\"%s\":%.6f", #f, st.f);
    AMM_STATS_RATIOS(AMM__X)
#undef AMM__X
    fprintf(out, "},\n  \"pools\": [");
    for (size_t i = 0; i < m->pool_count; i++) {
        const amm_pool *p = m->pools[i];
        fprintf(out, "%s\n    {\"base\":\"%p\",\"block_size\":%zu,\"stride\":%zu,\"align\":%zu,\"count\":%zu,\"used\":%zu,"
                "\"quarantined\":%zu,\"free\":%zu,\"high_water\":%zu}",
                i ? "," : "", (void *)p->base, p->block_size, p->stride, (size_t)1 << p->align_log2, p->count, p->used,
                p->quarantined, p->free_top + p->tc_held, p->high_water); /* (slots thread caches hold are free) */
    }
    fprintf(out, "],\n  \"blocks\": [");
    json_ctx ctx = {out, 1};
    amm__walk_locked(m, json_block, &ctx);
    fprintf(out, "]\n}\n");
    amm__unlock(m);
}
