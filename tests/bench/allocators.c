/*
 * allocators.c - the five columns of amm-bench behind one vtable.
 *
 * glibc: plain malloc/free/realloc (whatever "malloc" resolves to in this
 *        process is recorded, so an ASan build says so instead of lying).
 * mimalloc, jemalloc: dlopen(RTLD_LOCAL) + dlsym, never linked, so they do
 *        not interpose malloc for the rest of the process.  jemalloc's TLS is
 *        initial-exec, which only loads with dlopen when glibc reserves enough
 *        static TLS: bench.c re-executes itself with
 *        GLIBC_TUNABLES=glibc.rtld.optional_static_tls=... for that.
 *        Each peer is verified: a version query must succeed, its malloc must
 *        come from its own library, and a block it returns must be counted by
 *        it (jemalloc thread.allocated, mimalloc mi_heap_contains_block).
 * amm:   one fresh manager per bench_alloc_begin, in checked (defaults) or
 *        fast (BENCH_AMM_FAST_OPTIONS) mode, then $AMM_BENCH_OPTIONS on top
 *        (an environment variable, so the --child processes get it too).
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_MIMALLOC_SONAME
#define BENCH_MIMALLOC_SONAME "libmimalloc.so.2"
#endif
#ifndef BENCH_JEMALLOC_SONAME
#define BENCH_JEMALLOC_SONAME "libjemalloc.so.2"
#endif

/* ThreadSanitizer cannot see the peers' internal synchronisation (they are
 * not instrumented), so a block freed by one thread and reused by another
 * reads as a data race: under TSan the peers are left out. */
#if defined(__SANITIZE_THREAD__)
#define BENCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BENCH_TSAN 1
#endif
#endif

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*realloc_fn)(void *, size_t);
typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
typedef int (*mi_version_fn)(void);
typedef void (*mi_collect_fn)(_Bool);
typedef void *(*mi_heap_default_fn)(void);
typedef _Bool (*mi_heap_contains_fn)(const void *, const void *);
typedef void (*mi_process_info_fn)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *,
                                   size_t *);

/* The peers' entry points, resolved once. */
static struct peers {
    int loaded;
    malloc_fn mi_malloc;
    free_fn mi_free;
    realloc_fn mi_realloc;
    mi_collect_fn mi_collect;
    mi_process_info_fn mi_process_info;
    malloc_fn je_malloc;
    free_fn je_free;
    realloc_fn je_realloc;
    mallctl_fn je_mallctl;
    bench_versions versions;
} g_peers;

static const char *const kind_names[BENCH_KIND_COUNT] = {"glibc", "mimalloc", "jemalloc", "amm-checked",
                                                         "amm-fast"};

/* dlsym into a function pointer without the object-to-function cast that
 * ISO C does not define (POSIX guarantees the representation). */
static int sym(void *lib, const char *name, void *fn_out, size_t fn_size)
{
    void *p = dlsym(lib, name);
    if (p == NULL || fn_size != sizeof p)
        return -1;
    memcpy(fn_out, &p, sizeof p);
    return 0;
}
#define SYM(lib, name, dst) sym((lib), (name), &(dst), sizeof(dst))

/* The file name of the object that defines addr ("?" if unknown). */
static const char *object_of(const void *addr)
{
    Dl_info info;
    if (addr != NULL && dladdr(addr, &info) != 0 && info.dli_fname != NULL)
        return info.dli_fname;
    return "?";
}

static const void *fn_addr(const void *fn_slot, size_t size)
{
    const void *p = NULL;
    if (size == sizeof p)
        memcpy(&p, fn_slot, sizeof p);
    return p;
}
#define FN_ADDR(f) fn_addr(&(f), sizeof(f))

/* ---- glibc ---- */

static void *glibc_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n);
}
static void glibc_release(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}
static void *glibc_resize(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

/* ---- mimalloc ---- */

static void *mi_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return g_peers.mi_malloc(n);
}
static void mi_release(void *ctx, void *p)
{
    (void)ctx;
    g_peers.mi_free(p);
}
static void *mi_resize(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return g_peers.mi_realloc(p, n);
}

static int load_mimalloc(bench_alloc *a)
{
#ifdef BENCH_TSAN
    snprintf(a->why_missing, sizeof a->why_missing, "left out under ThreadSanitizer (not instrumented)");
    return -1;
#endif
    void *lib = dlopen(BENCH_MIMALLOC_SONAME, RTLD_NOW | RTLD_LOCAL);
    mi_version_fn version = NULL;
    mi_heap_default_fn heap_default = NULL;
    mi_heap_contains_fn heap_contains = NULL;
    if (lib == NULL) {
        snprintf(a->why_missing, sizeof a->why_missing, "dlopen: %s", dlerror());
        return -1;
    }
    if (SYM(lib, "mi_malloc", g_peers.mi_malloc) || SYM(lib, "mi_free", g_peers.mi_free) ||
        SYM(lib, "mi_realloc", g_peers.mi_realloc) || SYM(lib, "mi_collect", g_peers.mi_collect) ||
        SYM(lib, "mi_version", version) || SYM(lib, "mi_heap_get_default", heap_default) ||
        SYM(lib, "mi_heap_contains_block", heap_contains)) {
        snprintf(a->why_missing, sizeof a->why_missing, "%s lacks a mi_* symbol", BENCH_MIMALLOC_SONAME);
        return -1;
    }
    (void)SYM(lib, "mi_process_info", g_peers.mi_process_info); /* optional */
    void *probe = g_peers.mi_malloc(100);
    /* Not mi_is_in_heap_region: its segment map misses blocks mapped high,
     * as they are under ASan (whose shadow takes the hint addresses). */
    int ok = probe != NULL && heap_contains(heap_default(), probe);
    g_peers.mi_free(probe);
    if (!ok) {
        bench_fail("mimalloc verification: mi_malloc's block is not in mimalloc's default heap");
        return -1;
    }
    int v = version();
    snprintf(g_peers.versions.mimalloc, sizeof g_peers.versions.mimalloc, "%d.%d.%d", v / 100, (v / 10) % 10,
             v % 10);
    return 0;
}

/* ---- jemalloc ---- */

static void *je_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return g_peers.je_malloc(n);
}
static void je_release(void *ctx, void *p)
{
    (void)ctx;
    g_peers.je_free(p);
}
static void *je_resize(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return g_peers.je_realloc(p, n);
}

static uint64_t je_thread_allocated(void)
{
    uint64_t v = 0;
    size_t len = sizeof v;
    if (g_peers.je_mallctl("thread.allocated", &v, &len, NULL, 0) != 0)
        return 0;
    return v;
}

static int load_jemalloc(bench_alloc *a)
{
#ifdef BENCH_TSAN
    snprintf(a->why_missing, sizeof a->why_missing, "left out under ThreadSanitizer (not instrumented)");
    return -1;
#endif
    void *lib = dlopen(BENCH_JEMALLOC_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(a->why_missing, sizeof a->why_missing, "dlopen: %s", dlerror());
        return -1;
    }
    if (SYM(lib, "malloc", g_peers.je_malloc) || SYM(lib, "free", g_peers.je_free) ||
        SYM(lib, "realloc", g_peers.je_realloc) || SYM(lib, "mallctl", g_peers.je_mallctl)) {
        snprintf(a->why_missing, sizeof a->why_missing, "%s lacks malloc/free/realloc/mallctl",
                 BENCH_JEMALLOC_SONAME);
        return -1;
    }
    const char *version = NULL;
    size_t len = sizeof version;
    if (g_peers.je_mallctl("version", &version, &len, NULL, 0) != 0 || version == NULL) {
        bench_fail("jemalloc verification: mallctl(\"version\") failed");
        return -1;
    }
    if (strstr(object_of(FN_ADDR(g_peers.je_malloc)), "jemalloc") == NULL) {
        bench_fail("jemalloc verification: its malloc resolves to %s", object_of(FN_ADDR(g_peers.je_malloc)));
        return -1;
    }
    uint64_t before = je_thread_allocated();
    void *probe = g_peers.je_malloc(1000);
    uint64_t after = je_thread_allocated();
    g_peers.je_free(probe);
    if (probe == NULL || after < before + 1000) {
        bench_fail("jemalloc verification: thread.allocated did not count a 1000-byte block");
        return -1;
    }
    snprintf(g_peers.versions.jemalloc, sizeof g_peers.versions.jemalloc, "%.*s", 60, version);
    return 0;
}

/* ---- amm ---- */

static void *amm_bench_alloc(void *ctx, size_t n)
{
    return amm_alloc_at((amm_manager *)ctx, n, 0, 0u, __FILE__, __LINE__);
}
static void amm_bench_release(void *ctx, void *p)
{
    (void)amm_free_at((amm_manager *)ctx, p, __FILE__, __LINE__);
}
static void *amm_bench_resize(void *ctx, void *p, size_t n)
{
    return amm_realloc_at((amm_manager *)ctx, p, n, 0, __FILE__, __LINE__);
}

static void set_vtable(bench_alloc *a, bench_kind kind)
{
    static const struct {
        void *(*alloc)(void *, size_t);
        void (*release)(void *, void *);
        void *(*resize)(void *, void *, size_t);
    } vtables[BENCH_KIND_COUNT] = {
        [BENCH_GLIBC] = {glibc_alloc, glibc_release, glibc_resize},
        [BENCH_MIMALLOC] = {mi_alloc, mi_release, mi_resize},
        [BENCH_JEMALLOC] = {je_alloc, je_release, je_resize},
        [BENCH_AMM_CHECKED] = {amm_bench_alloc, amm_bench_release, amm_bench_resize},
        [BENCH_AMM_FAST] = {amm_bench_alloc, amm_bench_release, amm_bench_resize},
    };
    a->kind = kind;
    a->name = kind_names[kind];
    a->ctx = NULL;
    a->alloc = vtables[kind].alloc;
    a->release = vtables[kind].release;
    a->resize = vtables[kind].resize;
}

void bench_allocs_init(bench_alloc all[BENCH_KIND_COUNT])
{
    static int mi_ok, je_ok;
    static char mi_why[160], je_why[160];
    bench_versions *v = &g_peers.versions;
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        memset(&all[k], 0, sizeof all[k]);
        set_vtable(&all[k], (bench_kind)k);
        all[k].available = 1;
    }
    if (!g_peers.loaded) {
        g_peers.loaded = 1;
        snprintf(v->glibc, sizeof v->glibc, "%s", gnu_get_libc_version());
        snprintf(v->amm, sizeof v->amm, "%d.%d.%d", AMM_VERSION_MAJOR, AMM_VERSION_MINOR, AMM_VERSION_PATCH);
        malloc_fn m = malloc;
        snprintf(v->malloc_provider, sizeof v->malloc_provider, "%s", object_of(FN_ADDR(m)));
        snprintf(v->mimalloc, sizeof v->mimalloc, "missing");
        snprintf(v->jemalloc, sizeof v->jemalloc, "missing");
        mi_ok = load_mimalloc(&all[BENCH_MIMALLOC]) == 0;
        memcpy(mi_why, all[BENCH_MIMALLOC].why_missing, sizeof mi_why);
        je_ok = load_jemalloc(&all[BENCH_JEMALLOC]) == 0;
        memcpy(je_why, all[BENCH_JEMALLOC].why_missing, sizeof je_why);
    }
    all[BENCH_MIMALLOC].available = mi_ok;
    memcpy(all[BENCH_MIMALLOC].why_missing, mi_why, sizeof mi_why);
    all[BENCH_JEMALLOC].available = je_ok;
    memcpy(all[BENCH_JEMALLOC].why_missing, je_why, sizeof je_why);
}

const bench_versions *bench_get_versions(void)
{
    return &g_peers.versions;
}

int bench_kind_from_name(const char *name)
{
    for (int k = 0; k < BENCH_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

static int is_amm(const bench_alloc *a)
{
    return a->kind == BENCH_AMM_CHECKED || a->kind == BENCH_AMM_FAST;
}

int bench_alloc_begin(bench_alloc *a)
{
    if (!is_amm(a))
        return 0;
    amm_config cfg;
    char err[200] = "";
    amm_config_defaults(&cfg);
    if (a->kind == BENCH_AMM_FAST && amm_config_parse(&cfg, BENCH_AMM_FAST_OPTIONS, err, sizeof err) != 0) {
        bench_fail("amm_config_parse(\"%s\"): %s", BENCH_AMM_FAST_OPTIONS, err);
        return -1;
    }
    const char *extra = getenv(BENCH_AMM_EXTRA_ENV);
    if (extra && amm_config_parse(&cfg, extra, err, sizeof err) != 0) {
        bench_fail("%s=\"%s\": %s", BENCH_AMM_EXTRA_ENV, extra, err);
        return -1;
    }
    a->ctx = amm_create(&cfg);
    if (a->ctx == NULL) {
        bench_fail("amm_create failed for %s", a->name);
        return -1;
    }
    return 0;
}

int bench_alloc_end(bench_alloc *a)
{
    int problems = 0;
    amm_manager *m = bench_alloc_amm(a);
    if (m == NULL)
        return 0;
    size_t bad = amm_check(m);
    if (bad != 0) {
        bench_fail("%s: amm_check found %zu problem(s)", a->name, bad);
        problems++;
    }
    size_t faults = amm_fault_count(m);
    if (faults != 0) {
        bench_fail("%s: amm reported %zu fault(s) during a correct workload", a->name, faults);
        problems++;
    }
    amm_destroy(m);
    a->ctx = NULL;
    return problems;
}

amm_manager *bench_alloc_amm(const bench_alloc *a)
{
    return is_amm(a) ? (amm_manager *)a->ctx : NULL;
}

void bench_alloc_trim(bench_alloc *a)
{
    switch (a->kind) {
    case BENCH_GLIBC:
        (void)malloc_trim(0);
        break;
    case BENCH_MIMALLOC:
        g_peers.mi_collect(1);
        break;
    case BENCH_JEMALLOC:
        /* 4096 is MALLCTL_ARENAS_ALL: purge every arena's dirty pages. */
        (void)g_peers.je_mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
        break;
    default:
        if (a->ctx != NULL)
            amm_defragment((amm_manager *)a->ctx, AMM_DEFRAG_RELEASE, NULL);
        break;
    }
}

static double je_stat(const char *name)
{
    uint64_t epoch = 1;
    size_t value = 0, len = sizeof value, elen = sizeof epoch;
    (void)g_peers.je_mallctl("epoch", &epoch, &elen, &epoch, sizeof epoch); /* refresh the stats */
    if (g_peers.je_mallctl(name, &value, &len, NULL, 0) != 0)
        return -1;
    return (double)value;
}

void bench_alloc_footprint(bench_alloc *a, bench_footprint *fp)
{
    fp->reserved = -1;
    fp->resident = -1;
    switch (a->kind) {
    case BENCH_GLIBC: {
        struct mallinfo2 mi = mallinfo2();
        fp->reserved = (double)(mi.arena + mi.hblkhd);
        break;
    }
    case BENCH_MIMALLOC:
        if (g_peers.mi_process_info != NULL) {
            size_t el, us, sy, rss, peak_rss, commit, peak_commit, faults;
            g_peers.mi_process_info(&el, &us, &sy, &rss, &peak_rss, &commit, &peak_commit, &faults);
            fp->reserved = (double)commit;
        }
        break;
    case BENCH_JEMALLOC:
        fp->reserved = je_stat("stats.mapped");
        fp->resident = je_stat("stats.resident");
        break;
    default:
        if (a->ctx != NULL) {
            amm_stats st;
            amm_get_stats((amm_manager *)a->ctx, &st);
            fp->reserved = (double)st.reserved_bytes;
            fp->resident = (double)st.resident_bytes;
        }
        break;
    }
}
