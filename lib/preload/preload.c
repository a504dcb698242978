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
 * fork: amm holds every manager's lock across fork, so the child never
 * inherits one taken by a thread that does not exist there; the shim's site
 * table lock is only ever trylocked, and started afresh in the child.
 *
 * Reports: amm's one-line format (amm_report_format), written to fd 2 with
 * write(2) rather than through stdio: no stdio lock is taken while the
 * manager's lock is held (another thread may hold stderr's lock and be
 * waiting in malloc), and a program that made stderr buffered, or fclose'd
 * it, cannot make a report allocate.  amm still counts and traces each fault
 * and aborts after it with on_error=abort.
 *
 * Sites: each block gets its caller's return address as its allocation
 * site, and each free/realloc its caller as the operation's site, named
 * "module!symbol+0xOFF" by dladdr (module+0xOFF without a symbol, 0xPC when
 * dladdr knows nothing) and passed to amm with line 0 (amm then prints the
 * name alone).  Names are interned once per PC in a fixed table read without
 * a lock; see "Allocation sites" below.  AMM_PRELOAD_SITES=0 turns it off.
 *
 * At exit (a destructor, after the program's own) the whole heap is checked
 * once (amm_check): a write to a block still in quarantine, or past the end
 * of a block never freed, is reported then; with AMM_OPTIONS=leaks=on, so are
 * the blocks still live, by allocation site.  AMM_PRELOAD_STATS=1 adds one
 * line of statistics per process on stderr; AMM_PRELOAD_STATS=/path appends
 * it to that file instead (for programs that close stderr before exit, as
 * coreutils do).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
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

#include "internal.h" /* amm__os_map, amm__align_up, the manager's config */

#define PRELOAD_API __attribute__((visibility("default")))
/* An override that names its caller: CALLER_PC() must be read in its own
 * frame, so it is never inlined into another function (the helpers it calls
 * may be inlined into it: the PC is taken before, and passed down). */
#define PRELOAD_SITED PRELOAD_API __attribute__((noinline))
#define CALLER_PC() ((uintptr_t)__builtin_return_address(0))

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
static int shim_sites;          /* 1 unless AMM_PRELOAD_SITES=0; written before shim_state becomes READY */

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

static pthread_mutex_t site_lock = PTHREAD_MUTEX_INITIALIZER; /* see "Allocation sites" */

/* fork: site_lock is never held across fork (a library's fork handler that
 * runs on the forking thread may call malloc from a new PC, so site_add).
 * site_add only ever trylocks it: a PC that meets it busy goes without a
 * site this once and is named at a later call.  The child, alone, starts the
 * lock afresh, in case another thread held it at the fork. */
static void site_lock_reset(void) { site_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER; }

__attribute__((constructor)) static void shim_fork_init(void) {
    if (pthread_atfork(NULL, NULL, site_lock_reset) != 0)
        shim_die("amm-preload: pthread_atfork failed; aborting\n");
}

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
    const char *sites = getenv("AMM_PRELOAD_SITES");
    shim_sites = !(sites && strcmp(sites, "0") == 0);
    shim_m = m;
    atomic_store_explicit(&shim_state, SHIM_READY, memory_order_release);
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
/* Allocation sites: the caller's PC, named once                            */
/* ------------------------------------------------------------------------ */

/*
 * site_of(pc) gives the name of the code at return address pc, e.g.
 * "victim!main+0x2a" or "libc.so.6!__strdup+0x1a" (module base name, symbol,
 * offset of pc from it), "victim+0x1189" (offset from the module's base: give
 * it to addr2line) when no dynamic symbol covers pc, "0x7f..." when dladdr
 * finds no module.  No '/' in it: amm's reports print what follows the last
 * '/' of a site.  The name is amm_site.file, line 0.
 *
 * Names are interned by PC in an open-addressing table (linear probing,
 * at most 3/4 full) whose slots are written once and never change:
 *
 *   site_pc[i]   0 (empty) or a PC; stored last, with release
 *   site_name[i] its name, in site_arena; valid once site_pc[i] is seen (acquire)
 *
 * A lookup is lock-free: usually one probe.  A miss names the PC with dladdr
 * and snprintf-free formatting into a stack buffer, with no lock held (not
 * amm's, not site_lock: dladdr takes the loader's lock, and a thread holding
 * that may be in malloc, waiting for one of ours), then inserts under
 * site_lock, taken with trylock (re-probing: another thread may have won).  The strings live in
 * one mmap'd bump arena that is never freed, so they outlive the manager as
 * amm_site.file must.  When the table or the arena is full, new PCs get no
 * site (and no more dladdr calls).  Callers hold the shim's depth count, so a
 * malloc from anything reached here (a signal handler) is served by the
 * bootstrap arena, and nothing here calls malloc.
 */
#define SITE_SLOTS 16384u                  /* table slots (a power of two) */
#define SITE_MAX (SITE_SLOTS / 4u * 3u)    /* most names kept: probe runs stay short */
#define SITE_ARENA_BYTES ((size_t)2 << 20) /* all names; pages are touched only as they fill */
#define SITE_NAME_MAX 256u                 /* longest name with its NUL; longer ones are cut */

_Static_assert((SITE_SLOTS & (SITE_SLOTS - 1)) == 0, "SITE_SLOTS is a power of two");

static _Atomic(uintptr_t) site_pc[SITE_SLOTS];
static _Atomic(const char *) site_name[SITE_SLOTS];
static atomic_bool site_full; /* table or arena spent: new PCs get no site */
static char *site_arena;      /* under site_lock, as are the next two */
static size_t site_arena_used, site_count;

static size_t site_hash(uintptr_t pc) { return (size_t)(((uint64_t)pc * 0x9E3779B97F4A7C15u) >> 50) & (SITE_SLOTS - 1); }
_Static_assert(SITE_SLOTS == (1u << (64 - 50)), "site_hash keeps log2(SITE_SLOTS) bits");

/* The interned name of pc, or NULL if it has none yet. Lock-free. */
static inline const char *site_find(uintptr_t pc) {
    for (size_t i = site_hash(pc);; i = (i + 1) & (SITE_SLOTS - 1)) {
        uintptr_t at = atomic_load_explicit(&site_pc[i], memory_order_acquire);
        if (at == pc) return atomic_load_explicit(&site_name[i], memory_order_relaxed);
        if (at == 0) return NULL; /* the table is never full: a run always ends */
    }
}

/* Appends s at *at (up to end), each '/' as '_'. */
static void site_put(char **at, char *end, const char *s) {
    for (; *s && *at < end; s++) *(*at)++ = *s == '/' ? '_' : *s;
}

/* Appends "0x" and v in lower-case hex. */
static void site_put_hex(char **at, char *end, uintptr_t v) {
    char digits[2 * sizeof v + 3], *d = digits + sizeof digits;
    *--d = '\0';
    do *--d = "0123456789abcdef"[v & 15u];
    while (v >>= 4);
    *--d = 'x';
    *--d = '0';
    site_put(at, end, d);
}

/* pc's name into buf (NUL-terminated, cut to len); returns its length. */
static size_t site_format(uintptr_t pc, char *buf, size_t len) {
    char *at = buf, *end = buf + len - 1;
    Dl_info info;
    /* pc - 1 is inside the call instruction: the caller's own code even when
     * the call is its last instruction (a call to a noreturn function). */
    if (!dladdr((void *)(pc - 1), &info)) {
        site_put_hex(&at, end, pc);
    } else {
        const char *mod = info.dli_fname && info.dli_fname[0] ? info.dli_fname : program_invocation_short_name;
        const char *slash = strrchr(mod, '/');
        site_put(&at, end, slash ? slash + 1 : mod);
        if (info.dli_sname && info.dli_saddr) {
            site_put(&at, end, "!");
            site_put(&at, end, info.dli_sname);
            site_put(&at, end, "+");
            site_put_hex(&at, end, pc - (uintptr_t)info.dli_saddr);
        } else {
            site_put(&at, end, "+");
            site_put_hex(&at, end, pc - (uintptr_t)info.dli_fbase);
        }
    }
    *at = '\0';
    return (size_t)(at - buf);
}

/* Stores name (size bytes with its NUL) for pc, a PC not in the table; NULL
 * (and no more names) when the table or the arena is spent. */
static const char *site_insert_locked(uintptr_t pc, const char *name, size_t size) {
    if (site_count >= SITE_MAX || (!site_arena && !(site_arena = amm__os_map(SITE_ARENA_BYTES))) ||
        size > SITE_ARENA_BYTES - site_arena_used) {
        atomic_store_explicit(&site_full, 1, memory_order_relaxed);
        return NULL;
    }
    char *s = memcpy(site_arena + site_arena_used, name, size);
    site_arena_used += size;
    size_t i = site_hash(pc);
    while (atomic_load_explicit(&site_pc[i], memory_order_relaxed) != 0) i = (i + 1) & (SITE_SLOTS - 1);
    atomic_store_explicit(&site_name[i], s, memory_order_relaxed);
    atomic_store_explicit(&site_pc[i], pc, memory_order_release); /* publishes the name and its bytes */
    site_count++;
    return s;
}

/* A PC seen for the first time: dladdr with no lock held, then insertion. */
static __attribute__((noinline, cold)) const char *site_add(uintptr_t pc) {
    char name[SITE_NAME_MAX];
    size_t len = site_format(pc, name, sizeof name);
    if (pthread_mutex_trylock(&site_lock) != 0) return NULL; /* see "fork" above */
    const char *s = site_find(pc);
    if (!s) s = site_insert_locked(pc, name, len + 1);
    pthread_mutex_unlock(&site_lock);
    return s;
}

/* The site name for return address pc, or NULL (sites off, or no room).
 * Call only between shim_enter and shim_leave, with no amm lock held. */
static inline const char *site_of(uintptr_t pc) {
    if (!shim_sites) return NULL;
    const char *s = site_find(pc);
    if (s || atomic_load_explicit(&site_full, memory_order_relaxed)) return s;
    return site_add(pc);
}

/* ------------------------------------------------------------------------ */
/* Helpers shared by the overrides                                          */
/* ------------------------------------------------------------------------ */

/* size bytes aligned to align (a power of two; below 16 means 16), errno
 * ENOMEM on failure and untouched on success; pc is the caller, the block's
 * site. */
static void *shim_alloc(size_t size, size_t align, unsigned flags, uintptr_t pc) {
    if (size > SHIM_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (align <= AMM_DEFAULT_ALIGN) align = 0;
    int saved = errno;
    amm_manager *m = shim_enter();
    void *p;
    if (m) {
        p = amm_alloc_at(m, size, align, flags, site_of(pc), 0);
        shim_leave();
    } else {
        p = boot_alloc(size, align);
    }
    errno = p ? saved : ENOMEM;
    return p;
}

static void shim_free(void *p, uintptr_t pc) {
    if (!p || boot_owns(p)) return;
    int saved = errno; /* free never changes errno (POSIX 2024, glibc >= 2.33) */
    amm_manager *m = shim_enter();
    if (m) {
        amm_free_at(m, p, site_of(pc), 0);
        shim_leave();
    }
    /* else: a re-entrant free of an amm block from inside amm; it is left allocated */
    errno = saved;
}

static void *shim_realloc(void *p, size_t size, uintptr_t pc) {
    if (!p) return shim_alloc(size, 0, 0, pc);
    if (size == 0) { /* as glibc: free, return NULL */
        shim_free(p, pc);
        return NULL;
    }
    if (boot_owns(p)) { /* an arena block moves to amm (or to the arena again) */
        void *q = shim_alloc(size, 0, 0, pc);
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
    if (m) { /* alignment 0: the block keeps its own; a moved block's site becomes pc */
        q = amm_realloc_at(m, p, size, 0, site_of(pc), 0);
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

PRELOAD_SITED void *malloc(size_t size) { return shim_alloc(size, 0, 0, CALLER_PC()); }

PRELOAD_SITED void free(void *ptr) { shim_free(ptr, CALLER_PC()); }

PRELOAD_SITED void cfree(void *ptr) { shim_free(ptr, CALLER_PC()); }

PRELOAD_SITED void *calloc(size_t nmemb, size_t size) {
    return shim_alloc(mul_or_max(nmemb, size), 0, AMM_ALLOC_ZERO, CALLER_PC());
}

PRELOAD_SITED void *realloc(void *ptr, size_t size) { return shim_realloc(ptr, size, CALLER_PC()); }

PRELOAD_SITED void *reallocarray(void *ptr, size_t nmemb, size_t size) {
    size_t n = mul_or_max(nmemb, size);
    if (n == SIZE_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return shim_realloc(ptr, n, CALLER_PC());
}

/* EINVAL (no report) unless alignment is a power of two multiple of
 * sizeof(void *); above AMM_MAX_ALIGN amm reports bad-alignment: ENOMEM. */
PRELOAD_SITED int posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!amm__is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved = errno; /* posix_memalign returns its error, errno stays */
    void *p = shim_alloc(size, alignment, 0, CALLER_PC());
    int rc = errno;
    errno = saved;
    if (!p) return rc;
    *memptr = p;
    return 0;
}

/* C17 (DR 460): an alignment that is not a power of two fails (EINVAL). */
PRELOAD_SITED void *aligned_alloc(size_t alignment, size_t size) {
    if (!amm__is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return shim_alloc(size, alignment, 0, CALLER_PC());
}

/* As glibc: an alignment that is not a power of two is rounded up to one. */
PRELOAD_SITED void *memalign(size_t alignment, size_t size) {
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < alignment) a <<= 1;
    return shim_alloc(size, a, 0, CALLER_PC());
}

PRELOAD_SITED void *valloc(size_t size) { return shim_alloc(size, amm__page_size(), 0, CALLER_PC()); }

/* size rounded up to whole pages (0 -> one page), page aligned. */
PRELOAD_SITED void *pvalloc(size_t size) {
    size_t page = amm__page_size();
    if (size > SHIM_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t n = size ? amm__align_up(size, page) : page;
    return shim_alloc(n, page, 0, CALLER_PC());
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
    if (shim_m->cfg.leaks) { /* AMM_OPTIONS=leaks=on; to fd 2, as the reports: stderr may be fclose'd by now */
        int fd = dup(2);
        FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL; /* its buffer comes from the bootstrap arena */
        if (out) {
            amm_leak_report(shim_m, out, 20);
            fclose(out);
        } else if (fd >= 0) {
            close(fd);
        }
    }
    if (shim_stats[0]) print_stats(shim_m, shim_stats);
    shim_depth--;
}
