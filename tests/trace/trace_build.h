/*
 * trace_build.h - builds trace streams byte by byte for the trace tests.
 *
 * This is a second, deliberately naive implementation of the format written
 * from docs/trace-format.md (bitwise CRC-32, explicit offsets), so the tests
 * check the reader against the document and not against the library's own
 * writer.  Include after harness.h.
 */
#ifndef AMM_TESTS_TRACE_BUILD_H
#define AMM_TESTS_TRACE_BUILD_H

#include <amm/trace.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A growing byte buffer (test memory: plain malloc). */
typedef struct tb_buf {
    uint8_t *p;
    size_t len, cap;
} tb_buf;

static inline void tb_bytes(tb_buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (np == NULL) abort();
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void tb_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t tb_get(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* CRC-32/ISO-HDLC, bit by bit. */
static inline uint32_t tb_crc(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* The 64-byte file header with the given version and header size field. */
static inline void tb_header(tb_buf *b, unsigned major, unsigned minor, unsigned header_size) {
    uint8_t h[64] = {0};
    memcpy(h, "AMMTRACE", 8);
    tb_le(h + 8, major, 2);
    tb_le(h + 10, minor, 2);
    tb_le(h + 12, header_size, 2);
    tb_le(h + 14, 32, 2);
    tb_le(h + 16, 16, 4);     /* canary bytes */
    tb_le(h + 20, 4096, 4);   /* page size */
    h[24] = 64;               /* pointer bits */
    h[25] = 1;                /* little-endian */
    tb_le(h + 26, 32, 2);     /* chunk header size */
    tb_le(h + 28, 1024, 2);   /* max records per chunk */
    tb_le(h + 32, 4242, 4);   /* pid */
    tb_le(h + 40, 1700000000000000000ull, 8);
    tb_le(h + 60, tb_crc(0, h, 60), 4);
    tb_bytes(b, h, sizeof h);
    for (unsigned i = 64; i < header_size; i++) tb_bytes(b, "x", 1); /* a newer minor's extra header bytes */
}

/* One 32-byte record. */
typedef struct tb_rec {
    uint8_t op, align_log2;
    uint16_t thread;
    uint32_t aux_a, aux_b, dt_us;
    uint64_t addr, size;
} tb_rec;

static inline void tb_rec_bytes(const tb_rec *r, uint8_t out[32]) {
    out[0] = r->op;
    out[1] = r->align_log2;
    tb_le(out + 2, r->thread, 2);
    tb_le(out + 4, r->aux_a, 4);
    tb_le(out + 8, r->aux_b, 4);
    tb_le(out + 12, r->dt_us, 4);
    tb_le(out + 16, r->addr, 8);
    tb_le(out + 24, r->size, 8);
}

/* A chunk being assembled: records go in raw, tb_chunk_end frames them. */
typedef struct tb_chunk {
    uint8_t recs[1024 * 32];
    unsigned count;
    uint16_t flags;
    uint64_t first_seq, base_time;
    uint32_t dropped_before;
} tb_chunk;

static inline void tb_chunk_begin(tb_chunk *c, uint64_t first_seq, uint64_t base_time) {
    memset(c, 0, sizeof *c);
    c->first_seq = first_seq;
    c->base_time = base_time;
}

static inline void tb_add(tb_chunk *c, const tb_rec *r) {
    if (c->count >= 1024) abort();
    tb_rec_bytes(r, c->recs + (size_t)c->count * 32);
    c->count++;
}

/* A SITE record and the STRING records carrying name. */
static inline void tb_add_site(tb_chunk *c, uint32_t id, uint32_t line, const char *name) {
    size_t len = strlen(name);
    tb_rec site = {.op = AMM_TOP_SITE, .aux_a = id, .aux_b = line, .size = len};
    tb_add(c, &site);
    for (size_t off = 0; off < len; off += 24) {
        uint8_t *q = c->recs + (size_t)c->count * 32;
        memset(q, 0, 32);
        q[0] = AMM_TOP_STRING;
        memcpy(q + 8, name + off, len - off < 24 ? len - off : 24);
        c->count++;
    }
}

/* Appends the framed chunk to b; returns its offset in b. */
static inline size_t tb_chunk_end(tb_buf *b, const tb_chunk *c) {
    uint8_t h[32] = {0};
    memcpy(h, "AMMC", 4);
    tb_le(h + 4, c->count, 2);
    tb_le(h + 6, c->flags, 2);
    tb_le(h + 8, c->first_seq, 8);
    tb_le(h + 16, c->base_time, 8);
    tb_le(h + 24, c->dropped_before, 4);
    uint32_t crc = tb_crc(0, h, 28);
    crc = tb_crc(crc, c->recs, (size_t)c->count * 32);
    tb_le(h + 28, crc, 4);
    size_t at = b->len;
    tb_bytes(b, h, 32);
    tb_bytes(b, c->recs, (size_t)c->count * 32);
    return at;
}

#endif /* AMM_TESTS_TRACE_BUILD_H */
