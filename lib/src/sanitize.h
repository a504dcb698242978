/*
 * sanitize.h - telling AddressSanitizer and Valgrind what amm's memory is,
 * so both see pool and heap blocks as they see malloc's.
 *
 * Under ASan the shadow of amm memory is written with ASan's own heap magics:
 *   live user bytes            addressable (a partial last granule as ASan does)
 *   canaries and padding       0xfa, heap redzone   -> "heap-buffer-overflow"
 *   quarantined and free bytes 0xfd, freed memory   -> "heap-use-after-free"
 * so an overflow is caught at the faulting instruction with ASan's usual
 * report.  Under Valgrind, blocks are MALLOCLIKE/FREELIKE blocks and every
 * other byte is NOACCESS.  amm's own code opens a range (amm__san_open)
 * before it reads or writes guards or freed memory, and closes it again.
 * Every function here compiles to nothing in a plain build.
 */
#ifndef AMM_SANITIZE_H
#define AMM_SANITIZE_H

#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define AMM__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AMM__ASAN 1
#endif
#endif

#ifdef AMM__ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(AMM_HAVE_VALGRIND_H) && AMM_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#define AMM__VALGRIND 1
#include <stdatomic.h>
/* Whether the process runs under Valgrind: -1 until asked (os.c), then 0 or 1.
 * Outside Valgrind each client request below costs one predictable branch
 * instead of its magic instruction sequence. */
extern atomic_int amm__on_valgrind;
int amm__valgrind_probe(void);
static inline int amm__valgrind_on(void) {
    int v = atomic_load_explicit(&amm__on_valgrind, memory_order_relaxed);
    return v < 0 ? amm__valgrind_probe() : v;
}
#define AMM__VG(request) do { if (amm__valgrind_on()) { request; } } while (0)
#endif

/* 1 when a sanitizer is watching (an ASan build, or a run under Valgrind):
 * callers that do several shadow updates in a row test it once. */
static inline int amm__san_on(void) {
#if defined(AMM__ASAN)
    return 1;
#elif defined(AMM__VALGRIND)
    return amm__valgrind_on();
#else
    return 0;
#endif
}

/* Fresh mappings up to this size are marked free for the sanitizers at once;
 * larger ones stay open until their bytes are first used (the shadow work of
 * a mapping is 1/8 of its size). */
#define AMM__SAN_EAGER_BYTES ((size_t)16 << 20)

#define AMM__SHADOW_REDZONE 0xfa /* ASan's heap left/right redzone */
#define AMM__SHADOW_FREED 0xfd   /* ASan's freed heap memory */

#ifdef AMM__ASAN
#if defined(__clang__)
#define AMM__NO_COVERAGE __attribute__((no_sanitize("coverage"))) /* a fuzzer learns nothing from these loops */
#else
#define AMM__NO_COVERAGE
#endif
/* Sets the shadow of the whole 8-byte granules inside [a, a+n) to magic.
 * Plain volatile stores: memset would be intercepted (and refused) by ASan. */
__attribute__((no_sanitize("address"))) AMM__NO_COVERAGE static inline void amm__shadow_set(uintptr_t a, size_t n, uint8_t magic) {
    size_t scale, offset;
    uintptr_t lo = (a + 7) & ~(uintptr_t)7, hi = (a + n) & ~(uintptr_t)7;
    if (hi <= lo) return;
    __asan_get_shadow_mapping(&scale, &offset);
    volatile uint8_t *s = (volatile uint8_t *)((lo >> scale) + offset);
    size_t count = (hi - lo) >> scale, i = 0;
    uint64_t word = 0x0101010101010101ull * magic;
    for (; i < count && ((uintptr_t)(s + i) & 7); i++) s[i] = magic;
    for (; i + 8 <= count; i += 8) *(volatile uint64_t *)(void *)(uintptr_t)(s + i) = word;
    for (; i < count; i++) s[i] = magic;
}

/* The granule holding a (not 8-aligned) becomes "first a & 7 bytes addressable". */
__attribute__((no_sanitize("address"))) AMM__NO_COVERAGE static inline void amm__shadow_set_partial(uintptr_t a) {
    size_t scale, offset;
    __asan_get_shadow_mapping(&scale, &offset);
    *(volatile uint8_t *)(((a & ~(uintptr_t)7) >> scale) + offset) = (uint8_t)(a & 7);
}
#endif

/* The guard after a live block's last byte: whole granules from the block's
 * end on are redzone, and the granule holding the end gets ASan's "first k
 * bytes addressable" value written in one store.  User bytes' shadow is never
 * touched, so a check in one thread cannot race with the owner's writes. */
static inline void amm__san_guard_after(uintptr_t uend, uintptr_t end) {
#ifdef AMM__ASAN
    uintptr_t whole = (uend + 7) & ~(uintptr_t)7;
    if (uend & 7) amm__shadow_set_partial(uend);
    amm__shadow_set(whole, end > whole ? end - whole : 0, AMM__SHADOW_REDZONE);
#endif
#ifdef AMM__VALGRIND
    AMM__VG(VALGRIND_MAKE_MEM_NOACCESS((void *)uend, end - uend));
#endif
    (void)uend, (void)end;
}

/* amm's own code is about to touch [a, a+n): make it accessible. */
static inline void amm__san_open(uintptr_t a, size_t n) {
#ifdef AMM__ASAN
    __asan_unpoison_memory_region((void *)a, n);
#endif
#ifdef AMM__VALGRIND
    AMM__VG(VALGRIND_MAKE_MEM_DEFINED((void *)a, n));
#endif
    (void)a, (void)n;
}

/* [a, a+n) is a guard (canary, padding): nobody may touch it. */
static inline void amm__san_guard(uintptr_t a, size_t n) {
#ifdef AMM__ASAN
    amm__shadow_set(a, n, AMM__SHADOW_REDZONE);
#endif
#ifdef AMM__VALGRIND
    AMM__VG(VALGRIND_MAKE_MEM_NOACCESS((void *)a, n));
#endif
    (void)a, (void)n;
}

/* [a, a+n) is freed or free memory: nobody may touch it. */
static inline void amm__san_freed(uintptr_t a, size_t n) {
#ifdef AMM__ASAN
    amm__shadow_set(a, n, AMM__SHADOW_FREED);
#endif
#ifdef AMM__VALGRIND
    AMM__VG(VALGRIND_MAKE_MEM_NOACCESS((void *)a, n));
#endif
    (void)a, (void)n;
}

/* A block is handed out at user (defined: its bytes are already meaningful, e.g. after a move). */
static inline void amm__san_alloc(uintptr_t user, size_t size, int defined) {
#ifdef AMM__ASAN
    __asan_unpoison_memory_region((void *)user, size);
#endif
#ifdef AMM__VALGRIND
    AMM__VG(VALGRIND_MALLOCLIKE_BLOCK((void *)user, size, 0, defined));
#endif
    (void)user, (void)size, (void)defined;
}

/* The block at user is given back by its owner (its bytes stay open for amm's fill). */
static inline void amm__san_free(uintptr_t user, size_t size) {
#ifdef AMM__VALGRIND
    AMM__VG(VALGRIND_FREELIKE_BLOCK((void *)user, 0));
    AMM__VG(VALGRIND_MAKE_MEM_DEFINED((void *)user, size));
#endif
    (void)user, (void)size;
}

/* The block at user changes size in place. */
static inline void amm__san_resize(uintptr_t user, size_t old_size, size_t new_size) {
#ifdef AMM__ASAN
    __asan_unpoison_memory_region((void *)user, new_size);
#endif
#ifdef AMM__VALGRIND
    if (old_size && new_size) {
        AMM__VG(VALGRIND_RESIZEINPLACE_BLOCK((void *)user, old_size, new_size, 0));
    } else { /* memcheck refuses a resize to or from zero bytes: re-announce the block */
        AMM__VG(VALGRIND_FREELIKE_BLOCK((void *)user, 0));
        AMM__VG(VALGRIND_MALLOCLIKE_BLOCK((void *)user, new_size, 0, 0));
    }
#endif
    (void)user, (void)old_size, (void)new_size;
}

#endif /* AMM_SANITIZE_H */
