/*
 * victim.c - a plain C program with one memory bug per mode, built without
 * amm: under LD_PRELOAD=libamm-preload.so each bug must be reported in one
 * line, and (with the default on_error=report) the program must run on and
 * print "victim: <mode> done".
 *
 *   victim overflow | underflow | double-free | interior | use-after-free |
 *          stack | realloc-overflow | strdup-overflow | clean | api
 *
 * "api" checks the malloc family's contract (calloc overflow, realloc(p, 0),
 * posix_memalign errors, alignments, malloc_usable_size) with no fault at all.
 * Pointers pass through launder() so the compiler can neither see the bug
 * (gcc warns about some at compile time) nor drop the allocation.
 *
 * Sites: every faulty block comes from victim_block and every faulty call is
 * made from a victim_<mode> function, all external and noinline, and the
 * program is linked with -rdynamic: dladdr names them, so the shim's reports
 * read "allocated at preload_victim!victim_block+0x.. (detected in free at
 * preload_victim!victim_overflow+0x..)".  "strdup-overflow" overflows a block
 * that glibc's strdup allocated: its site is in libc.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* malloc_usable_size, memalign, valloc, pvalloc, reallocarray */
#endif
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile laundry;

static void *launder(void *p) {
    laundry = p;
    return laundry;
}

/* A bug's write: volatile, so the compiler cannot drop it as a dead store before free. */
static void poke(char *p, long offset) { ((volatile char *)p)[offset] = '!'; }

/* The external functions: their names are what the site tests expect. */
#define VICTIM_FN __attribute__((noinline))
VICTIM_FN char *victim_block(size_t n);
VICTIM_FN void victim_overflow(void);
VICTIM_FN void victim_underflow(void);
VICTIM_FN void victim_double_free(void);
VICTIM_FN void victim_interior(void);
VICTIM_FN void victim_use_after_free(void);
VICTIM_FN void victim_stack(void);
VICTIM_FN void victim_realloc_overflow(void);
VICTIM_FN void victim_strdup_overflow(void);
VICTIM_FN void victim_leak(void);

char *victim_block(size_t n) {
    char *p = launder(malloc(n));
    if (!p) {
        fprintf(stderr, "victim: malloc(%zu) failed\n", n);
        exit(2);
    }
    memset(p, 'x', n);
    return p;
}

void victim_overflow(void) {
    char *p = victim_block(24);
    poke(p, 24);
    free(p);
}

void victim_underflow(void) {
    char *p = victim_block(100);
    poke(p, -1);
    free(p);
}

void victim_double_free(void) {
    char *p = victim_block(24);
    char *again = launder(p); /* laundered before the free: gcc cannot tell it is p */
    free(p);
    free(again);
}

void victim_interior(void) {
    char *p = victim_block(100);
    free(launder(p + 8));
}

void victim_use_after_free(void) {
    char *p = victim_block(20);
    char *q = launder(p);
    free(p);
    poke(q, 3); /* still in quarantine at exit: found by the exit check */
}

void victim_stack(void) {
    char local[32];
    memset(local, 0, sizeof local);
    free(launder(local));
}

void victim_realloc_overflow(void) {
    char *p = victim_block(16);
    poke(p, 17);
    p = realloc(launder(p), 64); /* the damage is found before the move */
    free(p);
}

void victim_strdup_overflow(void) {
    char *s = launder(strdup("twelve bytes")); /* 13 with the NUL */
    poke(s, 13);
    free(s);
}

/* Not a fault: three blocks never freed (found by the leak report with leaks=on). */
void victim_leak(void) {
    for (int i = 0; i < 3; i++) launder(victim_block(77));
}

static void clean(void) {
    char *keep[64];
    for (int i = 0; i < 64; i++) keep[i] = victim_block((size_t)(i * 37 % 500) + 1);
    for (int i = 0; i < 64; i += 2) free(keep[i]);
    for (int i = 1; i < 64; i += 2) keep[i] = realloc(keep[i], 1000);
    for (int i = 1; i < 64; i += 2) free(keep[i]);
    char *s = strdup("a string through glibc's own malloc call");
    free(s);
}

static int failures;

static void expect(int ok, const char *what) {
    if (!ok) {
        printf("victim: api: FAILED: %s\n", what);
        failures++;
    }
}

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* volatile: the compilers warn about these as constants */
static volatile size_t huge = SIZE_MAX / 2, odd_align = 24;

static void api(void) {
    errno = 0;
    expect(calloc(huge, 3) == NULL && errno == ENOMEM, "calloc overflow: NULL, ENOMEM");
    errno = 0;
    expect(reallocarray(NULL, huge, 3) == NULL && errno == ENOMEM, "reallocarray overflow: NULL, ENOMEM");
    unsigned char *z = calloc(100, 10);
    int zero = z != NULL;
    for (size_t i = 0; z && i < 1000; i++) zero &= z[i] == 0;
    expect(zero, "calloc zeroes");
    free(z);

    char *p = malloc(10);
    expect(p && realloc(p, 0) == NULL, "realloc(p, 0) frees and returns NULL");
    p = realloc(NULL, 5);
    expect(p != NULL, "realloc(NULL, n) allocates");
    memcpy(p, "abcd", 5);
    p = realloc(p, 100000);
    expect(p && strcmp(p, "abcd") == 0, "realloc keeps the contents");
    free(p);
    free(NULL);

    void *m = NULL;
    expect(posix_memalign(&m, 24, 8) == EINVAL, "posix_memalign(24): EINVAL");
    expect(posix_memalign(&m, 4, 8) == EINVAL, "posix_memalign(4): EINVAL");
    expect(posix_memalign(&m, 4096, 100) == 0 && aligned(m, 4096), "posix_memalign(4096)");
    free(m);
    errno = 0;
    expect(aligned_alloc(odd_align, 48) == NULL && errno == EINVAL, "aligned_alloc(24): EINVAL");
    void *a = aligned_alloc(256, 512);
    expect(a && aligned(a, 256), "aligned_alloc(256)");
    free(a);
    a = memalign(64, 10);
    expect(a && aligned(a, 64), "memalign(64)");
    free(a);
    long page = sysconf(_SC_PAGESIZE);
    a = valloc(10);
    expect(a && aligned(a, (size_t)page), "valloc");
    free(a);
    a = pvalloc(10);
    expect(a && aligned(a, (size_t)page) && malloc_usable_size(a) == (size_t)page, "pvalloc: a whole page");
    free(a);

    char *u = malloc(13);
    size_t usable = malloc_usable_size(u);
    expect(usable == 13, "malloc_usable_size is the requested size");
    memset(u, 'u', usable); /* writing all of it is no overflow */
    free(u);
    expect(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is 0");
    void *zero_len = malloc(0);
    expect(zero_len != NULL, "malloc(0) is a unique block");
    free(zero_len);

    errno = 1234;
    free(malloc(8));
    expect(errno == 1234, "malloc and free keep errno");
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*run)(void);
    } modes[] = {
        {"overflow", victim_overflow},
        {"underflow", victim_underflow},
        {"double-free", victim_double_free},
        {"interior", victim_interior},
        {"use-after-free", victim_use_after_free},
        {"stack", victim_stack},
        {"realloc-overflow", victim_realloc_overflow},
        {"strdup-overflow", victim_strdup_overflow},
        {"leak", victim_leak},
        {"clean", clean},
        {"api", api},
    };
    for (size_t i = 0; argc == 2 && i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            modes[i].run();
            printf("victim: %s %s\n", argv[1], failures ? "FAILED" : "done");
            return failures ? 1 : 0;
        }
    }
    fprintf(stderr, "usage: victim overflow|underflow|double-free|interior|use-after-free|stack|"
                    "realloc-overflow|strdup-overflow|leak|clean|api\n");
    return 2;
}
