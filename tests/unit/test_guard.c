/*
 * test_guard.c - canaries and quarantine.
 *
 * The corruption matrix: for heap, large and pool blocks at alignments 1, 8,
 * 16, 64, 4096 and 65536, damage 1..canary bytes just past the end or just
 * before the start of a block, then free it (or run amm_check).  Each damage
 * must be reported exactly once, with the right kind, block, size, offset and
 * byte count; the manager must stay usable and amm_check find nothing after.
 * Every guard byte, slack included, is checked one byte at a time too, and
 * guards of every length either side of the inline check's bound.
 * Then use-after-free (found by amm_check, on leaving quarantine, at destroy,
 * and in free pool slots), check_every, report sites, and the default
 * handler: its one-line format for every fault kind, and abort mode.
 */
#include "../harness.h"

#include <signal.h>
#include <sys/wait.h>

static const size_t aligns[] = {1, 8, 16, 64, 4096, 65536};
#define NALIGNS (sizeof aligns / sizeof aligns[0])

typedef enum where { HEAP, LARGE, POOL } where;
static const char *const where_name[] = {"heap", "large", "pool"};

typedef struct matrix_case {
    amm_manager *m;
    h_faults *f;
    amm_pool *pool;   /* POOL only */
    where w;
    size_t size, align, n;
    int under;        /* 1: damage before the start, 0: past the end */
    int via_check;    /* 1: find it with amm_check before the free */
} matrix_case;

static void *case_alloc(const matrix_case *c)
{
    if (c->w == POOL)
        return amm_pool_alloc_at(c->m, c->pool, c->size, c->align, __FILE__, __LINE__);
    return amm_alloc(c->m, c->size, c->align);
}

/* Flips n bytes just outside the block (every bit, so each surely changes). */
static void damage(unsigned char *p, size_t size, size_t n, int under)
{
    /* on addresses: the bytes lie outside the C object the block is */
    unsigned char *start = (unsigned char *)(under ? (uintptr_t)p - n : (uintptr_t)p + size);
    h_unpoison(start, n);
    for (size_t i = 0; i < n; i++)
        start[i] ^= 0xFFu;
}

static void expect_report(const matrix_case *c, const amm_report *r, const void *p)
{
    EXPECT_EQ(r->kind, c->under ? AMM_ERR_UNDERFLOW : AMM_ERR_OVERFLOW);
    EXPECT_EQ(r->block, p);
    EXPECT_EQ(r->block_size, c->size);
    EXPECT_EQ(r->offset, c->under ? -(long long)c->n : (long long)c->size);
    EXPECT_EQ(r->bytes, c->n);
    EXPECT_EQ(r->origin, (amm_origin)(c->w == HEAP ? AMM_ORIGIN_HEAP : c->w == LARGE ? AMM_ORIGIN_LARGE : AMM_ORIGIN_POOL));
}

static void run_case(const matrix_case *c)
{
    unsigned char *p = (unsigned char *)case_alloc(c);
    amm_block_info info;
    void *q;
    ASSERT_NOT_NULL(p);
    ASSERT_TRUE(h_block_info(c->m, p, &info));
    EXPECT_EQ(info.origin, (amm_origin)(c->w == HEAP ? AMM_ORIGIN_HEAP : c->w == LARGE ? AMM_ORIGIN_LARGE : AMM_ORIGIN_POOL));
    EXPECT_TRUE(h_is_aligned(p, c->align));
    h_faults_clear(c->f);
    damage(p, c->size, c->n, c->under);
    if (c->via_check) {
        EXPECT_EQ(amm_check(c->m), 1);
        EXPECT_FAULTS(c->f, 1);
        expect_report(c, &c->f->list[0], p);
        EXPECT_EQ(amm_check(c->m), 0);      /* reported once, then repaired */
    }
    EXPECT_EQ(amm_free(c->m, p), 0);        /* damage is reported, the block still freed */
    EXPECT_FAULTS(c->f, 1);
    if (!c->via_check)
        expect_report(c, &c->f->list[0], p);
    EXPECT_EQ(amm_check(c->m), 0);
    EXPECT_FAULTS(c->f, 1);
    q = amm_alloc(c->m, 40, 0);             /* still usable */
    ASSERT_NOT_NULL(q);
    h_fill(q, 40, 1);
    EXPECT_EQ(amm_free(c->m, q), 0);
    EXPECT_FAULTS(c->f, 1);
    if (atomic_load(&h_st.failures))
        printf("    in case: %s block of %zu bytes, align %zu, %zu bytes %s, found by %s\n",
               where_name[c->w], c->size, c->align, c->n, c->under ? "before" : "after",
               c->via_check ? "amm_check" : "free");
}

/* A small quarantine keeps each amm_check cheap; damage is found all the same. */
#define SMALLQ "quarantine=32K,quarantine_blocks=8"

/* Runs the matrix for one kind of block: every alignment, both sides, 1..canary bytes. */
static void run_matrix(where w, size_t size, const char *options, size_t canary)
{
    for (size_t a = 0; a < NALIGNS; a++) {
        h_faults f;
        amm_manager *m = h_new_manager(options, &f);
        matrix_case c;
        memset(&c, 0, sizeof c);
        c.m = m;
        c.f = &f;
        c.w = w;
        c.size = size;
        c.align = aligns[a];
        if (w == POOL) {
            c.pool = amm_pool_create(m, size + 5, 4, aligns[a]);
            ASSERT_NOT_NULL(c.pool);
        }
        for (c.via_check = 0; c.via_check <= 1; c.via_check++)
            for (c.under = 0; c.under <= 1; c.under++)
                for (c.n = 1; c.n <= canary; c.n++) {
                    int before = atomic_load(&h_st.failures);
                    run_case(&c);
                    if (atomic_load(&h_st.failures) != before)
                        break;      /* one failing n per row is enough output */
                }
        EXPECT_HEALTHY(m);
        amm_destroy(m);
    }
}

TEST(overflow_underflow_heap_24)
{
    run_matrix(HEAP, 24, SMALLQ ",region_size=1M", 16);
}

TEST(overflow_underflow_heap_13)
{
    run_matrix(HEAP, 13, SMALLQ ",region_size=1M", 16);
}

TEST(overflow_underflow_large)
{
    run_matrix(LARGE, 5001, SMALLQ ",large_threshold=4096", 16);
}

TEST(overflow_underflow_pool)
{
    /* slots of 48 bytes holding 43-byte blocks: the slack is canary too */
    run_matrix(POOL, 43, SMALLQ, 16);
}

TEST(wider_canary)
{
    run_matrix(HEAP, 24, SMALLQ ",canary=64", 64);
}

/*
 * Every guard byte counts, slack included: flip the single byte at distance
 * d past the end (or before the start), for every d the chunk/slot/mapping
 * holds (up to 64), and expect one report at that byte: offset size + d - 1
 * (or -d) and bytes = d (the distance to the furthest damaged byte).
 */
static void single_byte_sweep(amm_manager *m, h_faults *f, amm_pool *pool, size_t size, size_t align)
{
    for (int under = 0; under <= 1; under++) {
        size_t room;
        unsigned char *p = (unsigned char *)(pool ? amm_pool_alloc_at(m, pool, size, align, __FILE__, __LINE__)
                                                  : amm_alloc(m, size, align));
        amm_block_info info;
        ASSERT_NOT_NULL(p);
        ASSERT_TRUE(h_block_info(m, p, &info));
        room = under ? (size_t)((uintptr_t)p - (uintptr_t)info.raw)
                     : (size_t)((uintptr_t)info.raw + info.raw_size - ((uintptr_t)p + size));
        EXPECT_GE(room, 16);                /* at least the canary */
        if (room > 64)
            room = 64;
        for (size_t d = 1; d <= room; d++) {
            unsigned char *byte = (unsigned char *)(under ? (uintptr_t)p - d : (uintptr_t)p + size + d - 1);
            h_faults_clear(f);
            h_unpoison(byte, 1);
            *byte ^= 0x01u;                 /* the smallest change */
            EXPECT_EQ(amm_check(m), 1);
            EXPECT_FAULTS(f, 1);
            EXPECT_EQ(f->last.kind, under ? AMM_ERR_UNDERFLOW : AMM_ERR_OVERFLOW);
            EXPECT_EQ(f->last.offset, under ? -(long long)d : (long long)(size + d - 1));
            EXPECT_EQ(f->last.bytes, d);
            if (atomic_load(&h_st.failures)) {
                printf("    %s block of %zu bytes, align %zu, byte %zu %s\n", pool ? "pool" : info.origin == AMM_ORIGIN_LARGE ? "large" : "heap",
                       size, align, d, under ? "before the start" : "past the end");
                break;
            }
        }
        EXPECT_EQ(amm_free(m, p), 0);
        EXPECT_EQ(amm_check(m), 0);
    }
}

TEST(every_guard_byte_counts)
{
    static const size_t sizes[] = {1, 13, 24, 100};
    h_faults f;
    amm_manager *m = h_new_manager(SMALLQ ",large_threshold=4096", &f);
    amm_pool *pool = amm_pool_create(m, 104, 8, 64);
    ASSERT_NOT_NULL(pool);
    for (size_t a = 0; a < NALIGNS; a++)
        for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            single_byte_sweep(m, &f, NULL, sizes[s], aligns[a]);        /* heap */
            single_byte_sweep(m, &f, NULL, sizes[s] + 5000, aligns[a]); /* large */
            if (aligns[a] <= 64)
                single_byte_sweep(m, &f, pool, sizes[s], aligns[a]);    /* pool slot */
        }
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

/*
 * Guards of every length around the inline copy and compare (hot.h: at most
 * 240 bytes a side, else guard.c): canary 0 (a block's slack alone, as in
 * fast mode) and canaries either side of the bound, for every size 0..48
 * (every slack length) of heap blocks and pool slots.  Damage of 1 byte, half
 * the room and all of it, past the end or before the start, found by free:
 * one report each, at the exact offset and byte count.
 */
static void guard_room_case(amm_manager *m, h_faults *f, amm_pool *pool, size_t size, int under, int step)
{
    unsigned char *p = (unsigned char *)(pool ? amm_pool_alloc_at(m, pool, size, 0, __FILE__, __LINE__)
                                              : amm_alloc(m, size, 0));
    amm_block_info info;
    int before = atomic_load(&h_st.failures);
    ASSERT_NOT_NULL(p);
    ASSERT_TRUE(h_block_info(m, p, &info));
    size_t room = under ? (size_t)((uintptr_t)p - (uintptr_t)info.raw)
                        : (size_t)((uintptr_t)info.raw + info.raw_size - ((uintptr_t)p + size));
    size_t n = step == 0 ? 1 : step == 1 ? (room + 1) / 2 : room;
    h_faults_clear(f);
    if (n > 0 && n <= room)
        damage(p, size, n, under);
    else
        n = 0;                       /* no room on this side (canary 0, before the start) */
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(f, n ? 1 : 0);
    if (n) {
        EXPECT_EQ(f->last.kind, under ? AMM_ERR_UNDERFLOW : AMM_ERR_OVERFLOW);
        EXPECT_EQ(f->last.offset, under ? -(long long)n : (long long)size);
        EXPECT_EQ(f->last.bytes, n);
    }
    if (atomic_load(&h_st.failures) != before)
        printf("    %s block of %zu bytes, %zu of %zu guard bytes %s damaged\n", pool ? "pool" : "heap", size, n, room,
               under ? "before the start" : "past the end");
}

TEST(guards_around_the_inline_bound)
{
    static const size_t canaries[] = {0, 8, 224, 232, 240, 248};
    for (size_t c = 0; c < sizeof canaries / sizeof canaries[0]; c++) {
        char opts[80];
        h_faults f;
        snprintf(opts, sizeof opts, "canary=%zu,quarantine=0", canaries[c]);
        amm_manager *m = h_new_manager(opts, &f);
        amm_pool *pool = amm_pool_create(m, 48, 4, 0);
        ASSERT_NOT_NULL(pool);
        for (size_t size = 0; size <= 48 && !atomic_load(&h_st.failures); size++)
            for (int under = 0; under <= 1; under++)
                for (int step = 0; step <= 2; step++) {
                    guard_room_case(m, &f, NULL, size, under, step);
                    guard_room_case(m, &f, pool, size, under, step);
                }
        EXPECT_HEALTHY(m);
        if (atomic_load(&h_st.failures))
            printf("    with %s\n", opts);
        amm_destroy(m);
    }
}

TEST(both_sides_reported_once_each)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 100, 0);
    ASSERT_NOT_NULL(p);
    damage(p, 100, 3, 0);
    damage(p, 100, 5, 1);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.kinds[AMM_ERR_OVERFLOW], 1);
    EXPECT_EQ(f.kinds[AMM_ERR_UNDERFLOW], 1);
    EXPECT_HEALTHY(m);
    EXPECT_FAULTS(&f, 2);
    amm_destroy(m);
}

TEST(overflow_found_by_realloc_and_retain)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 24, 0), *q;
    ASSERT_NOT_NULL(p);
    damage(p, 24, 2, 0);
    EXPECT_EQ(amm_retain(m, p), 2u);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_OVERFLOW);
    EXPECT_EQ(f.last.bytes, 2);
    EXPECT_EQ(amm_release(m, p), 1u);
    EXPECT_FAULTS(&f, 1);
    damage(p, 24, 4, 0);
    q = (unsigned char *)amm_realloc(m, p, 5000, 0);
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_OVERFLOW);
    EXPECT_EQ(f.last.bytes, 4);
    EXPECT_STREQ(f.last.operation, "realloc");
    EXPECT_EQ(amm_free(m, q ? q : p), 0);
    EXPECT_HEALTHY(m);
    EXPECT_FAULTS(&f, 2);
    amm_destroy(m);
}

/* ---- use after free ---- */

/* Flips n bytes (a fixed value could equal a free slot's canary byte, which
 * comes from the per-manager secret, and then change nothing). */
static void write_after_free(unsigned char *p, size_t off, size_t n)
{
    h_unpoison(p + off, n);
    for (size_t i = 0; i < n; i++)
        p[off + i] ^= 0xFFu;
}

TEST(use_after_free_found_by_check)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 64, 0);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_EQ(amm_check(m), 0);
    write_after_free(p, 5, 1);
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(f.last.block, p);
    EXPECT_EQ(f.last.offset, 5);
    EXPECT_EQ(f.last.bytes, 1);
    EXPECT_EQ(amm_check(m), 0);             /* refilled after the report */
    EXPECT_FAULTS(&f, 1);
    amm_destroy(m);
    EXPECT_FAULTS(&f, 1);
}

TEST(use_after_free_found_leaving_quarantine)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M,quarantine_blocks=1", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 64, 0);
    void *q = amm_alloc(m, 64, 0);
    ASSERT_NOT_NULL(p);
    ASSERT_NOT_NULL(q);
    EXPECT_EQ(amm_free(m, p), 0);
    write_after_free(p, 10, 3);
    EXPECT_FAULTS(&f, 0);
    EXPECT_EQ(amm_free(m, q), 0);           /* pushes p out of quarantine */
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(f.last.block, p);
    EXPECT_EQ(f.last.offset, 10);
    EXPECT_EQ(f.last.bytes, 3);
    EXPECT_HEALTHY(m);
    EXPECT_FAULTS(&f, 1);
    amm_destroy(m);
}

TEST(use_after_free_pool_slot)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M", &f);
    amm_pool *pool = amm_pool_create(m, 32, 4, 16);
    unsigned char *p;
    ASSERT_NOT_NULL(pool);
    p = (unsigned char *)amm_alloc(m, 32, 0);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_free(m, p), 0);
    write_after_free(p, 31, 1);
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(f.last.origin, AMM_ORIGIN_POOL);
    EXPECT_EQ(f.last.offset, 31);
    EXPECT_EQ(amm_check(m), 0);
    amm_destroy(m);
}

TEST(use_after_free_found_at_destroy)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=1M", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 200, 0);
    ASSERT_NOT_NULL(p);
    EXPECT_EQ(amm_free(m, p), 0);
    write_after_free(p, 150, 2);
    amm_destroy(m);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(f.last.offset, 150);
}

/* ---- the default handler ---- */

/* Skips "0x" and hex digits; returns NULL if there are none. */
static const char *skip_hex(const char *s)
{
    const char *start;
    if (strncmp(s, "0x", 2) != 0)
        return NULL;
    start = s += 2;
    while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))
        s++;
    return s == start ? NULL : s;
}

TEST(default_handler_line_format)
{
    amm_config cfg;
    amm_manager *m;
    unsigned char *p;
    h_capture cap;
    char out[1024], tail[64];
    const char *s, *nl;
    const char *want = "amm: heap-buffer-overflow: 3 bytes past the end of a 24-byte block at ";
    int line;

    amm_config_defaults(&cfg);              /* on_fault NULL: the default handler */
    m = amm_create(&cfg);
    ASSERT_NOT_NULL(m);
    line = __LINE__ + 1;
    p = (unsigned char *)amm_alloc(m, 24, 0);
    ASSERT_NOT_NULL(p);
    damage(p, 24, 3, 0);
    ASSERT_EQ(h_capture_begin(&cap), 0);
    EXPECT_EQ(amm_free(m, p), 0);
    h_capture_end(&cap, out, sizeof out);
    printf("    default handler printed: %s", out);

    nl = strchr(out, '\n');
    ASSERT_NOT_NULL(nl);
    EXPECT_EQ(nl[1], '\0');                 /* exactly one line */
    ASSERT_EQ(strncmp(out, want, strlen(want)), 0);
    s = skip_hex(out + strlen(want));
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(strncmp(s, " allocated at ", 14), 0);
    s += 14;
    snprintf(tail, sizeof tail, "test_guard.c:%d", line);
    s = strstr(s, tail);
    ASSERT_NOT_NULL(s);
    s += strlen(tail);
    EXPECT_TRUE(*s == '\n' || *s == ' ');   /* a trailing "(detected in free)" may follow */
    EXPECT_EQ(amm_fault_count(m), 1);
    EXPECT_EQ(amm_check(m), 0);
    amm_destroy(m);
}

typedef struct tee {
    char line[512];
    amm_error_kind kind;
    size_t count;
} tee;

/* Formats the report itself, then lets the default handler print it. */
static void tee_handler(const amm_report *r, void *user)
{
    tee *t = (tee *)user;
    amm_report_format(r, t->line, sizeof t->line);
    t->kind = r->kind;
    t->count++;
    amm_default_error_handler(r, NULL);
}

/* Provokes fault number k (0..NPROVOKE-1) on m; returns the kind it must be. */
enum { NPROVOKE = 10 };
static amm_error_kind provoke(amm_manager *m, int k)
{
    static int local;
    unsigned char *p, *q;
    switch (k) {
    case 0:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        damage(p, 24, 3, 0);
        amm_free(m, p);
        return AMM_ERR_OVERFLOW;
    case 1:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        damage(p, 24, 2, 1);
        amm_free(m, p);
        return AMM_ERR_UNDERFLOW;
    case 2:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        amm_free(m, p);
        amm_free(m, p);
        return AMM_ERR_DOUBLE_FREE;
    case 3:
        amm_free(m, &local);
        return AMM_ERR_INVALID_POINTER;
    case 4:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        amm_free(m, p + 5);
        amm_free(m, p);
        return AMM_ERR_INTERIOR_POINTER;
    case 5:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        amm_free(m, p);
        h_unpoison(p + 4, 1);
        p[4] = 0;
        amm_check(m);
        return AMM_ERR_USE_AFTER_FREE;
    case 6:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        amm_retain(m, p);
        amm_free(m, p);
        amm_release(m, p);
        amm_release(m, p);
        return AMM_ERR_SHARED_FREE;
    case 7:
        amm_alloc(m, 24, 48);
        return AMM_ERR_BAD_ALIGNMENT;
    case 8:
        amm_alloc(m, SIZE_MAX, 0);
        return AMM_ERR_BAD_SIZE;
    default:
        p = (unsigned char *)amm_alloc(m, 24, 0);
        q = (unsigned char *)amm_copy(m, p, 25); /* reads past the end */
        amm_free(m, p);
        (void)q;
        return AMM_ERR_OVERFLOW;
    }
}

/* Every fault, printed by the default handler: exactly amm_report_format's
 * line, "amm: <kind name>: " then plain words, one line per fault. */
TEST(default_handler_line_for_every_fault)
{
    amm_config cfg;
    amm_manager *m;
    tee t;
    h_capture cap;
    char out[2048], want[600], prefix[64];

    amm_config_defaults(&cfg);
    cfg.on_fault = tee_handler;
    cfg.on_fault_user = &t;
    m = amm_create(&cfg);
    ASSERT_NOT_NULL(m);
    for (int k = 0; k < NPROVOKE; k++) {
        amm_error_kind kind;
        memset(&t, 0, sizeof t);
        ASSERT_EQ(h_capture_begin(&cap), 0);
        kind = provoke(m, k);
        h_capture_end(&cap, out, sizeof out);
        EXPECT_EQ(t.count, 1);
        EXPECT_EQ(t.kind, kind);
        snprintf(want, sizeof want, "%s\n", t.line);
        EXPECT_STREQ(out, want);
        snprintf(prefix, sizeof prefix, "amm: %s: ", amm_error_name(kind));
        EXPECT_EQ(strncmp(out, prefix, strlen(prefix)), 0);
        EXPECT_GT(strlen(out), strlen(prefix) + 10); /* some words follow */
        if (atomic_load(&h_st.failures)) {
            printf("    provocation %d printed: %s", k, out);
            break;
        }
    }
    EXPECT_EQ(amm_check(m), 0);
    amm_destroy(m);
}

TEST(error_names)
{
    static const char *const names[] = {
#define X(e, name, desc) name,
        AMM_ERROR_KINDS(X)
#undef X
    };
    for (int k = 0; k < AMM_ERR_COUNT; k++)
        EXPECT_STREQ(amm_error_name((amm_error_kind)k), names[k]);
    EXPECT_STREQ(amm_error_name(AMM_ERR_COUNT), "unknown");
    EXPECT_STREQ(amm_error_name((amm_error_kind)-1), "unknown");
}

TEST(abort_mode_aborts_after_printing)
{
    FILE *err = tmpfile();
    pid_t pid;
    int status = 0;
    char out[1024];
    size_t n;
    ASSERT_NOT_NULL(err);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        amm_config cfg;
        amm_manager *m;
        unsigned char *p;
        dup2(fileno(err), STDERR_FILENO);
        amm_config_defaults(&cfg);
        if (amm_config_parse(&cfg, "on_error=abort", NULL, 0) != 0)
            _exit(3);
        m = amm_create(&cfg);
        if (!m)
            _exit(4);
        p = (unsigned char *)amm_alloc(m, 24, 0);
        if (!p)
            _exit(5);
        damage(p, 24, 1, 0);
        amm_free(m, p);
        _exit(6);                           /* not reached when abort works */
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status));
    if (WIFSIGNALED(status))
        EXPECT_EQ(WTERMSIG(status), SIGABRT);
    else
        printf("    child exited with %d\n", WEXITSTATUS(status));
    rewind(err);
    n = fread(out, 1, sizeof out - 1, err);
    out[n] = '\0';
    fclose(err);
    EXPECT_CONTAINS(out, "amm: heap-buffer-overflow: 1 byte");
    EXPECT_CONTAINS(out, "24-byte block");
}

TEST(check_every_finds_damage_by_itself)
{
    h_faults f;
    amm_manager *m = h_new_manager("check_every=4", &f);
    unsigned char *p = (unsigned char *)amm_alloc(m, 24, 0);
    void *q[8];
    ASSERT_NOT_NULL(p);
    damage(p, 24, 1, 0);
    for (int i = 0; i < 8; i++)             /* no amm_check, no free of p */
        q[i] = amm_alloc(m, 8, 0);
    EXPECT_GE(f.count, 1);
    EXPECT_EQ(f.list[0].kind, AMM_ERR_OVERFLOW);
    EXPECT_EQ(f.list[0].block, p);
    EXPECT_EQ(f.kinds[AMM_ERR_OVERFLOW], 1); /* repaired after the first report */
    for (int i = 0; i < 8; i++)
        EXPECT_EQ(amm_free(m, q[i]), 0);
    EXPECT_EQ(amm_free(m, p), 0);
    EXPECT_FAULTS(&f, 1);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

/* A free pool slot is all guard bytes: a write into it is found by amm_check. */
TEST(write_into_free_pool_slot)
{
    h_faults f;
    amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
    amm_pool *pool = amm_pool_create(m, 32, 4, 16);
    amm_pool_info pi;
    unsigned char *p, *never;
    ASSERT_NOT_NULL(pool);
    ASSERT_EQ(amm_pool_info_get(m, pool, &pi), 0);
    p = (unsigned char *)amm_pool_alloc_at(m, pool, 32, 0, __FILE__, __LINE__);
    ASSERT_NOT_NULL(p);
    /* a slot never handed out: the next one, wrapping round */
    never = (unsigned char *)((uintptr_t)pi.base +
                              ((((uintptr_t)p - (uintptr_t)pi.base) / pi.stride + 1) % 4) * pi.stride +
                              ((uintptr_t)p - (uintptr_t)pi.base) % pi.stride);
    EXPECT_EQ(amm_free(m, p), 0);           /* straight back to the free slots */
    write_after_free(p, 3, 1);
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_FAULTS(&f, 1);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(f.last.offset, 3);
    EXPECT_EQ(f.last.bytes, 1);
    EXPECT_EQ(amm_check(m), 0);             /* refilled */
    write_after_free(never, 10, 4);
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_FAULTS(&f, 2);
    EXPECT_EQ(f.last.kind, AMM_ERR_USE_AFTER_FREE);
    EXPECT_EQ(f.last.offset, 10);
    EXPECT_EQ(f.last.bytes, 4);
    EXPECT_EQ(amm_check(m), 0);
    amm_destroy(m);
}

TEST(report_sites_and_operation)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    amm_pool *pool = amm_pool_create(m, 32, 2, 16);
    unsigned char *p, *s;
    int slot_line;
    ASSERT_NOT_NULL(pool);
    p = (unsigned char *)amm_alloc_at(m, 40, 0, AMM_ALLOC_NO_POOL, "alloc_here.c", 111);
    slot_line = __LINE__ + 1;
    s = (unsigned char *)amm_pool_alloc_at(m, pool, 20, 0, __FILE__, __LINE__);
    ASSERT_NOT_NULL(p);
    ASSERT_NOT_NULL(s);
    damage(p, 40, 1, 0);
    EXPECT_EQ(amm_free_at(m, p, "free_here.c", 222), 0);
    EXPECT_FAULTS(&f, 1);
    EXPECT_STREQ(f.last.alloc_site.file, "alloc_here.c");
    EXPECT_EQ(f.last.alloc_site.line, 111);
    EXPECT_STREQ(f.last.op_site.file, "free_here.c");
    EXPECT_EQ(f.last.op_site.line, 222);
    EXPECT_STREQ(f.last.operation, "free");
    damage(s, 20, 2, 1);
    EXPECT_EQ(amm_check(m), 1);
    EXPECT_FAULTS(&f, 2);
    EXPECT_STREQ(f.last.operation, "check");
    ASSERT_NOT_NULL(f.last.alloc_site.file);
    EXPECT_CONTAINS(f.last.alloc_site.file, "test_guard.c");
    EXPECT_EQ(f.last.alloc_site.line, slot_line);
    EXPECT_EQ(f.last.origin, AMM_ORIGIN_POOL);
    EXPECT_EQ(amm_free(m, s), 0);
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

/* Allocates 24 bytes at (afile, aline), overflows them by one, frees at
 * (ffile, fline) and formats the report into line. */
static void overflow_report(amm_manager *m, h_faults *f, const char *afile, int aline, const char *ffile, int fline,
                            char *line, size_t len)
{
    size_t before = f->count;
    unsigned char *p = (unsigned char *)amm_alloc_at(m, 24, 0, AMM_ALLOC_NO_POOL, afile, aline);
    line[0] = '\0';
    ASSERT_NOT_NULL(p);
    damage(p, 24, 1, 0);
    EXPECT_EQ(amm_free_at(m, p, ffile, fline), 0);
    EXPECT_EQ(f->count, before + 1);
    amm_report_format(&f->last, line, len);
}

/* Line 0 means "no line known" (the LD_PRELOAD shim's "module!symbol+0x.."
 * sites): the name alone, no ":0"; any other line prints as FILE:LINE. */
TEST(report_site_with_line_zero_has_no_line)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    char line[512];
    overflow_report(m, &f, "/lib/app!make_it+0x1c", 0, "app!drop_it+0x2a", 0, line, sizeof line);
    EXPECT_CONTAINS(line, " allocated at app!make_it+0x1c (detected in free at app!drop_it+0x2a)");
    EXPECT_TRUE(strstr(line, ":0") == NULL);
    overflow_report(m, &f, "app.c", 7, "app.c", 9, line, sizeof line);
    EXPECT_CONTAINS(line, " allocated at app.c:7 (detected in free at app.c:9)");
    EXPECT_HEALTHY(m);
    amm_destroy(m);
}

TEST(report_format_truncates_like_snprintf)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    char full[512], small[12];
    int n, n_small, n_none;
    long local;
    EXPECT_EQ(amm_free(m, &local), -1);
    ASSERT_EQ(f.count, 1);
    n = amm_report_format(&f.last, full, sizeof full);
    EXPECT_EQ(n, (int)strlen(full));
    memset(small, 'x', sizeof small);
    n_small = amm_report_format(&f.last, small, sizeof small);
    EXPECT_EQ(n_small, n);                  /* the length it would have had */
    EXPECT_EQ(small[sizeof small - 1], '\0');
    EXPECT_EQ(strncmp(small, full, sizeof small - 1), 0);
    n_none = amm_report_format(&f.last, NULL, 0);
    EXPECT_EQ(n_none, n);
    amm_destroy(m);
}

/* Canary bytes are never ASCII or small integers: every such byte written
 * just past (or before) a block is caught, whatever a manager's secret. */
TEST(ascii_and_small_integers_always_caught)
{
    for (int k = 0; k < 24; k++) { /* 24 managers: 24 secrets */
        h_faults f;
        amm_manager *m = h_new_manager("quarantine=0,quarantine_blocks=0", &f);
        size_t caught = 0;
        for (unsigned v = 0; v < 0x80; v++) {
            unsigned char *p = (unsigned char *)amm_alloc(m, 24 + (v & 7), 0);
            ASSERT_NOT_NULL(p);
            unsigned char *at = (v & 1) ? p - 1 : p + 24 + (v & 7); /* before, or just past */
            h_unpoison(at, 1);
            *at = (unsigned char)v;
            EXPECT_EQ(amm_free(m, p), 0);
            caught += f.count > 0 && (f.last.kind == AMM_ERR_OVERFLOW || f.last.kind == AMM_ERR_UNDERFLOW);
            f.count = 0;
        }
        EXPECT_EQ(caught, 0x80);
        EXPECT_HEALTHY(m);
        amm_destroy(m);
    }
}
