/*
 * preload.c - libamm-preload.so, the LD_PRELOAD shim: the C allocator of an
 * unmodified, dynamically linked program replaced by one amm manager.
 *
 *   LD_PRELOAD=/path/to/libamm-preload.so AMM_OPTIONS=... program args...
 *
 * Every function of the malloc family below is a few lines over the amm API:
 * malloc/calloc/aligned allocations are amm_alloc_at (calloc with
 * AMM_ALLOC_ZERO), free is amm_free_at, realloc is amm_realloc_at,
 * malloc_usable_size is amm_size (the requested size, so a program that
 * writes up to it never touches a canary).  Faults go through amm's own
 * report path: one line on stderr each, the faulty operation refused, and the
 * program goes on (on_error=abort makes it die with SIGABRT instead).
 *
 * One manager for the process, created by the first call that needs it:
 *
 *   UNINIT --first call wins the CAS--> STARTING --amm_create(NULL) done--> READY
 *
 * amm_create(NULL) reads AMM_OPTIONS (amm's own parser; a bad pair is
 * reported and ignored, the program still runs).  Other threads arriving
 * during STARTING yield until READY.  amm maps its memory with mmap and never
 * calls malloc on its paths, but a few things it may reach can (pthread_create
 * when tracing starts, atexit, stdio if a program made stderr buffered), and a
 * signal handler may call malloc while its thread is inside amm.  So every
 * thread keeps a depth count of "inside amm"; a call made with depth > 0 is a
 * re-entry and is served from a static bootstrap arena (a bump allocator:
 * never reused, so its memory is always zero; free of an arena block is a
 * no-op).  A re-entrant call therefore never takes the manager's lock twice.
 * dlsym is not used (it calls calloc itself): nothing is forwarded to glibc.
 *
 * fork: pthread_atfork handlers hold the manager's lock across fork, so the
 * child never inherits it taken by a thread that does not exist there.
 *
 * Reports: amm's one-line format (amm_report_format), written to fd 2 with
 * write(2) rather than through stdio: no stdio lock is taken while the
 * manager's lock is held (another thread may hold stderr's lock and be
 * waiting in malloc), and a program that made stderr buffered, or fclose'd
 * it, cannot make a report allocate.  amm still counts and traces each fault
 * and aborts after it with on_error=abort.
 *
 * At exit (a destructor, after the program's own) the whole heap is checked
 * once (amm_check): a write to a block still in quarantine, or past the end
 * of a block never freed, is reported then.  AMM_PRELOAD_STATS=1 adds one
 * line of statistics per process on stderr; AMM_PRELOAD_STATS=/path appends
 * it to that file instead (for programs that close stderr before exit, as
 * coreutils do).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h" /* amm__lock / amm__unlock for the fork handlers */

#define PRELOAD_API __attribute__((visibility("default")))

/* Sizes above this fail with ENOMEM at once, as glibc's do, without a report:
 * no system could map them, and amm would call them bad-size. */
#define SHIM_MAX_SIZE (SIZE_MAX / 4)

/* ------------------------------------------------------------------------ */
/* Bootstrap arena: re-entrant calls only                                   */
/* ------------------------------------------------------------------------ */

/* Block layout: [ ... size_t size | user bytes ... ], user aligned to at
 * least 16; the size word sits just before the user pointer. */
#define BOOT_BYTES ((size_t)1 << 20)
#define BOOT_MAX_ALIGN ((size_t)4096)

static _Alignas(64) unsigned char boot_arena[BOOT_BYTES];
static atomic_size_t boot_used; /* bytes of boot_arena handed out (bump pointer) */

_Static_assert(AMM_DEFAULT_ALIGN >= sizeof(size_t), "the size word fits in front of an aligned block");

static int boot_owns(const void *p) {
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)boot_arena;
    return a >= base && a < base + BOOT_BYTES;
}

static size_t boot_size(const void *p) {
    size_t n;
    memcpy(&n, (const unsigned char *)p - sizeof n, sizeof n);
    return n;
}

/* A never-reused, zeroed block, or NULL when the arena is spent. Lock-free. */
static void *boot_alloc(size_t size, size_t align) {
    if (align < AMM_DEFAULT_ALIGN) align = AMM_DEFAULT_ALIGN;
    if (align > BOOT_MAX_ALIGN || size > BOOT_BYTES) return NULL;
    uintptr_t base = (uintptr_t)boot_arena;
    size_t used = atomic_load(&boot_used), end;
    uintptr_t user;
    do {
        user = amm__align_up(base + used + sizeof(size_t), align);
        end = amm__align_up(user + size, AMM_DEFAULT_ALIGN) - base;
        if (end > BOOT_BYTES) return NULL;
    } while (!atomic_compare_exchange_weak(&boot_used, &used, end));
    memcpy((unsigned char *)user - sizeof size, &size, sizeof size);
    return (void *)user;
}

/* ------------------------------------------------------------------------ */
/* The process-wide manager                                                 */
/* ------------------------------------------------------------------------ */

enum { SHIM_UNINIT, SHIM_STARTING, SHIM_READY };

static atomic_int shim_state = SHIM_UNINIT;
static amm_manager *shim_m;     /* written once, before shim_state becomes READY */
static char shim_stats[4096];   /* AMM_PRELOAD_STATS as read at start: "" (off), "1" (stderr) or a file path */

/* How deep this thread is inside amm; > 0 makes a call re-entrant.
 * initial-exec: reading it never calls into the dynamic loader. */
static _Thread_local unsigned shim_depth __attribute__((tls_model("initial-exec")));

static void write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        s += k;
        n -= (size_t)k;
    }
}

static void shim_die(const char *msg) {
    write_all(2, msg, strlen(msg));
    abort();
}

/* The error handler: amm's one-line format, one write(2) to fd 2. */
static void shim_report(const amm_report *r, void *user) {
    (void)user;
    char line[512];
    int n = amm_report_format(r, line, sizeof line - 1);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len] = '\n';
    write_all(2, line, len + 1);
}

static void fork_prepare(void) { amm__lock(shim_m); }
static void fork_release(void) { amm__unlock(shim_m); } /* parent and child alike */

static void shim_start(void) {
    int expected = SHIM_UNINIT;
    if (!atomic_compare_exchange_strong(&shim_state, &expected, SHIM_STARTING)) {
        while (atomic_load_explicit(&shim_state, memory_order_acquire) != SHIM_READY) sched_yield();
        return;
    }
    amm_manager *m = amm_create(NULL); /* defaults + AMM_OPTIONS, bad pairs reported and ignored */
    if (!m) {                          /* the reason was reported; try the plain defaults once */
        amm_config cfg;
        amm_config_defaults(&cfg);
        m = amm_create(&cfg);
    }
    if (!m) shim_die("amm-preload: cannot create the amm manager (the system refused memory); aborting\n");
    amm_set_error_handler(m, shim_report, NULL);
    const char *stats = getenv("AMM_PRELOAD_STATS");
    if (stats && strcmp(stats, "0") != 0 && strlen(stats) < sizeof shim_stats) strcpy(shim_stats, stats);
    shim_m = m;
    atomic_store_explicit(&shim_state, SHIM_READY, memory_order_release);
    if (pthread_atfork(fork_prepare, fork_release, fork_release) != 0) {
        shim_die("amm-preload: pthread_atfork failed; aborting\n");
    }
}

/*
 * The manager for this call, with the thread marked inside amm (pair it with
 * shim_leave), or NULL for a re-entrant call, which the arena serves.
 */
static amm_manager *shim_enter(void) {
    if (shim_depth) return NULL;
    shim_depth++;
    if (atomic_load_explicit(&shim_state, memory_order_acquire) != SHIM_READY) shim_start();
    return shim_m;
}

static void shim_leave(void) { shim_depth--; }

/* ------------------------------------------------------------------------ */
/* Helpers shared by the overrides                                          */
/* ------------------------------------------------------------------------ */

/* size bytes aligned to align (a power of two; below 16 means 16), errno
 * ENOMEM on failure and untouched on success. */
static void *shim_alloc(size_t size, size_t align, unsigned flags) {
    if (size > SHIM_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (align <= AMM_DEFAULT_ALIGN) align = 0;
    int saved = errno;
    amm_manager *m = shim_enter();
    void *p;
    if (m) {
        p = amm_alloc_at(m, size, align, flags, NULL, 0);
        shim_leave();
    } else {
        p = boot_alloc(size, align);
    }
    errno = p ? saved : ENOMEM;
    return p;
}

static void shim_free(void *p) {
    if (!p || boot_owns(p)) return;
    int saved = errno; /* free never changes errno (POSIX 2024, glibc >= 2.33) */
    amm_manager *m = shim_enter();
    if (m) {
        amm_free_at(m, p, NULL, 0);
        shim_leave();
    }
    /* else: a re-entrant free of an amm block from inside amm; it is left allocated */
    errno = saved;
}

static void *shim_realloc(void *p, size_t size) {
    if (!p) return shim_alloc(size, 0, 0);
    if (size == 0) { /* as glibc: free, return NULL */
        shim_free(p);
        return NULL;
    }
    if (boot_owns(p)) { /* an arena block moves to amm (or to the arena again) */
        void *q = shim_alloc(size, 0, 0);
        size_t old = boot_size(p);
        if (q) memcpy(q, p, old < size ? old : size);
        return q;
    }
    if (size > SHIM_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    int saved = errno;
    amm_manager *m = shim_enter();
    void *q = NULL;
    if (m) { /* alignment 0: the block keeps its own */
        q = amm_realloc_at(m, p, size, 0, NULL, 0);
        shim_leave();
    }
    errno = q ? saved : ENOMEM;
    return q;
}

/* count * size, or SIZE_MAX when it overflows (any size above SHIM_MAX_SIZE fails). */
static size_t mul_or_max(size_t count, size_t size) {
    size_t n;
    return __builtin_mul_overflow(count, size, &n) ? SIZE_MAX : n;
}

/* ------------------------------------------------------------------------ */
/* The malloc family                                                        */
/* ------------------------------------------------------------------------ */

void cfree(void *ptr); /* glibc dropped its declaration; old programs still call it */

PRELOAD_API void *malloc(size_t size) { return shim_alloc(size, 0, 0); }

PRELOAD_API void free(void *ptr) { shim_free(ptr); }

PRELOAD_API void cfree(void *ptr) { shim_free(ptr); }

PRELOAD_API void *calloc(size_t nmemb, size_t size) { return shim_alloc(mul_or_max(nmemb, size), 0, AMM_ALLOC_ZERO); }

PRELOAD_API void *realloc(void *ptr, size_t size) { return shim_realloc(ptr, size); }

PRELOAD_API void *reallocarray(void *ptr, size_t nmemb, size_t size) {
    size_t n = mul_or_max(nmemb, size);
    if (n == SIZE_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return shim_realloc(ptr, n);
}

/* EINVAL (no report) unless alignment is a power of two multiple of
 * sizeof(void *); above AMM_MAX_ALIGN amm reports bad-alignment: ENOMEM. */
PRELOAD_API int posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!amm__is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved = errno; /* posix_memalign returns its error, errno stays */
    void *p = shim_alloc(size, alignment, 0);
    int rc = errno;
    errno = saved;
    if (!p) return rc;
    *memptr = p;
    return 0;
}

/* C17 (DR 460): an alignment that is not a power of two fails (EINVAL). */
PRELOAD_API void *aligned_alloc(size_t alignment, size_t size) {
    if (!amm__is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return shim_alloc(size, alignment, 0);
}

/* As glibc: an alignment that is not a power of two is rounded up to one. */
PRELOAD_API void *memalign(size_t alignment, size_t size) {
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < alignment) a <<= 1;
    return shim_alloc(size, a, 0);
}

PRELOAD_API void *valloc(size_t size) { return shim_alloc(size, amm__page_size(), 0); }

/* size rounded up to whole pages (0 -> one page), page aligned. */
PRELOAD_API void *pvalloc(size_t size) {
    size_t page = amm__page_size();
    if (size > SHIM_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t n = size ? amm__align_up(size, page) : page;
    return shim_alloc(n, page, 0);
}

/* The requested size (not the chunk's): writing up to it is always safe. */
PRELOAD_API size_t malloc_usable_size(void *ptr) {
    if (!ptr) return 0;
    if (boot_owns(ptr)) return boot_size(ptr);
    amm_manager *m = shim_enter();
    if (!m) return 0;
    size_t n = amm_size(m, ptr); /* 0, reported, for a pointer amm did not hand out */
    shim_leave();
    return n;
}

/* ------------------------------------------------------------------------ */
/* Exit: one last check, and the statistics line on request                 */
/* ------------------------------------------------------------------------ */

/* One line: "amm-preload: PROG[PID]: N allocations, ..." to stderr or appended to a file. */
static void print_stats(amm_manager *m, const char *dest) {
    amm_stats st;
    amm_get_stats(m, &st);
    char line[512];
    int n = snprintf(line, sizeof line,
                     "amm-preload: %s[%ld]: %zu allocations, %zu frees, %zu faults, peak %zu bytes live, "
                     "%zu blocks (%zu bytes) live at exit, %zu bytes reserved, %zu bootstrap bytes\n",
                     program_invocation_short_name, (long)getpid(), st.total_allocs, st.total_frees, st.faults,
                     st.peak_live_bytes, st.live_blocks, st.live_bytes, st.reserved_bytes, atomic_load(&boot_used));
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (dest[0] != '/') {
        write_all(2, line, len);
        return;
    }
    int fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    write_all(fd, line, len); /* one write: lines of concurrent processes do not mix */
    close(fd);
}

__attribute__((destructor)) static void shim_at_exit(void) {
    if (atomic_load_explicit(&shim_state, memory_order_acquire) != SHIM_READY || shim_depth) return;
    shim_depth++; /* whatever the check's reports allocate comes from the arena */
    amm_check(shim_m);
    if (shim_stats[0]) print_stats(shim_m, shim_stats);
    shim_depth--;
}
