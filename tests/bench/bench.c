/*
 * bench.c - amm-bench: amm against glibc malloc, mimalloc and jemalloc, all
 * measured in the same run, printed as tables of times and ratios to glibc.
 *
 *   amm-bench [--quick] [--json] [--seed N] [--repeats N] [--only LIST] [--alloc LIST]
 *
 * --quick    tiny iteration counts: the smoke test CTest runs (label bench).
 *            It still checks every block's contents, amm_check and amm's
 *            fault count, and fails (exit 1) on any problem.
 * --json     one JSON document on stdout instead of the tables.
 * --seed N   seed of the randomised workloads (else $AMM_TEST_SEED, else 42);
 *            printed in the header.
 * --repeats  timed repetitions per cell, median reported (default 5; 2 with
 *            --quick, which only checks that every path works).
 * --only     comma-separated subset of: pairs,pool,mixed,threads,frag.
 * --alloc    comma-separated subset of the columns: glibc,mimalloc,jemalloc,
 *            amm-checked,amm-fast (for profiling one allocator; ratios need glibc).
 *
 * jemalloc needs static TLS space to be dlopen()ed (see allocators.c): if
 * GLIBC_TUNABLES does not already reserve it, amm-bench re-executes itself
 * once with glibc.rtld.optional_static_tls added.
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define TLS_TUNABLE "glibc.rtld.optional_static_tls=16384"
#define REEXEC_MARK "AMM_BENCH_REEXECUTED"

typedef void (*workload_fn)(bench_alloc all[BENCH_KIND_COUNT], const bench_opts *o);

static const struct {
    const char *name;
    workload_fn run;
} workloads[] = {
    {"pairs", wl_pairs}, {"pool", wl_pool}, {"mixed", wl_mixed}, {"threads", wl_threads}, {"frag", wl_frag},
};
enum { WORKLOAD_COUNT = sizeof workloads / sizeof workloads[0] };

static void usage(FILE *out)
{
    fputs("usage: amm-bench [--quick] [--json] [--seed N] [--repeats N] [--only pairs,pool,mixed,threads,frag]\n"
          "                 [--alloc glibc,mimalloc,jemalloc,amm-checked,amm-fast]\n",
          out);
}

/* Re-executes once with static TLS reserved for jemalloc, unless already. */
static void ensure_static_tls(char **argv)
{
    const char *tun = getenv("GLIBC_TUNABLES");
    if (getenv(REEXEC_MARK) != NULL || (tun != NULL && strstr(tun, "optional_static_tls") != NULL))
        return;
    char value[512];
    snprintf(value, sizeof value, "%s%s%s", tun != NULL ? tun : "", tun != NULL && *tun ? ":" : "", TLS_TUNABLE);
    if (setenv("GLIBC_TUNABLES", value, 1) != 0 || setenv(REEXEC_MARK, "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on; jemalloc will be reported missing if it cannot load. */
}

static int parse_u64(const char *text, uint64_t *out)
{
    char *end = NULL;
    if (text == NULL || *text == '\0' || *text == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    if (*end != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* Options taking a value: the value is missing or bad. */
static int bad_value(const char *option, const char *value, const char *want)
{
    fprintf(stderr, "amm-bench: %s needs %s, got %s%s%s\n", option, want, value ? "'" : "nothing",
            value ? value : "", value ? "'" : "");
    return -1;
}

typedef struct args {
    bench_opts opts;
    int json;
    const char *only;  /* workloads to run (NULL: all) */
    const char *alloc; /* columns to measure (NULL: all) */
    const char *seed_from;
    const char *child_workload; /* --child WORKLOAD ALLOC */
    const char *child_alloc;
} args;

static int parse_args(int argc, char **argv, args *a)
{
    uint64_t v;
    memset(a, 0, sizeof *a);
    a->opts.repeats = 0; /* 0: the default for the mode, set below */
    a->opts.seed = 42;
    a->seed_from = "default";
    const char *env_seed = getenv("AMM_TEST_SEED");
    if (env_seed != NULL && *env_seed != '\0') {
        if (parse_u64(env_seed, &a->opts.seed) != 0)
            return bad_value("AMM_TEST_SEED", env_seed, "an unsigned number");
        a->seed_from = "AMM_TEST_SEED";
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--quick") == 0) {
            a->opts.quick = 1;
        } else if (strcmp(arg, "--json") == 0) {
            a->json = 1;
        } else if (strcmp(arg, "--seed") == 0) {
            if (parse_u64(next, &a->opts.seed) != 0)
                return bad_value(arg, next, "an unsigned number");
            a->seed_from = "--seed";
            i++;
        } else if (strcmp(arg, "--repeats") == 0) {
            if (parse_u64(next, &v) != 0 || v < 1 || v > 15)
                return bad_value(arg, next, "a number from 1 to 15");
            a->opts.repeats = (int)v;
            i++;
        } else if (strcmp(arg, "--only") == 0 || strcmp(arg, "--alloc") == 0) {
            if (next == NULL || *next == '\0')
                return bad_value(arg, next, "a comma-separated list");
            if (strcmp(arg, "--only") == 0)
                a->only = next;
            else
                a->alloc = next;
            i++;
        } else if (strcmp(arg, "--child") == 0 && i + 2 < argc) {
            a->child_workload = argv[++i];
            a->child_alloc = argv[++i];
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "amm-bench: unknown argument '%s'\n", arg);
            usage(stderr);
            return -1;
        }
    }
    if (a->opts.repeats == 0)
        a->opts.repeats = a->opts.quick ? 2 : 5;
    return 0;
}

/* 1 if workload name is in the comma-separated list (NULL = all). */
static int selected(const char *list, const char *name)
{
    if (list == NULL)
        return 1;
    size_t len = strlen(name);
    for (const char *p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0)
            return 1;
        p += n + (comma != NULL);
    }
    return 0;
}

static int is_workload(const char *name, size_t len)
{
    for (int w = 0; w < WORKLOAD_COUNT; w++)
        if (strlen(workloads[w].name) == len && strncmp(name, workloads[w].name, len) == 0)
            return 1;
    return 0;
}

static int is_allocator(const char *name, size_t len)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), name);
    return len < sizeof buf && bench_kind_from_name(buf) >= 0;
}

/* Every item of a comma-separated list must be known; else says which. */
static int check_list(const char *list, const char *option, int (*known)(const char *, size_t))
{
    if (list == NULL)
        return 0;
    for (const char *p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (!known(p, n)) {
            fprintf(stderr, "amm-bench: unknown name '%.*s' in %s\n", (int)n, p, option);
            return -1;
        }
        p += n + (comma != NULL);
    }
    return 0;
}

static int run_child(const args *a)
{
    bench_alloc all[BENCH_KIND_COUNT];
    bench_kv kv;
    int k = bench_kind_from_name(a->child_alloc);
    memset(&kv, 0, sizeof kv);
    if (k < 0) {
        fprintf(stderr, "amm-bench: unknown allocator '%s'\n", a->child_alloc);
        return 2;
    }
    bench_allocs_init(all);
    if (!all[k].available) {
        fprintf(stderr, "amm-bench: %s is not available: %s\n", all[k].name, all[k].why_missing);
        return 2;
    }
    int rc;
    if (strcmp(a->child_workload, "mixed") == 0)
        rc = wl_mixed_child(&all[k], a->opts.seed, a->opts.quick, &kv);
    else if (strcmp(a->child_workload, "frag") == 0)
        rc = wl_frag_child(&all[k], a->opts.seed, a->opts.quick, &kv);
    else {
        fprintf(stderr, "amm-bench: no child workload '%s'\n", a->child_workload);
        return 2;
    }
    bench_kv_print(&kv, stdout);
    fflush(stdout);
    return rc == 0 && bench_failures() == 0 ? 0 : 1;
}

static void cpu_model(char *buf, size_t len)
{
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(buf, len, "unknown");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(buf, len, "%s", colon + 2);
            break;
        }
    }
    fclose(f);
}

static const char *build_kind(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return "AddressSanitizer (timings not representative)";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return "sanitizer build (timings not representative)";
#endif
#endif
#ifdef NDEBUG
    return "optimised, NDEBUG";
#else
    return "assertions on";
#endif
}

static void print_machine(bench_alloc all[BENCH_KIND_COUNT], const args *a)
{
    const bench_versions *v = bench_get_versions();
    char buf[512], cpu[200];
    struct utsname u;
    cpu_model(cpu, sizeof cpu);
    snprintf(buf, sizeof buf, "%ld online, CPU %s", sysconf(_SC_NPROCESSORS_ONLN), cpu);
    bench_report_meta("machine", buf);
    if (uname(&u) == 0) {
        snprintf(buf, sizeof buf, "%s %s %s", u.sysname, u.release, u.machine);
        bench_report_meta("kernel", buf);
    }
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL && fgets(buf, sizeof buf, f) != NULL) {
        buf[strcspn(buf, "\n")] = '\0';
        bench_report_meta("load average", buf);
    }
    if (f != NULL)
        fclose(f);
    snprintf(buf, sizeof buf, "%s; %s", __VERSION__, build_kind());
    bench_report_meta("compiler", buf);
    snprintf(buf, sizeof buf, "glibc %s (malloc resolves to %s%s)", v->glibc, v->malloc_provider,
             strstr(v->malloc_provider, "libc.so") != NULL ? "" : ": not glibc's allocator, the column is mislabelled");
    bench_report_meta("glibc", buf);
    snprintf(buf, sizeof buf, "%s", all[BENCH_MIMALLOC].available ? v->mimalloc : all[BENCH_MIMALLOC].why_missing);
    bench_report_meta("mimalloc", buf);
    snprintf(buf, sizeof buf, "%s", all[BENCH_JEMALLOC].available ? v->jemalloc : all[BENCH_JEMALLOC].why_missing);
    bench_report_meta("jemalloc", buf);
    const char *extra = getenv(BENCH_AMM_EXTRA_ENV);
    snprintf(buf, sizeof buf, "%s; checked = defaults, fast = %s%s%s%s", v->amm, BENCH_AMM_FAST_OPTIONS,
             extra ? "; both + " : "", extra ? extra : "", extra ? " (" BENCH_AMM_EXTRA_ENV ")" : "");
    bench_report_meta("amm", buf);
    snprintf(buf, sizeof buf, "%llu (from %s)", (unsigned long long)a->opts.seed, a->seed_from);
    bench_report_meta("seed", buf);
    snprintf(buf, sizeof buf, "%s, median of %d", a->opts.quick ? "quick (smoke test)" : "full", a->opts.repeats);
    bench_report_meta("mode", buf);
}

int main(int argc, char **argv)
{
    args a;
    if (parse_args(argc, argv, &a) != 0 || check_list(a.only, "--only", is_workload) != 0 ||
        check_list(a.alloc, "--alloc", is_allocator) != 0)
        return 2;
    ensure_static_tls(argv);
    if (a.child_workload != NULL)
        return run_child(&a);

    bench_alloc all[BENCH_KIND_COUNT];
    bench_report_set_json(a.json);
    bench_allocs_init(all);
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        if (all[k].available && !selected(a.alloc, all[k].name)) {
            all[k].available = 0;
            snprintf(all[k].why_missing, sizeof all[k].why_missing, "not selected (--alloc)");
        }
    }
    print_machine(all, &a);
    for (int k = 0; k < BENCH_KIND_COUNT; k++)
        if (!all[k].available)
            fprintf(stderr, "amm-bench: %s not measured: %s\n", all[k].name, all[k].why_missing);
    for (int w = 0; w < WORKLOAD_COUNT; w++)
        if (selected(a.only, workloads[w].name))
            workloads[w].run(all, &a.opts);
    bench_targets_emit();
    bench_report_finish(stdout);
    if (bench_failures() != 0) {
        fprintf(stderr, "amm-bench: %d failure(s) (seed %llu)\n", bench_failures(), (unsigned long long)a.opts.seed);
        return 1;
    }
    return 0;
}
