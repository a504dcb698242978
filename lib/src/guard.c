/*
 * guard.c - canaries, fill patterns and the quarantine.
 *
 * Canaries: the byte at address a is pattern[a & 7], eight bytes derived from
 * the manager's secret.  A canary therefore differs between managers and
 * between neighbouring bytes, and an aligned 8-byte word of canary always
 * equals the pattern read as a word, so filling and checking go a word at a
 * time.  No pattern byte equals 0x00, 0xFF, AMM_FILL_NEW or AMM_FILL_FREED.
 * Every byte of a block's chunk outside [user, user+size) is canary: the
 * front guard, the back guard and any slack, so detection is byte-exact.
 *
 * Quarantine: a FIFO of freed blocks bounded by bytes and by count.  A freed
 * block is filled with AMM_FILL_FREED; when it leaves (oldest first), its
 * fill and canaries are verified (a write after free is reported then) and
 * the block is really released.  Cost: O(1) per free plus O(block) checks.
 */
#include <string.h>

#include "hot.h"

/* Canary bytes have the high bit set, so no byte 0-127 (ASCII, a small
 * non-negative count) ever matches one: a string or a count written past the
 * end is always caught.  0xFF (-1) and the two fill bytes are left out too. */
static int bad_pattern_byte(uint8_t v) {
    return v < 0x80 || v == 0xFF || v == AMM_FILL_NEW || v == AMM_FILL_FREED;
}

void amm__guard_init(amm_manager *m) {
    uint64_t s = m->secret;
    for (int i = 0; i < 8; i++) {
        /* splitmix64 steps give well-mixed bytes */
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        uint8_t v = (uint8_t)((z ^ (z >> 31)) | 0x80u);
        while (bad_pattern_byte(v)) v = (uint8_t)(0x80u | (v + 0x35u));
        m->pattern[i] = v;
    }
    for (size_t i = 0; i < sizeof m->pattern_run; i++) m->pattern_run[i] = m->pattern[i & 7];
}

#define RUN (sizeof(((amm_manager *)0)->pattern_run))

static uint64_t pattern_word(const amm_manager *m) {
    uint64_t w;
    memcpy(&w, m->pattern, 8);
    return w; /* an 8-aligned word's bytes at a..a+7 are pattern[0..7] on any endianness */
}

void amm__canary_fill(const amm_manager *m, uintptr_t start, uintptr_t end) {
    uintptr_t a = start;
    while (a < end && (a & 7)) {
        *(uint8_t *)a = m->pattern[a & 7];
        a++;
    }
    for (; a + RUN <= end; a += RUN) memcpy((void *)a, m->pattern_run, RUN);
    uint64_t w = pattern_word(m);
    for (; a + 8 <= end; a += 8) memcpy((void *)a, &w, 8);
    for (; a < end; a++) *(uint8_t *)a = m->pattern[a & 7];
}

uintptr_t amm__canary_first_bad(const amm_manager *m, uintptr_t start, uintptr_t end) {
    uintptr_t a = start;
    while (a < end && (a & 7)) {
        if (*(const uint8_t *)a != m->pattern[a & 7]) return a;
        a++;
    }
    while (a + RUN <= end && memcmp((const void *)a, m->pattern_run, RUN) == 0) a += RUN;
    uint64_t w = pattern_word(m);
    for (; a + 8 <= end; a += 8) {
        uint64_t v;
        memcpy(&v, (const void *)a, 8);
        if (v != w) break;
    }
    for (; a < end; a++) {
        if (*(const uint8_t *)a != m->pattern[a & 7]) return a;
    }
    return 0;
}

uintptr_t amm__canary_last_bad(const amm_manager *m, uintptr_t start, uintptr_t end) {
    uintptr_t a = end;
    while (a > start && (a & 7)) {
        a--;
        if (*(const uint8_t *)a != m->pattern[a & 7]) return a;
    }
    while (a >= start + RUN && memcmp((const void *)(a - RUN), m->pattern_run, RUN) == 0) a -= RUN;
    uint64_t w = pattern_word(m);
    for (; a >= start + 8; a -= 8) {
        uint64_t v;
        memcpy(&v, (const void *)(a - 8), 8);
        if (v != w) break;
    }
    while (a > start) {
        a--;
        if (*(const uint8_t *)a != m->pattern[a & 7]) return a;
    }
    return 0;
}

__attribute__((noinline)) static void san_restore_now(const amm__block *b) {
    if (b->state != AMM_BLOCK_LIVE) {
        amm__san_freed(b->raw, b->raw_size);
        return;
    }
    amm__san_guard(b->raw, b->user - b->raw);
    amm__san_guard_after(b->user + b->size, b->raw + b->raw_size);
}

void amm__san_restore(const amm_manager *m, const amm__block *b) {
    (void)m;
    if (amm__san_on()) san_restore_now(b); /* the test first: the shadow calls need a stack frame */
}

/* Opens both guards of b for amm's own access; amm__san_restore closes them. */
__attribute__((noinline)) static void open_guards_now(const amm__block *b) {
    amm__san_open(b->raw, b->user - b->raw);
    amm__san_open(b->user + b->size, b->raw + b->raw_size - b->user - b->size);
}

static inline void open_guards(const amm__block *b) {
    if (amm__san_on()) open_guards_now(b);
}

void amm__guard_write(const amm_manager *m, const amm__block *b) {
    if (!amm__has_guards(b)) return;
    open_guards(b);
    amm__canary_fill(m, b->raw, b->user);
    amm__canary_fill(m, b->user + b->size, b->raw + b->raw_size);
    amm__san_restore(m, b);
}

int amm__guard_intact(const amm_manager *m, const amm__block *b) {
    open_guards(b);
    int ok = !amm__canary_first_bad(m, b->raw, b->user) &&
             !amm__canary_first_bad(m, b->user + b->size, b->raw + b->raw_size);
    amm__san_restore(m, b);
    return ok;
}

size_t amm__guard_check(amm_manager *m, amm__block *b, const char *operation, const char *file, int line) {
    size_t problems = 0;
    if (!amm__has_guards(b)) return 0;
    uintptr_t fs = b->raw, end = b->raw + b->raw_size, uend = b->user + b->size;
    open_guards(b);
    uintptr_t first = amm__canary_first_bad(m, fs, b->user);
    if (first) {
        size_t bytes = b->user - first;
        amm__fault(m, AMM_ERR_UNDERFLOW, (void *)b->user, b, operation, NULL, -(long long)bytes, bytes, file, line);
        amm__canary_fill(m, fs, b->user);
        problems++;
    }
    uintptr_t last = amm__canary_last_bad(m, uend, end);
    if (last) {
        size_t bytes = last - uend + 1;
        uintptr_t firstb = amm__canary_first_bad(m, uend, end);
        amm__fault(m, AMM_ERR_OVERFLOW, (void *)b->user, b, operation, NULL, (long long)(firstb - b->user), bytes,
                   file, line);
        amm__canary_fill(m, uend, end);
        problems++;
    }
    amm__san_restore(m, b);
    return problems;
}

size_t amm__guard_check_freed(amm_manager *m, amm__block *b, const char *operation) {
    if (!m->cfg.fill) return 0;
    amm__san_open(b->user, b->size);
    const uint8_t *p = (const uint8_t *)b->user;
    size_t first = b->size, last = 0, i = 0;
    /* fast path: every whole 64-byte run of the fill, in 16-byte vectors
     * (GCC/Clang vector types: SSE2 on x86-64, whatever the target has
     * elsewhere) and no early exit, since a mismatch is rare.  The byte scan
     * below runs over the whole block only when a vector differed, else over
     * the tail. */
    typedef uint64_t vec2 __attribute__((vector_size(16)));
    const uint64_t word = 0x0101010101010101ull * AMM_FILL_FREED;
    const vec2 fill = {word, word};
    vec2 d0 = {0, 0}, d1 = d0, d2 = d0, d3 = d0;
    size_t runs = b->size / 64;
    for (size_t k = 0; k < runs; k++) {
        vec2 w[4];
        memcpy(w, p + k * 64, sizeof w);
        d0 |= w[0] ^ fill;
        d1 |= w[1] ^ fill;
        d2 |= w[2] ^ fill;
        d3 |= w[3] ^ fill;
    }
    vec2 d = d0 | d1 | d2 | d3;
    if (!(d[0] | d[1])) i = runs * 64;
    for (; i < b->size; i++) {
        if (p[i] != AMM_FILL_FREED) {
            if (first == b->size) first = i;
            last = i;
        }
    }
    if (first == b->size) {
        amm__san_restore(m, b);
        return 0;
    }
    amm__fault(m, AMM_ERR_USE_AFTER_FREE, (void *)b->user, b, operation, NULL, (long long)first, last - first + 1,
               NULL, 0);
    memset((void *)b->user, AMM_FILL_FREED, b->size);
    amm__san_restore(m, b);
    return 1;
}

static void quarantine_unlink(amm_manager *m, amm__block *b) {
    if (b->q_prev) b->q_prev->q_next = b->q_next;
    else m->q_head = b->q_next;
    if (b->q_next) b->q_next->q_prev = b->q_prev;
    else m->q_tail = b->q_prev;
    b->q_prev = b->q_next = NULL;
    m->q_blocks--;
    m->q_bytes -= b->raw_size;
}

/* Block b leaves quarantine: verify, then release for real. */
static void quarantine_evict_block(amm_manager *m, amm__block *b) {
    quarantine_unlink(m, b);
    amm__guard_check_freed(m, b, "quarantine release");
    amm__guards_check(m, b, "quarantine release", NULL, 0);
    AMM__TRACE(m, amm__trace_simple(m, AMM_TOP_QUARANTINE_RELEASE, b->user, b->size, 0, 0));
    amm__release_block(m, b);
}

static void quarantine_evict(amm_manager *m) { quarantine_evict_block(m, m->q_head); }

void amm__quarantine_evict_pool(amm_manager *m, amm_pool *p) {
    amm__block *b = m->q_head;
    while (b && amm__pool_of(b) != p) b = b->q_next;
    if (b) quarantine_evict_block(m, b);
}

void amm__quarantine_push(amm_manager *m, amm__block *b) {
    amm__san_free(b->user, b->size);
    if (!amm__quarantines(m, b)) {
        amm__release_block(m, b);
        return;
    }
    if (m->cfg.fill) memset((void *)b->user, AMM_FILL_FREED, b->size);
    b->state = AMM_BLOCK_QUARANTINED;
    amm__san_restore(m, b);
    if (amm__pool_of(b)) b->pool->quarantined++;
    b->q_prev = m->q_tail;
    b->q_next = NULL;
    if (m->q_tail) m->q_tail->q_next = b;
    else m->q_head = b;
    m->q_tail = b;
    m->q_blocks++;
    m->q_bytes += b->raw_size;
    while (m->q_head && (m->q_bytes > m->cfg.quarantine || m->q_blocks > m->cfg.quarantine_blocks)) {
        quarantine_evict(m);
    }
}

void amm__quarantine_flush(amm_manager *m) {
    while (m->q_head) quarantine_evict(m);
}
