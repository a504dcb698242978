/*
 * test_trace_codec.c - the trace record codec and the reader, on streams
 * built byte by byte by trace_build.h (an independent encoder written from
 * docs/trace-format.md): event merging, truncation at every offset, random
 * damage with resync, version rules, pipes and a FOLLOW reader on a growing
 * file.
 *
 * Run one test: ./test_trace_codec <name> [--seed N]; random tests print the seed.
 */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

#include "trace_build.h"
#include "trace_codec.h" /* amm__crc32 */

/* ------------------------------------------------------------------------ */
/* A model of what a stream holds                                           */
/* ------------------------------------------------------------------------ */

typedef struct ex_event {
    uint64_t seq, time_ns;
    tb_rec rec;
    int has_args;
    tb_rec args;
    char text[64];
    int in_snapshot;
} ex_event;

typedef struct ex_list {
    ex_event *ev;
    size_t n, cap;
    uint64_t next_seq;
    size_t *chunk_end_event; /* per chunk: events completed when it ends */
    size_t *chunk_at, *chunk_len;
    size_t chunks, chunk_cap;
    uint64_t dropped;
} ex_list;

static void ex_push(ex_list *l, const ex_event *e) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->ev = realloc(l->ev, l->cap * sizeof *l->ev);
        if (l->ev == NULL) abort();
    }
    l->ev[l->n++] = *e;
}

static void ex_free(ex_list *l) {
    free(l->ev);
    free(l->chunk_end_event);
    free(l->chunk_at);
    free(l->chunk_len);
    memset(l, 0, sizeof *l);
}

static void ex_chunk_done(ex_list *l, size_t at, size_t len) {
    if (l->chunks == l->chunk_cap) {
        l->chunk_cap = l->chunk_cap ? 2 * l->chunk_cap : 64;
        l->chunk_end_event = realloc(l->chunk_end_event, l->chunk_cap * sizeof(size_t));
        l->chunk_at = realloc(l->chunk_at, l->chunk_cap * sizeof(size_t));
        l->chunk_len = realloc(l->chunk_len, l->chunk_cap * sizeof(size_t));
        if (!l->chunk_end_event || !l->chunk_at || !l->chunk_len) abort();
    }
    l->chunk_end_event[l->chunks] = l->n;
    l->chunk_at[l->chunks] = at;
    l->chunk_len[l->chunks] = len;
    l->chunks++;
}

static const char *const site_names[] = {"a.c", "lib/src/some_rather_long_directory/and_a_file_name.c",
                                         "exactly-twenty-four-ch.c", "x/y/z/w.c"};

/* Adds one random event (its records) to chunk c and the model. */
static void gen_event(h_rng *rng, tb_chunk *c, ex_list *l, int *in_snap) {
    static const uint8_t plain[] = {AMM_TOP_ALLOC, AMM_TOP_FREE, AMM_TOP_RETAIN, AMM_TOP_RELEASE,
                                    AMM_TOP_REGION_MAP, AMM_TOP_QUARANTINE_RELEASE, AMM_TOP_PURGE, AMM_TOP_CHECK};
    static const uint8_t with_args[] = {AMM_TOP_REALLOC, AMM_TOP_COPY, AMM_TOP_MOVE, AMM_TOP_FAULT,
                                        AMM_TOP_SAMPLE, AMM_TOP_POOL_CREATE, AMM_TOP_DEFRAG_END};
    ex_event e;
    memset(&e, 0, sizeof e);
    e.seq = c->first_seq + c->count;
    unsigned kind = (unsigned)h_rand_range(rng, 0, 9);
    tb_rec r = {.align_log2 = (uint8_t)h_rand_range(rng, 0, 20), .thread = (uint16_t)h_rand_range(rng, 1, 9)};
    r.aux_a = (uint32_t)h_rand(rng);
    r.aux_b = (uint32_t)h_rand(rng);
    r.dt_us = (uint32_t)h_rand_range(rng, 0, 50000);
    r.addr = h_rand(rng);
    r.size = h_rand(rng) >> (h_rand(rng) % 64);
    if (kind <= 4) {
        r.op = plain[h_rand(rng) % sizeof plain];
        tb_add(c, &r);
    } else if (kind <= 7) {
        r.op = with_args[h_rand(rng) % sizeof with_args];
        tb_rec a = {.op = AMM_TOP_ARGS, .thread = r.thread, .dt_us = r.dt_us, .addr = h_rand(rng)};
        a.size = h_rand(rng);
        a.aux_a = (uint32_t)h_rand(rng);
        tb_add(c, &r);
        tb_add(c, &a);
        e.has_args = 1;
        e.args = a;
    } else if (kind == 8) {
        const char *name = site_names[h_rand(rng) % 4];
        tb_add_site(c, (uint32_t)h_rand_range(rng, 1, 100), (uint32_t)h_rand_range(rng, 1, 999), name);
        r = (tb_rec){.op = AMM_TOP_SITE};
        const uint8_t *p = c->recs + (size_t)(e.seq - c->first_seq) * 32;
        r.aux_a = (uint32_t)tb_get(p + 4, 4);
        r.aux_b = (uint32_t)tb_get(p + 8, 4);
        r.size = strlen(name);
        snprintf(e.text, sizeof e.text, "%s", name);
    } else {
        r.op = AMM_TOP_DROPPED;
        r.aux_a = (uint32_t)h_rand_range(rng, 1, 1000);
        l->dropped += r.aux_a;
        tb_add(c, &r);
    }
    e.rec = r;
    e.time_ns = c->base_time + (uint64_t)r.dt_us * 1000u;
    e.in_snapshot = *in_snap;
    ex_push(l, &e);
}

/* Adds a snapshot (BEGIN, LIVE+ARGS, END) as the whole of chunk c. */
static void gen_snapshot(h_rng *rng, tb_chunk *c, ex_list *l) {
    ex_event e;
    memset(&e, 0, sizeof e);
    c->flags |= 1u;
    tb_rec r = {.op = AMM_TOP_SNAPSHOT_BEGIN, .aux_a = 2};
    e.seq = c->first_seq + c->count;
    e.rec = r;
    e.time_ns = c->base_time;
    e.in_snapshot = 1;
    tb_add(c, &r);
    ex_push(l, &e);
    for (int i = 0; i < 2; i++) {
        tb_rec live = {.op = AMM_TOP_LIVE, .addr = h_rand(rng), .size = h_rand_range(rng, 0, 4096), .aux_a = 16};
        tb_rec a = {.op = AMM_TOP_ARGS, .aux_a = 1, .aux_b = AMM_BLOCK_LIVE};
        memset(&e, 0, sizeof e);
        e.seq = c->first_seq + c->count;
        e.rec = live;
        e.time_ns = c->base_time;
        e.has_args = 1;
        e.args = a;
        e.in_snapshot = 1;
        tb_add(c, &live);
        tb_add(c, &a);
        ex_push(l, &e);
    }
    tb_rec end = {.op = AMM_TOP_SNAPSHOT_END};
    memset(&e, 0, sizeof e);
    e.seq = c->first_seq + c->count;
    e.rec = end;
    e.time_ns = c->base_time;
    e.in_snapshot = 1;
    tb_add(c, &end);
    ex_push(l, &e);
}

/* A stream of nchunks chunks with random events (a snapshot in chunk 0 and every 7th). */
static void gen_stream(uint64_t seed, int nchunks, int max_events, tb_buf *b, ex_list *l) {
    h_rng rng = h_rng_make(seed);
    static tb_chunk c;
    tb_header(b, AMM_TRACE_MAJOR, AMM_TRACE_MINOR, 64);
    uint64_t seq = 0, t = 0;
    for (int k = 0; k < nchunks; k++) {
        int in_snap = 0;
        tb_chunk_begin(&c, seq, t);
        if (k % 7 == 0) gen_snapshot(&rng, &c, l);
        int events = (int)h_rand_range(&rng, 1, (uint64_t)max_events);
        for (int i = 0; i < events; i++) gen_event(&rng, &c, l, &in_snap);
        size_t at = tb_chunk_end(b, &c);
        ex_chunk_done(l, at, b->len - at);
        seq += c.count;
        t += h_rand_range(&rng, 1, 100000000);
    }
}

static int same_rec(const amm_trace_record *a, const tb_rec *b) {
    return a->op == b->op && a->align_log2 == b->align_log2 && a->thread == b->thread && a->aux_a == b->aux_a &&
           a->aux_b == b->aux_b && a->dt_us == b->dt_us && a->addr == b->addr && a->size == b->size;
}

static int same_event(const amm_trace_event *got, const ex_event *want) {
    return got->seq == want->seq && got->time_ns == want->time_ns && same_rec(&got->rec, &want->rec) &&
           got->has_args == want->has_args && (!want->has_args || same_rec(&got->args, &want->args)) &&
           strcmp(got->text, want->text) == 0 && got->in_snapshot == want->in_snapshot;
}

static void print_event(const char *what, const amm_trace_event *e) {
    printf("    %s: #%llu %s addr=0x%llx size=%llu a=%u b=%u args=%d text=\"%s\" snap=%d\n", what,
           (unsigned long long)e->seq, amm_trace_op_name(e->rec.op), (unsigned long long)e->rec.addr,
           (unsigned long long)e->rec.size, e->rec.aux_a, e->rec.aux_b, e->has_args, e->text, e->in_snapshot);
}

/* Reads everything; counts statuses.  Returns the events yielded (caller frees). */
typedef struct read_result {
    amm_trace_event *ev;
    size_t n;
    int damaged, fatal, calls;
    uint64_t first_damage_offset;
    char last_err[256];
} read_result;

static read_result read_all(amm_trace_reader *r) {
    read_result res;
    memset(&res, 0, sizeof res);
    res.first_damage_offset = UINT64_MAX;
    size_t cap = 0;
    amm_trace_event e;
    for (;;) {
        amm_trace_status st = amm_trace_next(r, &e);
        if (++res.calls > 1000000) break; /* cannot happen: a reader that never ends fails below */
        if (st == AMM_TRACE_OK) {
            if (res.n == cap) {
                cap = cap ? 2 * cap : 256;
                res.ev = realloc(res.ev, cap * sizeof e);
                if (res.ev == NULL) abort();
            }
            res.ev[res.n++] = e;
        } else if (st == AMM_TRACE_DAMAGED) {
            unsigned long long off;
            if (res.damaged++ == 0 && sscanf(amm_trace_error(r), "offset %llu", &off) == 1)
                res.first_damage_offset = off;
        } else {
            res.fatal = st == AMM_TRACE_FATAL;
            break;
        }
    }
    snprintf(res.last_err, sizeof res.last_err, "%s", amm_trace_error(r));
    return res;
}

/* ------------------------------------------------------------------------ */
/* Codec                                                                    */
/* ------------------------------------------------------------------------ */

TEST(record_encode_decode) {
    h_rng rng = h_rng_make(h_seed());
    for (int i = 0; i < 1000; i++) {
        amm_trace_record a = {(uint8_t)h_rand(&rng), (uint8_t)h_rand(&rng), (uint16_t)h_rand(&rng),
                              (uint32_t)h_rand(&rng), (uint32_t)h_rand(&rng), (uint32_t)h_rand(&rng),
                              h_rand(&rng), h_rand(&rng)};
        uint8_t bytes[32], ref[32];
        amm_trace_record b;
        amm_trace_record_encode(&a, bytes);
        tb_rec t = {a.op, a.align_log2, a.thread, a.aux_a, a.aux_b, a.dt_us, a.addr, a.size};
        tb_rec_bytes(&t, ref);
        ASSERT_EQ(memcmp(bytes, ref, 32), 0);
        amm_trace_record_decode(bytes, &b);
        ASSERT_EQ(memcmp(&a, &b, sizeof a), 0);
    }
}

TEST(record_layout_is_little_endian) {
    amm_trace_record a = {.op = 6, .align_log2 = 4, .thread = 0x0102, .aux_a = 0x03040506, .aux_b = 0x0708090A,
                          .dt_us = 0x0B0C0D0E, .addr = 0x1112131415161718ull, .size = 0x2122232425262728ull};
    static const uint8_t want[32] = {6,    4,    0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0A, 0x09, 0x08,
                                     0x07, 0x0E, 0x0D, 0x0C, 0x0B, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13,
                                     0x12, 0x11, 0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21};
    uint8_t got[32];
    amm_trace_record_encode(&a, got);
    for (int i = 0; i < 32; i++) EXPECT_EQ(got[i], want[i]);
}

/* The check value of CRC-32/ISO-HDLC, for the library's table CRC and the tests' bitwise one. */
TEST(crc32_check_value) {
    EXPECT_EQ(amm__crc32(0, "123456789", 9), 0xCBF43926u);
    EXPECT_EQ(tb_crc(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    h_rng rng = h_rng_make(h_seed());
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)h_rand(&rng);
    for (size_t cut = 0; cut <= sizeof buf; cut += 37) /* fed in two pieces, any split */
        EXPECT_EQ(amm__crc32(amm__crc32(0, buf, cut), buf + cut, sizeof buf - cut), tb_crc(0, buf, sizeof buf));
}

TEST(op_names) {
    EXPECT_STREQ(amm_trace_op_name(AMM_TOP_ALLOC), "alloc");
    EXPECT_STREQ(amm_trace_op_name(AMM_TOP_QUARANTINE_RELEASE), "quarantine-release");
    EXPECT_STREQ(amm_trace_op_name(AMM_TOP_COUNT), "unknown");
    EXPECT_STREQ(amm_trace_op_name(255), "unknown");
    for (unsigned i = 0; i < AMM_TOP_COUNT; i++) {
        EXPECT_NE(strcmp(amm_trace_op_name(i), "unknown"), 0);
        for (unsigned j = 0; j < i; j++) EXPECT_NE(strcmp(amm_trace_op_name(i), amm_trace_op_name(j)), 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Reading whole streams                                                    */
/* ------------------------------------------------------------------------ */

static void expect_events(const read_result *res, const ex_list *l, size_t n) {
    ASSERT_GE(res->n, n);
    for (size_t i = 0; i < n; i++) {
        if (!same_event(&res->ev[i], &l->ev[i])) {
            h_fail(__FILE__, __LINE__, "event %zu differs", i);
            print_event("got ", &res->ev[i]);
            return;
        }
    }
}

TEST(stream_events_merge_args_and_strings) {
    tb_buf b = {0};
    ex_list l = {0};
    gen_stream(h_seed(), 20, 60, &b, &l);
    char err[256];
    amm_trace_reader *r = amm_trace_open_mem(b.p, b.len, err, sizeof err);
    ASSERT_NOT_NULL(r);
    const amm_trace_header *h = amm_trace_reader_header(r);
    ASSERT_NOT_NULL(h);
    EXPECT_EQ(h->major, AMM_TRACE_MAJOR);
    EXPECT_EQ(h->canary_bytes, 16u);
    EXPECT_EQ(h->page_size, 4096u);
    EXPECT_EQ(h->pointer_bits, 64u);
    EXPECT_EQ(h->pid, 4242u);
    read_result res = read_all(r);
    EXPECT_EQ(res.n, l.n);
    EXPECT_EQ(res.damaged, 0);
    EXPECT_EQ(res.fatal, 0);
    expect_events(&res, &l, l.n < res.n ? l.n : res.n);
    EXPECT_EQ(amm_trace_dropped(r), l.dropped);
    EXPECT_EQ(amm_trace_offset(r), (uint64_t)b.len);
    EXPECT_EQ(amm_trace_unknown_skipped(r), 0u);
    EXPECT_STREQ(amm_trace_error(r), "");
    amm_trace_close(r);
    free(res.ev);
    ex_free(&l);
    free(b.p);
}

/* Every prefix of a stream reads as a prefix of its events, never an error. */
TEST(truncation_at_every_offset) {
    tb_buf b = {0};
    ex_list l = {0};
    gen_stream(h_seed(), 4, 12, &b, &l);
    size_t prev = 0;
    for (size_t len = 0; len <= b.len; len++) {
        char err[256] = "";
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan catches a read past the end */
        memcpy(copy, b.p, len);
        amm_trace_reader *r = amm_trace_open_mem(copy, len, err, sizeof err);
        if (len < 64) {
            EXPECT_NULL(r);
            EXPECT_CONTAINS(err, "truncated");
            free(copy);
            amm_trace_close(r);
            continue;
        }
        ASSERT_NOT_NULL(r);
        read_result res = read_all(r);
        EXPECT_EQ(res.damaged, 0);
        EXPECT_EQ(res.fatal, 0);
        expect_events(&res, &l, res.n);
        EXPECT_GE(res.n, prev); /* more bytes never yield fewer events */
        for (size_t k = 0; k < l.chunks; k++)
            if (l.chunk_at[k] + l.chunk_len[k] <= len) EXPECT_GE(res.n, l.chunk_end_event[k]);
        int boundary = len == 64;
        for (size_t k = 0; k < l.chunks; k++) boundary |= len == l.chunk_at[k] + l.chunk_len[k];
        if (!boundary) EXPECT_CONTAINS(res.last_err, "truncated");
        prev = res.n;
        free(res.ev);
        amm_trace_close(r);
        free(copy);
    }
    EXPECT_EQ(prev, l.n);
    ex_free(&l);
    free(b.p);
}

/* Random damage after the header: undamaged chunks all come back, in order, exactly. */
TEST(random_damage_resyncs) {
    uint64_t seed = h_seed();
    printf("random_damage_resyncs: seed %llu\n", (unsigned long long)seed);
    h_rng rng = h_rng_make(seed);
    tb_buf b = {0};
    ex_list l = {0};
    gen_stream(seed, 40, 30, &b, &l);
    for (int iter = 0; iter < 300; iter++) {
        uint8_t *copy = malloc(b.len);
        memcpy(copy, b.p, b.len);
        size_t lo = (size_t)h_rand_range(&rng, 64, b.len - 1), hi = lo + 1;
        int mode = (int)(h_rand(&rng) % 3);
        if (mode == 0) {
            copy[lo] ^= (uint8_t)(1u << (h_rand(&rng) % 8)); /* one bit */
        } else if (mode == 1) {
            hi = lo + (size_t)h_rand_range(&rng, 1, 200);
            if (hi > b.len) hi = b.len;
            for (size_t i = lo; i < hi; i++) copy[i] = (uint8_t)h_rand(&rng); /* random bytes */
        } else {
            hi = lo + (size_t)h_rand_range(&rng, 1, 64);
            if (hi > b.len) hi = b.len;
            for (size_t i = lo; i < hi; i++) copy[i] = "AMMC"[i % 4]; /* fake magics */
        }
        char err[256];
        amm_trace_reader *r = amm_trace_open_mem(copy, b.len, err, sizeof err);
        ASSERT_NOT_NULL(r);
        read_result res = read_all(r);
        EXPECT_EQ(res.fatal, 0);
        EXPECT_LT(res.calls, 1000000);
        /* every untouched chunk's events appear, equal, in order */
        size_t j = 0, ev0 = 0;
        for (size_t k = 0; k < l.chunks; ev0 = l.chunk_end_event[k], k++) {
            int touched = l.chunk_at[k] < hi && lo < l.chunk_at[k] + l.chunk_len[k];
            for (size_t e = ev0; e < l.chunk_end_event[k] && !touched; e++) {
                while (j < res.n && res.ev[j].seq < l.ev[e].seq) j++;
                if (j >= res.n || !same_event(&res.ev[j], &l.ev[e])) {
                    h_fail(__FILE__, __LINE__, "iter %d (mode %d, bytes %zu..%zu): chunk %zu event %zu lost", iter,
                           mode, lo, hi, k, e);
                    goto next;
                }
            }
        }
        /* a damaged chunk that is not the last one is reported at its own offset */
        for (size_t k = 0; k + 1 < l.chunks; k++) {
            if (l.chunk_at[k] <= lo && lo < l.chunk_at[k] + l.chunk_len[k] && mode == 0) {
                EXPECT_GE(res.damaged, 1);
                EXPECT_EQ(res.first_damage_offset, (uint64_t)l.chunk_at[k]);
            }
        }
    next:
        free(res.ev);
        amm_trace_close(r);
        free(copy);
    }
    ex_free(&l);
    free(b.p);
}

/* A megabyte of noise after a valid header: the reader ends, skipping it all. */
TEST(garbage_after_header_ends) {
    h_rng rng = h_rng_make(h_seed());
    tb_buf b = {0};
    tb_header(&b, AMM_TRACE_MAJOR, AMM_TRACE_MINOR, 64);
    for (int i = 0; i < (1 << 20); i++) {
        uint8_t x = (uint8_t)h_rand(&rng);
        if (i % 97 == 0) tb_bytes(&b, "AMMC", 4);
        tb_bytes(&b, &x, 1);
    }
    char err[256];
    amm_trace_reader *r = amm_trace_open_mem(b.p, b.len, err, sizeof err);
    ASSERT_NOT_NULL(r);
    read_result res = read_all(r);
    EXPECT_EQ(res.n, 0u);
    EXPECT_EQ(res.damaged, 1);
    EXPECT_EQ(res.first_damage_offset, 64u);
    EXPECT_EQ(amm_trace_bytes_skipped(r), (uint64_t)(b.len - 64));
    free(res.ev);
    amm_trace_close(r);
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* Versions                                                                 */
/* ------------------------------------------------------------------------ */

TEST(unknown_minor_op_skipped) {
    tb_buf b = {0};
    static tb_chunk c;
    tb_header(&b, AMM_TRACE_MAJOR, AMM_TRACE_MINOR + 7, 80); /* a newer minor with a longer header */
    tb_chunk_begin(&c, 0, 0);
    tb_rec future = {.op = 200, .addr = 1};
    tb_rec future_args = {.op = AMM_TOP_ARGS, .addr = 2};
    tb_rec alloc = {.op = AMM_TOP_ALLOC, .addr = 0x1000, .size = 24, .align_log2 = 4};
    tb_add(&c, &future);
    tb_add(&c, &future_args);
    tb_add(&c, &alloc);
    tb_chunk_end(&b, &c);
    char err[256];
    amm_trace_reader *r = amm_trace_open_mem(b.p, b.len, err, sizeof err);
    ASSERT_NOT_NULL(r);
    EXPECT_EQ(amm_trace_reader_header(r)->minor, AMM_TRACE_MINOR + 7);
    EXPECT_EQ(amm_trace_reader_header(r)->header_size, 80u);
    amm_trace_event e;
    ASSERT_EQ(amm_trace_next(r, &e), AMM_TRACE_OK);
    EXPECT_EQ(e.rec.op, AMM_TOP_ALLOC);
    EXPECT_EQ(e.seq, 2u);
    EXPECT_EQ(e.rec.addr, 0x1000u);
    EXPECT_EQ(e.has_args, 0);
    EXPECT_EQ(amm_trace_next(r, &e), AMM_TRACE_END);
    EXPECT_EQ(amm_trace_unknown_skipped(r), 2u);
    amm_trace_close(r);
    free(b.p);
}

TEST(unknown_major_refused) {
    tb_buf b = {0};
    static tb_chunk c;
    tb_header(&b, AMM_TRACE_MAJOR + 1, 0, 64);
    tb_chunk_begin(&c, 0, 0);
    tb_chunk_end(&b, &c);
    char err[256] = "";
    amm_trace_reader *r = amm_trace_open_mem(b.p, b.len, err, sizeof err);
    EXPECT_NULL(r);
    EXPECT_CONTAINS(err, "version 2.0 is not supported");
    EXPECT_CONTAINS(err, "major version 1");
    amm_trace_close(r);
    free(b.p);
}

TEST(bad_headers_refused) {
    char err[256] = "";
    EXPECT_NULL(amm_trace_open_mem("", 0, err, sizeof err));
    EXPECT_CONTAINS(err, "truncated file header");
    static const char junk[100] = "this is not a trace at all";
    EXPECT_NULL(amm_trace_open_mem(junk, sizeof junk, err, sizeof err));
    EXPECT_CONTAINS(err, "not an amm trace");
    tb_buf b = {0};
    tb_header(&b, AMM_TRACE_MAJOR, 0, 64);
    b.p[20] ^= 1; /* page size changed: the header CRC fails */
    EXPECT_NULL(amm_trace_open_mem(b.p, b.len, err, sizeof err));
    EXPECT_CONTAINS(err, "offset 60: header CRC mismatch");
    EXPECT_NULL(amm_trace_open_file("/nonexistent/dir/x.amt", 0, err, sizeof err));
    EXPECT_CONTAINS(err, "/nonexistent/dir/x.amt");
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* Pipes and growing files                                                  */
/* ------------------------------------------------------------------------ */

typedef struct dribble {
    int fd;
    const uint8_t *p;
    size_t len;
} dribble;

/* Writes the stream in 7-byte pieces, so reads see every kind of split. */
static void *dribble_main(void *arg) {
    dribble *d = arg;
    for (size_t off = 0; off < d->len; off += 7) {
        size_t n = d->len - off < 7 ? d->len - off : 7;
        if (write(d->fd, d->p + off, n) != (ssize_t)n) break;
    }
    close(d->fd);
    return NULL;
}

TEST(pipe_reader_in_small_pieces) {
    tb_buf b = {0};
    ex_list l = {0};
    gen_stream(h_seed(), 12, 40, &b, &l);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    dribble d = {fds[1], b.p, b.len};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, dribble_main, &d), 0);
    char err[256];
    amm_trace_reader *r = amm_trace_open_fd(fds[0], 1, 0, err, sizeof err);
    EXPECT_NOT_NULL(r);
    if (r != NULL) {
        read_result res = read_all(r);
        EXPECT_EQ(res.n, l.n);
        EXPECT_EQ(res.damaged, 0);
        expect_events(&res, &l, l.n);
        free(res.ev);
        amm_trace_close(r);
    }
    pthread_join(th, NULL);
    ex_free(&l);
    free(b.p);
}

static void append(int fd, const uint8_t *p, size_t n) {
    ASSERT_EQ(write(fd, p, n), (ssize_t)n);
}

/* FOLLOW: AGAIN while the file has not grown, events as soon as whole chunks land. */
TEST(follow_growing_file) {
    tb_buf b = {0};
    ex_list l = {0};
    gen_stream(h_seed(), 3, 10, &b, &l);
    char path[] = "/tmp/amm_trace_follow_XXXXXX";
    int wfd = mkstemp(path);
    ASSERT_GE(wfd, 0);
    char err[256];
    amm_trace_reader *r = amm_trace_open_file(path, AMM_TRACE_FOLLOW, err, sizeof err);
    ASSERT_NOT_NULL(r); /* an empty file: the header is awaited */
    amm_trace_event e;
    EXPECT_NULL(amm_trace_reader_header(r));
    EXPECT_EQ(amm_trace_next(r, &e), AMM_TRACE_AGAIN);
    append(wfd, b.p, 40); /* part of the header */
    EXPECT_EQ(amm_trace_next(r, &e), AMM_TRACE_AGAIN);
    size_t done = 0;
    append(wfd, b.p + 40, l.chunk_at[0] - 40);
    for (size_t k = 0; k < l.chunks; k++) {
        size_t half = l.chunk_len[k] / 2;
        append(wfd, b.p + l.chunk_at[k], half);
        EXPECT_EQ(amm_trace_next(r, &e), AMM_TRACE_AGAIN); /* half a chunk is not yielded */
        append(wfd, b.p + l.chunk_at[k] + half, l.chunk_len[k] - half);
        for (; done < l.chunk_end_event[k]; done++) {
            ASSERT_EQ(amm_trace_next(r, &e), AMM_TRACE_OK);
            EXPECT_TRUE(same_event(&e, &l.ev[done]));
        }
        EXPECT_EQ(amm_trace_next(r, &e), AMM_TRACE_AGAIN);
    }
    EXPECT_NOT_NULL(amm_trace_reader_header(r));
    EXPECT_EQ(done, l.n);
    amm_trace_close(r);
    close(wfd);
    unlink(path);
    ex_free(&l);
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* The specification and the header agree                                  */
/* ------------------------------------------------------------------------ */

/* Every "| N | name ..." row of the op table in docs/trace-format.md names op N. */
TEST(doc_op_table_matches_the_header) {
    FILE *f = fopen(AMM_TRACE_DOC, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int in_table = 0;
    unsigned rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "### Op table", 12) == 0) in_table = 1;
        else if (strncmp(line, "## ", 3) == 0) in_table = 0;
        unsigned op;
        char name[64];
        if (!in_table || sscanf(line, "| %u | %63[a-z-]", &op, name) != 2) continue;
        EXPECT_EQ(op, rows);
        EXPECT_STREQ(name, amm_trace_op_name(op));
        rows++;
    }
    fclose(f);
    EXPECT_EQ(rows, (unsigned)AMM_TOP_COUNT);
}
