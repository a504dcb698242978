/*
 * measure.c - clocks, resident memory, medians, seeded random numbers,
 * failures and child processes for amm-bench.
 *
 * RSS: /proc/self/statm gives resident pages now; VmHWM in /proc/self/status
 * is the peak, which writing "5" to /proc/self/clear_refs resets (Linux 4.0+),
 * so a child can measure the peak of one workload only.
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_failures; /* bench_fail may run on the workload threads */

void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_fetch_add(&g_failures, 1);
}

int bench_failures(void)
{
    return atomic_load(&g_failures);
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *values, size_t n)
{
    qsort(values, n, sizeof *values, cmp_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static void interleave(bench_alloc all[BENCH_KIND_COUNT], bench_run_fn fn, void *arg, int repeats,
                       double out[BENCH_KIND_COUNT])
{
    double runs[BENCH_KIND_COUNT][64];
    int ok[BENCH_KIND_COUNT];
    repeats = repeats < 1 ? 1 : repeats > 64 ? 64 : repeats;
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        ok[k] = all[k].available && fn(&all[k], arg) >= 0;
        out[k] = -1;
    }
    for (int r = 0; r < repeats; r++)
        for (int k = 0; k < BENCH_KIND_COUNT; k++)
            if (ok[k])
                ok[k] = (runs[k][r] = fn(&all[k], arg)) >= 0;
    for (int k = 0; k < BENCH_KIND_COUNT; k++)
        if (ok[k])
            out[k] = bench_median(runs[k], (size_t)repeats);
}

void bench_measure_row(bench_alloc all[BENCH_KIND_COUNT], bench_run_fn fn, bench_prepare_fn prepare, void *arg,
                       int repeats, double ns[BENCH_KIND_COUNT])
{
    bench_alloc begun[BENCH_KIND_COUNT]; /* amm: holds the manager for bench_alloc_end */
    bench_alloc timed[BENCH_KIND_COUNT];
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        begun[k] = all[k];
        begun[k].available = all[k].available && bench_alloc_begin(&begun[k]) == 0;
        timed[k] = begun[k];
        if (timed[k].available && prepare != NULL)
            timed[k].available = prepare(&timed[k], arg) == 0;
    }
    interleave(timed, fn, arg, repeats, ns);
    for (int k = 0; k < BENCH_KIND_COUNT; k++)
        if (begun[k].available && bench_alloc_end(&begun[k]) != 0)
            ns[k] = -1;
}

double bench_rss_now(void)
{
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    int n = fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    fclose(f);
    if (n != 2)
        return -1;
    return (double)pages_resident * (double)sysconf(_SC_PAGESIZE);
}

int bench_rss_peak_reset(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, "5", 1);
    close(fd);
    return w == 1 ? 0 : -1;
}

double bench_rss_peak(void)
{
    char line[256];
    double kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        long v;
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1) {
            kib = (double)v;
            break;
        }
    }
    fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

/* ---- random numbers: splitmix64 ---- */

void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

size_t bench_rng_range(bench_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(bench_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- key=value results ---- */

void bench_kv_put(bench_kv *kv, const char *key, double value)
{
    if (kv->count >= BENCH_MAX_KV)
        return;
    snprintf(kv->key[kv->count], sizeof kv->key[0], "%s", key);
    kv->value[kv->count++] = value;
}

double bench_kv_get(const bench_kv *kv, const char *key, double fallback)
{
    for (int i = 0; i < kv->count; i++)
        if (strcmp(kv->key[i], key) == 0)
            return kv->value[i];
    return fallback;
}

void bench_kv_print(const bench_kv *kv, FILE *out)
{
    fputs("RESULT", out);
    for (int i = 0; i < kv->count; i++)
        fprintf(out, " %s=%.17g", kv->key[i], kv->value[i]);
    fputc('\n', out);
}

static int kv_parse(const char *text, bench_kv *kv)
{
    const char *line = strstr(text, "RESULT");
    memset(kv, 0, sizeof *kv);
    if (line == NULL)
        return -1;
    line += strlen("RESULT");
    for (;;) {
        char key[32];
        double value;
        int used = 0;
        if (sscanf(line, " %31[^= \n]=%lf%n", key, &value, &used) != 2)
            break;
        bench_kv_put(kv, key, value);
        line += used;
    }
    return 0;
}

/* ---- child processes ---- */

static void child_exec(int out_fd, const char *workload, const char *alloc_name, const char *seed, int quick)
{
    char *argv[] = {"amm-bench", "--child", (char *)workload, (char *)alloc_name, "--seed", (char *)seed,
                    quick ? "--quick" : NULL, NULL};
    if (dup2(out_fd, STDOUT_FILENO) < 0)
        _exit(126);
    execv("/proc/self/exe", argv);
    _exit(127);
}

/* Reads all of fd into buf (NUL-terminated, truncated at len - 1). */
static void read_all(int fd, char *buf, size_t len)
{
    size_t used = 0;
    for (;;) {
        char scratch[256];
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < len - 1 - used ? (size_t)n : len - 1 - used;
        memcpy(buf + used, scratch, take);
        used += take;
    }
    buf[used] = '\0';
}

int bench_run_child(const char *workload, const char *alloc_name, uint64_t seed, int quick, bench_kv *kv)
{
    int fds[2];
    char seed_text[32], out[4096];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        bench_fail("pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        bench_fail("fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child_exec(fds[1], workload, alloc_name, seed_text, quick);
    }
    close(fds[1]);
    read_all(fds[0], out, sizeof out);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_fail("child %s/%s (seed %s) %s %d", workload, alloc_name, seed_text,
                   WIFEXITED(status) ? "exited with" : "died of signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    if (kv_parse(out, kv) != 0) {
        bench_fail("child %s/%s printed no RESULT line", workload, alloc_name);
        return -1;
    }
    return 0;
}
