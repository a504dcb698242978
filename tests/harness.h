/*
 * harness.h - amm's tiny single-header test harness.
 *
 * Include it first (before any system header) from exactly one translation
 * unit per test executable (it defines main unless HARNESS_NO_MAIN is
 * defined first).
 *
 *   TEST(name) { ... }        a test function, registered before main runs
 *   EXPECT_EQ(a, b)           compare two scalars (integers of any type,
 *   EXPECT_NE/LT/LE/GT/GE     doubles, pointers); on failure print
 *                             file:line, both expressions and their values,
 *                             and keep going
 *   ASSERT_EQ/... (same)      the same, then leave the current test
 *                             (longjmp; main thread only)
 *   EXPECT_TRUE(c), ASSERT_TRUE(c), EXPECT_STREQ(a, b), ASSERT_STREQ(a, b),
 *   EXPECT_NULL(p), ASSERT_NOT_NULL(p)
 *   EXPECT_HEAP(m, "[U48 F*]")  render m's heap through amm_walk and
 *                             compare it with a picture (see h_picture)
 *   EXPECT_HEALTHY(m)         amm_check(m) == 0 and amm_check_fast(m) == 1
 *   EXPECT_CONTAINS(s, sub)   the string holds the substring
 *   EXPECT_FAULTS(&f, n)      exactly n reports were recorded (printed if not)
 *   SKIP("why")               leave the test, reported as skipped (not failed)
 *
 * Helpers:
 *   h_new_manager(opts, &f)   a manager from the defaults + "key=value,..."
 *                             (not the environment), reporting into f
 *   h_faults / h_fault_recorder   a handler keeping every report's copy
 *   h_picture(m, buf, len)    the text picture EXPECT_HEAP compares
 *   h_block_info(m, p, &info) the walker's record of a block
 *   h_rng, h_rand, h_rand_range   seedable random numbers (splitmix64)
 *   h_fill / h_verify         a pattern keyed by a number, and its check
 *   h_unpoison(p, n)          let a deliberate out-of-bounds access through
 *                             ASan (and Valgrind)
 *   h_capture_begin[_fd] / h_capture_end   collect what stderr/stdout printed
 *
 * Seeds: h_seed() is AMM_TEST_SEED from the environment or `--seed N` from
 * the command line, else one derived from the clock and pid.  It is printed
 * when the run starts and again beside every failed test.
 *
 * Command line: prog [--seed N] [--list] [test-name...]; with no names every
 * test runs in definition order.  Exit status: 0 all passed, 1 a test failed,
 * 2 usage error (e.g. an unknown test name).
 *
 * EXPECT_* may be used from any thread; ASSERT_* only from the thread that
 * runs the test.
 */
#ifndef AMM_TESTS_HARNESS_H
#define AMM_TESTS_HARNESS_H

/* The tree builds with -std=c11 (no extensions): ask for POSIX/GNU
 * declarations (dup, fork, flockfile).  Include harness.h first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <amm/amm.h>

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define H_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------------ */
/* Registry and state                                                       */
/* ------------------------------------------------------------------------ */

#define H_MAX_TESTS 256

typedef void (*h_test_fn)(void);

typedef struct h_state {
    const char *names[H_MAX_TESTS];
    h_test_fn fns[H_MAX_TESTS];
    size_t count;
    uint64_t seed;
    const char *current;      /* name of the running test */
    atomic_int failures;      /* failed checks in the running test */
    const char *skip_reason;  /* set by SKIP() */
    jmp_buf *bail;            /* where ASSERT_* jumps to */
} h_state;

static h_state h_st H_UNUSED;

static inline void h_register(const char *name, h_test_fn fn)
{
    if (h_st.count >= H_MAX_TESTS) {
        fprintf(stderr, "harness: more than %d tests\n", H_MAX_TESTS);
        abort();
    }
    h_st.names[h_st.count] = name;
    h_st.fns[h_st.count] = fn;
    h_st.count++;
}

#define TEST(name)                                                                \
    static void h_test_##name(void);                                              \
    __attribute__((constructor)) static void h_register_##name(void)              \
    {                                                                             \
        h_register(#name, h_test_##name);                                         \
    }                                                                             \
    static void h_test_##name(void)

/* The seed of this run (see the file comment). */
static inline uint64_t h_seed(void) { return h_st.seed; }

/* ------------------------------------------------------------------------ */
/* Values and checks                                                        */
/* ------------------------------------------------------------------------ */

typedef enum h_kind { H_SIGNED, H_UNSIGNED, H_DOUBLE, H_POINTER } h_kind;

typedef struct h_val {
    h_kind kind;
    long long i;
    unsigned long long u;
    double d;
    const void *p;
} h_val;

static inline h_val h_vi(long long v) { h_val r = {H_SIGNED, v, 0, 0, NULL}; return r; }
static inline h_val h_vu(unsigned long long v) { h_val r = {H_UNSIGNED, 0, v, 0, NULL}; return r; }
static inline h_val h_vd(double v) { h_val r = {H_DOUBLE, 0, 0, v, NULL}; return r; }
static inline h_val h_vp(const void *v) { h_val r = {H_POINTER, 0, 0, 0, v}; return r; }

/* Captures any scalar once, keeping its signedness. */
#define H_VAL(x)                                                                  \
    _Generic((x),                                                                 \
        _Bool: h_vu, char: h_vi, signed char: h_vi, unsigned char: h_vu,         \
        short: h_vi, unsigned short: h_vu, int: h_vi, unsigned int: h_vu,        \
        long: h_vi, unsigned long: h_vu, long long: h_vi,                        \
        unsigned long long: h_vu, float: h_vd, double: h_vd,                     \
        long double: h_vd, default: h_vp)(x)

/* Three-way comparison that is exact across signedness. */
static inline int h_cmp(h_val a, h_val b)
{
    if (a.kind == H_POINTER || b.kind == H_POINTER) {
        uintptr_t x = a.kind == H_POINTER ? (uintptr_t)a.p : (uintptr_t)a.u;
        uintptr_t y = b.kind == H_POINTER ? (uintptr_t)b.p : (uintptr_t)b.u;
        return (x > y) - (x < y);
    }
    if (a.kind == H_DOUBLE || b.kind == H_DOUBLE) {
        double x = a.kind == H_DOUBLE ? a.d : a.kind == H_SIGNED ? (double)a.i : (double)a.u;
        double y = b.kind == H_DOUBLE ? b.d : b.kind == H_SIGNED ? (double)b.i : (double)b.u;
        return (x > y) - (x < y);
    }
    if (a.kind == H_SIGNED && a.i < 0)
        return (b.kind == H_SIGNED && b.i < a.i) ? 1 : (b.kind == H_SIGNED && b.i == a.i) ? 0 : -1;
    if (b.kind == H_SIGNED && b.i < 0)
        return 1;
    {
        unsigned long long x = a.kind == H_SIGNED ? (unsigned long long)a.i : a.u;
        unsigned long long y = b.kind == H_SIGNED ? (unsigned long long)b.i : b.u;
        return (x > y) - (x < y);
    }
}

static inline void h_val_print(FILE *out, h_val v)
{
    switch (v.kind) {
    case H_SIGNED: fprintf(out, "%lld", v.i); break;
    case H_UNSIGNED: fprintf(out, "%llu (0x%llx)", v.u, v.u); break;
    case H_DOUBLE: fprintf(out, "%.17g", v.d); break;
    case H_POINTER: fprintf(out, "%p", v.p); break;
    }
}

/* Leaves the running test (ASSERT_*). */
static inline void h_bail(void)
{
    if (h_st.bail)
        longjmp(*h_st.bail, 1);
    abort();
}

/* Records a failure and prints "file:line: message". */
static inline void h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void h_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    atomic_fetch_add(&h_st.failures, 1);
    flockfile(stdout);
    printf("%s:%d: [%s] ", file, line, h_st.current ? h_st.current : "?");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    funlockfile(stdout);
    fflush(stdout);
}

static inline int h_check_cmp(const char *file, int line, const char *what, const char *ea,
                              const char *eb, h_val a, h_val b, int ok)
{
    if (ok)
        return 1;
    atomic_fetch_add(&h_st.failures, 1);
    flockfile(stdout);
    printf("%s:%d: [%s] %s(%s, %s) failed\n    %s = ", file, line,
           h_st.current ? h_st.current : "?", what, ea, eb, ea);
    h_val_print(stdout, a);
    printf("\n    %s = ", eb);
    h_val_print(stdout, b);
    printf("\n");
    funlockfile(stdout);
    fflush(stdout);
    return 0;
}

#define H_CMP_(what, a, b, rel, fatal)                                            \
    do {                                                                          \
        h_val h_a_ = H_VAL(a), h_b_ = H_VAL(b);                                   \
        int h_c_ = h_cmp(h_a_, h_b_);                                             \
        if (!h_check_cmp(__FILE__, __LINE__, what, #a, #b, h_a_, h_b_, h_c_ rel 0) && (fatal)) \
            h_bail();                                                             \
    } while (0)

#define EXPECT_EQ(a, b) H_CMP_("EXPECT_EQ", a, b, ==, 0)
#define EXPECT_NE(a, b) H_CMP_("EXPECT_NE", a, b, !=, 0)
#define EXPECT_LT(a, b) H_CMP_("EXPECT_LT", a, b, <, 0)
#define EXPECT_LE(a, b) H_CMP_("EXPECT_LE", a, b, <=, 0)
#define EXPECT_GT(a, b) H_CMP_("EXPECT_GT", a, b, >, 0)
#define EXPECT_GE(a, b) H_CMP_("EXPECT_GE", a, b, >=, 0)
#define ASSERT_EQ(a, b) H_CMP_("ASSERT_EQ", a, b, ==, 1)
#define ASSERT_NE(a, b) H_CMP_("ASSERT_NE", a, b, !=, 1)
#define ASSERT_LT(a, b) H_CMP_("ASSERT_LT", a, b, <, 1)
#define ASSERT_LE(a, b) H_CMP_("ASSERT_LE", a, b, <=, 1)
#define ASSERT_GT(a, b) H_CMP_("ASSERT_GT", a, b, >, 1)
#define ASSERT_GE(a, b) H_CMP_("ASSERT_GE", a, b, >=, 1)

#define H_TRUE_(what, c, fatal)                                                   \
    do {                                                                          \
        if (!(c)) {                                                               \
            h_fail(__FILE__, __LINE__, "%s(%s) failed", what, #c);                \
            if (fatal)                                                            \
                h_bail();                                                         \
        }                                                                         \
    } while (0)

#define EXPECT_TRUE(c) H_TRUE_("EXPECT_TRUE", c, 0)
#define ASSERT_TRUE(c) H_TRUE_("ASSERT_TRUE", c, 1)
#define EXPECT_NULL(p) EXPECT_EQ((const void *)(p), NULL)
#define ASSERT_NULL(p) ASSERT_EQ((const void *)(p), NULL)
#define EXPECT_NOT_NULL(p) EXPECT_NE((const void *)(p), NULL)
#define ASSERT_NOT_NULL(p) ASSERT_NE((const void *)(p), NULL)

static inline int h_check_str(const char *file, int line, const char *what, const char *ea,
                              const char *eb, const char *a, const char *b)
{
    if ((a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0))
        return 1;
    h_fail(file, line, "%s(%s, %s) failed\n    %s = \"%s\"\n    %s = \"%s\"", what, ea, eb, ea,
           a ? a : "(null)", eb, b ? b : "(null)");
    return 0;
}

#define EXPECT_STREQ(a, b) ((void)h_check_str(__FILE__, __LINE__, "EXPECT_STREQ", #a, #b, (a), (b)))
#define ASSERT_STREQ(a, b)                                                        \
    do {                                                                          \
        if (!h_check_str(__FILE__, __LINE__, "ASSERT_STREQ", #a, #b, (a), (b)))   \
            h_bail();                                                             \
    } while (0)

/* SKIP("why"): the running test cannot run here; leave it, reported as skipped. */
#define SKIP(why)                                                                 \
    do {                                                                          \
        h_st.skip_reason = (why);                                                 \
        h_bail();                                                                 \
    } while (0)

/* EXPECT_CONTAINS(haystack, needle): the string holds the substring. */
#define EXPECT_CONTAINS(hay, needle)                                              \
    do {                                                                          \
        const char *h_h_ = (hay), *h_n_ = (needle);                               \
        if (!h_h_ || !strstr(h_h_, h_n_))                                         \
            h_fail(__FILE__, __LINE__, "EXPECT_CONTAINS(%s, %s) failed\n    %s = \"%s\"\n    missing \"%s\"", \
                   #hay, #needle, #hay, h_h_ ? h_h_ : "(null)", h_n_);            \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Random numbers (splitmix64: small, seedable, good enough for tests)      */
/* ------------------------------------------------------------------------ */

typedef struct h_rng {
    uint64_t s;
} h_rng;

static inline h_rng h_rng_make(uint64_t seed)
{
    h_rng r = {seed};
    return r;
}

static inline uint64_t h_rand(h_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (inclusive). */
static inline uint64_t h_rand_range(h_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + (hi > lo ? h_rand(r) % (hi - lo + 1) : 0);
}

/* ------------------------------------------------------------------------ */
/* Memory patterns                                                          */
/* ------------------------------------------------------------------------ */

/* The byte a block keyed `key` holds at offset i: a byte of the key's hash,
 * mixed with the 8-byte word index, so shifted or swapped content shows. */
static inline uint64_t h_pattern_hash(uint64_t key) { return (key + 1) * 0x9E3779B97F4A7C15ull; }

static inline unsigned char h_pattern_at(uint64_t hash, size_t i)
{
    return (unsigned char)((hash >> ((i & 7) * 8)) ^ (i >> 3) ^ (i >> 11));
}

static inline unsigned char h_pattern_byte(uint64_t key, size_t i)
{
    return h_pattern_at(h_pattern_hash(key), i);
}

static inline void h_fill(void *p, size_t n, uint64_t key)
{
    unsigned char *b = (unsigned char *)p;
    uint64_t hash = h_pattern_hash(key);
    /* the expression of h_pattern_at, written out: unoptimised builds stay quick */
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((hash >> ((i & 7) * 8)) ^ (i >> 3) ^ (i >> 11));
}

/* Returns the first offset that does not hold the pattern, or -1. */
static inline long long h_verify(const void *p, size_t n, uint64_t key)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t hash = h_pattern_hash(key);
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)((hash >> ((i & 7) * 8)) ^ (i >> 3) ^ (i >> 11)))
            return (long long)i;
    return -1;
}

/*
 * Tests that touch bytes outside a block on purpose (canaries, quarantined
 * memory) call h_unpoison first, so AddressSanitizer or Valgrind - which see
 * those bytes as poisoned when the library marks them - let the access
 * through and the library's own detection is what gets tested.
 */
#if defined(__SANITIZE_ADDRESS__)
#define H_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H_ASAN 1
#endif
#endif
#ifdef H_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif
/* Under Valgrind (when its header exists) the same bytes are made addressable. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define H_VALGRIND 1
#endif
#endif
static inline void h_unpoison(const void *p, size_t n)
{
#ifdef H_ASAN
    __asan_unpoison_memory_region(p, n);
#endif
#ifdef H_VALGRIND
    (void)VALGRIND_MAKE_MEM_DEFINED(p, n);
#endif
    (void)p;
    (void)n;
}

static inline int h_is_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

/* ------------------------------------------------------------------------ */
/* Fault recording                                                          */
/* ------------------------------------------------------------------------ */

#define H_FAULT_KEEP 64

/* Reports a manager made, recorded by h_fault_recorder (install it with
 * h_new_manager or amm_set_error_handler(m, h_fault_recorder, &faults)). */
typedef struct h_faults {
    size_t count;                    /* all reports */
    size_t kinds[AMM_ERR_COUNT];     /* reports per kind */
    amm_report list[H_FAULT_KEEP];   /* the first H_FAULT_KEEP reports */
    amm_report last;
} h_faults;

static inline void h_fault_recorder(const amm_report *r, void *user)
{
    h_faults *f = (h_faults *)user;
    if (f->count < H_FAULT_KEEP)
        f->list[f->count] = *r;
    f->last = *r;
    if ((unsigned)r->kind < AMM_ERR_COUNT)
        f->kinds[r->kind]++;
    f->count++;
}

static inline void h_faults_clear(h_faults *f) { memset(f, 0, sizeof *f); }

/* Prints every kept report (for failure output). */
static inline void h_faults_print(const h_faults *f)
{
    char line[512];
    for (size_t i = 0; i < f->count && i < H_FAULT_KEEP; i++) {
        amm_report_format(&f->list[i], line, sizeof line);
        printf("    report %zu: %s\n", i, line);
    }
}

/* EXPECT_FAULTS(f, n): exactly n reports were recorded; prints them if not. */
#define EXPECT_FAULTS(f, n)                                                       \
    do {                                                                          \
        size_t h_n_ = (size_t)(n);                                                \
        if ((f)->count != h_n_) {                                                 \
            h_fail(__FILE__, __LINE__, "EXPECT_FAULTS(%s, %s) failed: %zu reports, wanted %zu", \
                   #f, #n, (f)->count, h_n_);                                     \
            h_faults_print(f);                                                    \
        }                                                                         \
    } while (0)

/*
 * A manager built from the defaults plus `options` (not the environment),
 * reporting to `faults` (cleared first) if it is not NULL.  Fails the test
 * (ASSERT) if the options do not parse or the manager cannot be made.
 */
#define h_new_manager(options, faults) h_new_manager_at(__FILE__, __LINE__, (options), (faults))
static inline amm_manager *h_new_manager_at(const char *file, int line, const char *options, h_faults *faults)
{
    amm_config cfg;
    char err[256] = "";
    amm_manager *m;
    amm_config_defaults(&cfg);
    if (amm_config_parse(&cfg, options, err, sizeof err) != 0) {
        h_fail(file, line, "options \"%s\" refused: %s", options ? options : "", err);
        h_bail();
    }
    if (faults) {
        h_faults_clear(faults);
        cfg.on_fault = h_fault_recorder;
        cfg.on_fault_user = faults;
    }
    m = amm_create(&cfg);
    if (!m) {
        h_fail(file, line, "amm_create failed (options \"%s\")", options ? options : "");
        h_bail();
    }
    return m;
}

/* EXPECT_HEALTHY(m): the full check finds no problem and the O(1) check holds. */
#define EXPECT_HEALTHY(m)                                                         \
    do {                                                                          \
        amm_manager *h_m_ = (m);                                                  \
        EXPECT_EQ(amm_check(h_m_), 0);                                            \
        EXPECT_EQ(amm_check_fast(h_m_), 1);                                       \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Heap pictures                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A text picture of a manager's blocks, built only from amm_walk:
 *   heap region   [U48 F16 Q32]  one token per chunk: U live, F free,
 *                                Q quarantined, then its raw size in bytes
 *   pool          P[u.q.]        one character per slot: u live, . free,
 *                                q quarantined
 *   large block   L[U266240]     the same letters, raw size of the mapping
 * Groups (one per region, pool or mapping, in walk order) are separated by
 * one space.  Returns the length written (truncated to len - 1).
 */
typedef struct h_picture_state {
    char *buf;
    size_t len, used;
    size_t region;
    int origin;
    int open;
} h_picture_state;

static inline void h_pic_put(h_picture_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void h_pic_put(h_picture_state *s, const char *fmt, ...)
{
    va_list ap;
    int n;
    int fits = s->used < s->len;
    va_start(ap, fmt);
    n = vsnprintf(fits ? s->buf + s->used : NULL, fits ? s->len - s->used : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->used += (size_t)n;
}

static inline int h_pic_visit(const amm_block_info *b, void *user)
{
    h_picture_state *s = (h_picture_state *)user;
    static const char big[] = {'U', 'F', 'Q'};
    static const char small[] = {'u', '.', 'q'};
    unsigned st = (unsigned)b->state <= 2 ? (unsigned)b->state : 0;
    int first = !s->open || s->region != b->region_index || s->origin != (int)b->origin;
    if (first) {
        if (s->open)
            h_pic_put(s, "] ");
        h_pic_put(s, "%s[", b->origin == AMM_ORIGIN_POOL ? "P" : b->origin == AMM_ORIGIN_LARGE ? "L" : "");
        s->open = 1;
        s->region = b->region_index;
        s->origin = (int)b->origin;
    }
    if (b->origin == AMM_ORIGIN_POOL)
        h_pic_put(s, "%c", small[st]);
    else
        h_pic_put(s, "%s%c%zu", first ? "" : " ", big[st], b->raw_size);
    return 0;
}

static inline size_t h_picture(amm_manager *m, char *buf, size_t len)
{
    h_picture_state s = {buf, len, 0, 0, 0, 0};
    if (len)
        buf[0] = '\0';
    amm_walk(m, h_pic_visit, &s);
    if (s.open)
        h_pic_put(&s, "]");
    return s.used;
}

/*
 * Matches a picture against an expected one in which '*' stands for any run
 * of digits (e.g. the free tail of a region: "[U48 F*]").
 */
static inline int h_picture_match(const char *want, const char *got)
{
    while (*want) {
        if (*want == '*') {
            if (*got < '0' || *got > '9')
                return 0;
            while (*got >= '0' && *got <= '9')
                got++;
            want++;
        } else if (*want++ != *got++) {
            return 0;
        }
    }
    return *got == '\0';
}

#define H_PICTURE_MAX 8192

#define EXPECT_HEAP(m, want)                                                      \
    do {                                                                          \
        char h_pic_[H_PICTURE_MAX];                                               \
        const char *h_want_ = (want);                                             \
        h_picture((m), h_pic_, sizeof h_pic_);                                    \
        if (!h_picture_match(h_want_, h_pic_))                                    \
            h_fail(__FILE__, __LINE__, "EXPECT_HEAP(%s) failed\n    want %s\n    got  %s", #m, h_want_, h_pic_); \
    } while (0)

/* Finds the walker's view of the live or quarantined block whose user pointer
 * is ptr.  Returns 1 and fills *out if found, else 0. */
typedef struct h_find_state {
    const void *ptr;
    amm_block_info *out;
    int found;
} h_find_state;

static inline int h_find_visit(const amm_block_info *b, void *user)
{
    h_find_state *s = (h_find_state *)user;
    if (b->state != AMM_BLOCK_FREE && b->user == s->ptr) {
        *s->out = *b;
        s->found = 1;
        return 1;
    }
    return 0;
}

static inline int h_block_info(amm_manager *m, const void *ptr, amm_block_info *out)
{
    h_find_state s = {ptr, out, 0};
    amm_walk(m, h_find_visit, &s);
    return s.found;
}

/* ------------------------------------------------------------------------ */
/* Capturing stderr or stdout (to check printed lines)                      */
/* ------------------------------------------------------------------------ */

/* Reads what was written to the temporary file f back into buf (NUL-terminated,
 * cut to len - 1 bytes) and closes f.  Returns the bytes read. */
static inline size_t h_read_back(FILE *f, char *buf, size_t len)
{
    size_t n;
    rewind(f);
    n = len ? fread(buf, 1, len - 1, f) : 0;
    if (len)
        buf[n] = '\0';
    fclose(f);
    return n;
}

typedef struct h_capture {
    FILE *tmp;
    int saved;
    int fd;
} h_capture;

/* Sends file descriptor fd (e.g. STDOUT_FILENO) to a temporary file until
 * h_capture_end.  Returns 0 or -1. */
static inline int h_capture_begin_fd(h_capture *c, int fd)
{
    fflush(stdout);
    fflush(stderr);
    c->fd = fd;
    c->tmp = tmpfile();
    if (!c->tmp)
        return -1;
    c->saved = dup(fd);
    if (c->saved < 0 || dup2(fileno(c->tmp), fd) < 0) {
        fclose(c->tmp);
        return -1;
    }
    return 0;
}

/* Sends stderr to a temporary file until h_capture_end.  Returns 0 or -1. */
static inline int h_capture_begin(h_capture *c) { return h_capture_begin_fd(c, STDERR_FILENO); }

/* Restores the descriptor and copies what was written (NUL-terminated) into buf. */
static inline size_t h_capture_end(h_capture *c, char *buf, size_t len)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved, c->fd);
    close(c->saved);
    return h_read_back(c->tmp, buf, len);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

#ifndef HARNESS_NO_MAIN

static inline int h_parse_seed(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !*s)
        return -1;
    v = strtoull(s, &end, 0);
    if (*end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Runs test i; returns 1 if it failed, 0 if it passed, -1 if it was skipped. */
static inline int h_run_one(size_t i)
{
    jmp_buf bail;
    int failed;
    h_st.current = h_st.names[i];
    h_st.skip_reason = NULL;
    atomic_store(&h_st.failures, 0);
    h_st.bail = &bail;
    printf("[ RUN  ] %s\n", h_st.names[i]);
    fflush(stdout);
    if (setjmp(bail) == 0)
        h_st.fns[i]();
    h_st.bail = NULL;
    failed = atomic_load(&h_st.failures) != 0;
    if (failed)
        printf("[ FAIL ] %s (seed %" PRIu64 "; rerun: --seed %" PRIu64 " %s)\n", h_st.names[i],
               h_st.seed, h_st.seed, h_st.names[i]);
    else if (h_st.skip_reason)
        printf("[ SKIP ] %s: %s\n", h_st.names[i], h_st.skip_reason);
    else
        printf("[  OK  ] %s\n", h_st.names[i]);
    fflush(stdout);
    h_st.current = NULL;
    return failed ? 1 : h_st.skip_reason ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *env = getenv("AMM_TEST_SEED");
    unsigned char *chosen = calloc(h_st.count + 1, 1);
    size_t failed = 0, ran = 0, skipped = 0;
    int named = 0;

    if (!chosen)
        return 2;
    h_st.seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    if (env && h_parse_seed(env, &h_st.seed) != 0) {
        fprintf(stderr, "%s: AMM_TEST_SEED=\"%s\" is not a number\n", argv[0], env);
        free(chosen);
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--seed") == 0) {
            if (a + 1 >= argc || h_parse_seed(argv[a + 1], &h_st.seed) != 0) {
                fprintf(stderr, "%s: --seed needs a number\n", argv[0]);
                free(chosen);
                return 2;
            }
            a++;
        } else if (strcmp(argv[a], "--list") == 0) {
            for (size_t i = 0; i < h_st.count; i++)
                printf("%s\n", h_st.names[i]);
            free(chosen);
            return 0;
        } else {
            size_t i = 0;
            while (i < h_st.count && strcmp(h_st.names[i], argv[a]) != 0)
                i++;
            if (i == h_st.count) {
                fprintf(stderr, "%s: no test named \"%s\" (try --list)\n", argv[0], argv[a]);
                free(chosen);
                return 2;
            }
            chosen[i] = 1;
            named = 1;
        }
    }
    printf("seed %" PRIu64 " (set AMM_TEST_SEED or --seed to repeat)\n", h_st.seed);
    for (size_t i = 0; i < h_st.count; i++) {
        if (named && !chosen[i])
            continue;
        int r = h_run_one(i);
        ran++;
        failed += r == 1;
        skipped += r == -1;
    }
    free(chosen);
    printf("%zu of %zu tests passed, %zu skipped (seed %" PRIu64 ")\n", ran - failed - skipped, ran, skipped,
           h_st.seed);
    return failed ? 1 : (ran ? 0 : 2);
}

#endif /* HARNESS_NO_MAIN */
#endif /* AMM_TESTS_HARNESS_H */
