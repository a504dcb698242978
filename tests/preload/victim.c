/*
 * victim.c - a plain C program with one memory bug per mode, built without
 * amm: under LD_PRELOAD=libamm-preload.so each bug must be reported in one
 * line, and (with the default on_error=report) the program must run on and
 * print "victim: <mode> done".
 *
 *   victim overflow | underflow | double-free | interior | use-after-free |
 *          stack | realloc-overflow | clean | api
 *
 * "api" checks the malloc family's contract (calloc overflow, realloc(p, 0),
 * posix_memalign errors, alignments, malloc_usable_size) with no fault at all.
 * Pointers pass through launder() so the compiler can neither see the bug
 * (gcc warns about some at compile time) nor drop the allocation.
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

static char *block(size_t n) {
    char *p = launder(malloc(n));
    if (!p) {
        fprintf(stderr, "victim: malloc(%zu) failed\n", n);
        exit(2);
    }
    memset(p, 'x', n);
    return p;
}

static void overflow(void) {
    char *p = block(24);
    poke(p, 24);
    free(p);
}

static void underflow(void) {
    char *p = block(100);
    poke(p, -1);
    free(p);
}

static void double_free(void) {
    char *p = block(24);
    char *again = launder(p); /* laundered before the free: gcc cannot tell it is p */
    free(p);
    free(again);
}

static void interior(void) {
    char *p = block(100);
    free(launder(p + 8));
}

static void use_after_free(void) {
    char *p = block(20);
    char *q = launder(p);
    free(p);
    poke(q, 3); /* still in quarantine at exit: found by the exit check */
}

static void stack(void) {
    char local[32];
    memset(local, 0, sizeof local);
    free(launder(local));
}

static void realloc_overflow(void) {
    char *p = block(16);
    poke(p, 17);
    p = realloc(launder(p), 64); /* the damage is found before the move */
    free(p);
}

static void clean(void) {
    char *keep[64];
    for (int i = 0; i < 64; i++) keep[i] = block((size_t)(i * 37 % 500) + 1);
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
        {"overflow", overflow},   {"underflow", underflow}, {"double-free", double_free},
        {"interior", interior},   {"use-after-free", use_after_free}, {"stack", stack},
        {"realloc-overflow", realloc_overflow}, {"clean", clean}, {"api", api},
    };
    for (size_t i = 0; argc == 2 && i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            modes[i].run();
            printf("victim: %s %s\n", argv[1], failures ? "FAILED" : "done");
            return failures ? 1 : 0;
        }
    }
    fprintf(stderr, "usage: victim overflow|underflow|double-free|interior|use-after-free|stack|"
                    "realloc-overflow|clean|api\n");
    return 2;
}
