/*
 * leaks.c - the leak report: blocks still live, grouped by allocation site.
 *
 * Collected under the manager's lock into memory from mmap (never malloc:
 * under the LD_PRELOAD shim malloc is amm itself), then sorted and written
 * with the lock released, so a stream whose lock another thread holds while
 * it waits for the manager cannot deadlock the report.  The sort is a heap
 * sort: qsort may call malloc.
 */
#include <string.h>

#include "internal.h"

typedef struct leak_site {
    const char *file; /* NULL: site unknown */
    int line;
    int full_path;    /* another site has the same base name: print the whole path */
    size_t bytes, blocks;
} leak_site;

typedef struct leak_ctx {
    leak_site *sites;
    size_t count, cap;
} leak_ctx;

static int collect(const amm_block_info *b, void *user) {
    leak_ctx *ctx = user;
    if (b->state != AMM_BLOCK_LIVE || ctx->count == ctx->cap) return 0;
    ctx->sites[ctx->count++] = (leak_site){b->site.file, b->site.line, 0, b->size, 1};
    return 0;
}

/* Orders by site (file name, then line; unknown last). */
static int by_site(const leak_site *a, const leak_site *b) {
    if (!a->file || !b->file) return (a->file == NULL) - (b->file == NULL);
    int c = a->file == b->file ? 0 : strcmp(a->file, b->file);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

/* Orders by base name, then by the whole path (unknown sites last). */
static int by_base_name(const leak_site *a, const leak_site *b) {
    if (!a->file || !b->file) return (a->file == NULL) - (b->file == NULL);
    int c = strcmp(amm__base_name(a->file), amm__base_name(b->file));
    return c ? c : (a->file == b->file ? 0 : strcmp(a->file, b->file));
}

/* Orders by bytes, most first; ties by site. */
static int by_bytes(const leak_site *a, const leak_site *b) {
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    return by_site(a, b);
}

typedef int (*leak_cmp)(const leak_site *, const leak_site *);

static void sift_down(leak_site *v, size_t root, size_t n, leak_cmp cmp) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && cmp(&v[child], &v[child + 1]) < 0) child++;
        if (cmp(&v[root], &v[child]) >= 0) return;
        leak_site t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

static void heap_sort(leak_site *v, size_t n, leak_cmp cmp) {
    for (size_t i = n / 2; i-- > 0;) sift_down(v, i, n, cmp);
    for (size_t end = n; end-- > 1;) {
        leak_site t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end, cmp);
    }
}

static void print_site(FILE *out, const leak_site *s) {
    fprintf(out, "amm: leak: %zu byte%s in %zu block%s allocated at ", s->bytes, s->bytes == 1 ? "" : "s", s->blocks,
            s->blocks == 1 ? "" : "s");
    char site[AMM__SITE_TEXT];
    amm__site_format_path(site, sizeof site, s->file, s->line, s->full_path);
    fprintf(out, "%s\n", s->file ? site : "an unknown site");
}

/* Sites whose files share a base name (a/util.c, b/util.c) would print alike:
 * those print their whole path.  Reorders the sites. */
static void mark_ambiguous(leak_site *v, size_t n) {
    heap_sort(v, n, by_base_name);
    for (size_t start = 0, end; start < n && v[start].file; start = end) {
        /* the run of sites with v[start]'s base name; mixed when one of them has another path */
        int mixed = 0;
        const char *name = amm__base_name(v[start].file);
        for (end = start + 1; end < n && v[end].file && strcmp(amm__base_name(v[end].file), name) == 0; end++) {
            mixed |= strcmp(v[end].file, v[start].file) != 0;
        }
        for (size_t i = start; mixed && i < end; i++) v[i].full_path = 1;
    }
}

size_t amm_leak_report(amm_manager *m, FILE *out, size_t max_sites) {
    if (!m) return 0;
    leak_ctx ctx = {NULL, 0, 0};
    size_t map_bytes = 0, live, live_bytes;
    amm__lock(m);
    amm__tcache_flush_all(m);
    live = m->live_blocks;
    live_bytes = m->live_bytes;
    if (live && out) {
        map_bytes = live * sizeof(leak_site);
        ctx.sites = amm__os_map(map_bytes);
        ctx.cap = ctx.sites ? live : 0;
        amm__walk_locked(m, collect, &ctx);
    }
    amm__unlock(m);
    if (!live || !out) {
        if (ctx.sites) amm__os_unmap(ctx.sites, map_bytes);
        return live;
    }
    if (!ctx.sites) { /* no memory for the table: the totals still */
        fprintf(out, "amm: leak summary: %zu bytes in %zu blocks still live (sites not listed: no memory)\n",
                live_bytes, live);
        return live;
    }
    /* one entry per site: sort by site, merge runs, then sort the sites by bytes */
    heap_sort(ctx.sites, ctx.count, by_site);
    size_t sites = 0;
    for (size_t i = 0; i < ctx.count; i++) {
        if (sites && by_site(&ctx.sites[sites - 1], &ctx.sites[i]) == 0) {
            ctx.sites[sites - 1].bytes += ctx.sites[i].bytes;
            ctx.sites[sites - 1].blocks += ctx.sites[i].blocks;
        } else {
            ctx.sites[sites++] = ctx.sites[i];
        }
    }
    mark_ambiguous(ctx.sites, sites);
    heap_sort(ctx.sites, sites, by_bytes);
    size_t shown = max_sites && max_sites < sites ? max_sites : sites;
    for (size_t i = 0; i < shown; i++) print_site(out, &ctx.sites[i]);
    fprintf(out, "amm: leak summary: %zu byte%s in %zu block%s still live, from %zu site%s", live_bytes,
            live_bytes == 1 ? "" : "s", live, live == 1 ? "" : "s", sites, sites == 1 ? "" : "s");
    if (shown < sites) fprintf(out, " (%zu not shown)", sites - shown);
    fputc('\n', out);
    fflush(out);
    amm__os_unmap(ctx.sites, map_bytes);
    return live;
}
