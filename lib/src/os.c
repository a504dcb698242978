/*
 * os.c - every system call about memory: mmap, munmap, madvise, mincore,
 * plus the clock, a random secret, small thread ids and the futex under a
 * manager's lock.
 *
 * Failure injection (amm__os_inject_failures) lets tests and fuzz targets make
 * the system "refuse" memory at a chosen map, so out-of-memory paths are
 * exercised: every caller of amm__os_map must cope with NULL.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sanitize.h"

static _Atomic uint64_t inject_after = UINT64_MAX; /* maps left before failures start */
static _Atomic uint64_t inject_count = 0;          /* maps that will fail */

void amm__os_inject_failures(uint64_t after, uint64_t fail_count) {
    atomic_store(&inject_count, fail_count);
    atomic_store(&inject_after, fail_count ? after : UINT64_MAX);
}

static int injected_failure(void) {
    uint64_t after = atomic_load(&inject_after);
    if (after == UINT64_MAX) return 0;
    if (after > 0) {
        atomic_fetch_sub(&inject_after, 1);
        return 0;
    }
    if (atomic_load(&inject_count) == 0) return 0;
    if (atomic_fetch_sub(&inject_count, 1) == 1) atomic_store(&inject_after, UINT64_MAX);
    return 1;
}

size_t amm__page_size(void) {
    static _Atomic size_t page; /* any thread may be first: they all store the same value */
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (!p) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

void *amm__os_map(size_t bytes) {
    if (bytes == 0 || injected_failure()) return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *amm__os_map_aligned(size_t bytes, size_t align, size_t *mapped) {
    size_t page = amm__page_size();
    if (align <= page) {
        void *p = amm__os_map(bytes);
        if (p && mapped) *mapped = bytes;
        return p;
    }
    if (bytes > SIZE_MAX - align) return NULL;
    size_t over = bytes + align;
    uint8_t *p = amm__os_map(over);
    if (!p) return NULL;
    uintptr_t base = amm__align_up((uintptr_t)p, align);
    size_t head = base - (uintptr_t)p, tail = over - head - bytes;
    if (head) munmap(p, head);
    if (tail) munmap((uint8_t *)base + bytes, tail);
    if (mapped) *mapped = bytes;
    return (void *)base;
}

void amm__os_unmap(void *p, size_t bytes) {
    if (p && bytes) munmap(p, bytes);
}

void amm__os_unmap_shadowed(void *p, size_t bytes, size_t shadowed) {
    if (!p || !bytes) return;
    amm__san_open((uintptr_t)p, shadowed < bytes ? shadowed : bytes); /* no stale shadow for the next mapping here */
    munmap(p, bytes);
}

size_t amm__os_purge(uintptr_t start, uintptr_t end) {
    size_t page = amm__page_size();
    uintptr_t a = amm__align_up(start, page), b = end & ~(uintptr_t)(page - 1);
    if (b <= a) return 0;
    if (madvise((void *)a, b - a, MADV_DONTNEED) != 0) return 0;
    return b - a;
}

size_t amm__os_resident(uintptr_t start, size_t bytes) {
    size_t page = amm__page_size(), total = 0;
    unsigned char vec[256];
    uintptr_t a = start & ~(uintptr_t)(page - 1), end = start + bytes;
    while (a < end) {
        size_t pages = (end - a + page - 1) / page;
        if (pages > sizeof vec) pages = sizeof vec;
        if (mincore((void *)a, pages * page, vec) != 0) break;
        for (size_t i = 0; i < pages; i++) total += (vec[i] & 1) ? page : 0;
        a += pages * page;
    }
    return total > bytes ? bytes : total;
}

uint64_t amm__os_random(void) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        v = amm__os_now_ns() ^ ((uint64_t)(uintptr_t)&v << 17);
    }
    return v;
}

uint64_t amm__os_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint16_t amm__thread_id(void) {
    static _Atomic uint16_t next = 1;
    static _Thread_local uint16_t id;
    if (!id) {
        id = atomic_fetch_add(&next, 1);
        if (!id) id = atomic_fetch_add(&next, 1); /* skip 0 after wrap-around */
    }
    return id;
}

/* ---- the slow half of amm__mutex (internal.h) ---- */

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The futex calls may set errno (EAGAIN, EINTR); amm never changes the caller's. */
void amm__mutex_wait(amm__mutex *mu) {
    /* spin first, the holder is usually about to let go: look at the lock,
     * then pause 1, 2, 4 ... 64 times before looking again, until 512 pauses
     * have passed (14 looks, 575 pauses: 14 us where a pause is 25 ns, as on
     * the EPYC this was measured on).  Looking at it less often leaves its
     * cache line with the holder, and spinning longer keeps waiters out of
     * the futex: against a look after every pause (128 in all), one thread
     * allocating and one freeing went 124-145 -> 70-88 ns per block, four
     * threads of alloc+free pairs on two cores 61-85 -> 22-29 ns per pair. */
    for (int i = 0, pause = 1; i < 512; i += pause, pause = pause < 64 ? pause * 2 : pause) {
        if (atomic_load_explicit(&mu->state, memory_order_relaxed) == 0 && amm__mutex_trylock(mu) == 0) return;
        for (int k = 0; k < pause; k++) cpu_relax();
    }
    /* mark it contended (2), so the holder's unlock wakes someone, and sleep while it stays so */
    int saved = errno;
    while (atomic_exchange_explicit(&mu->state, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &mu->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    errno = saved;
}

void amm__mutex_wake(amm__mutex *mu) {
    int saved = errno;
    syscall(SYS_futex, &mu->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

#ifdef AMM__VALGRIND
atomic_int amm__on_valgrind = -1;

int amm__valgrind_probe(void) {
    int v = RUNNING_ON_VALGRIND ? 1 : 0;
    atomic_store_explicit(&amm__on_valgrind, v, memory_order_relaxed);
    return v;
}
#endif
