/*
 * trace_codec.h - byte-level layout of the trace stream, shared by
 * trace_writer.c and trace_reader.c.  Library-private (not installed).
 *
 * The layouts below are the ones docs/trace-format.md specifies; the offsets
 * are named here once so the writer and the reader cannot drift.  Every
 * multi-byte integer is little-endian and is read and written byte by byte
 * through the helpers below (never by memcpy of a struct).
 *
 * File header (64 bytes):
 *   0  8  magic "AMMTRACE"        26 2  chunk header size (32)
 *   8  2  major                   28 2  max records per chunk (1024)
 *   10 2  minor                   30 2  reserved (0)
 *   12 2  header size (64)        32 4  pid
 *   14 2  record size (32)        36 4  reserved (0)
 *   16 4  canary bytes            40 8  start time, ns since the epoch (CLOCK_REALTIME)
 *   20 4  page size               48 12 reserved (0)
 *   24 1  pointer bits            60 4  CRC-32 of bytes 0..59
 *   25 1  endianness (1 = little)
 *
 * Chunk header (32 bytes), followed by count records of 32 bytes:
 *   0 4 "AMMC"   4 2 count   6 2 flags   8 8 first_seq   16 8 base_time_ns
 *   24 4 dropped_before   28 4 CRC-32 of header bytes 0..27 then the records
 */
#ifndef AMM_TRACE_CODEC_H
#define AMM_TRACE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "amm/trace.h"

enum {
    AMM__TH_MAGIC = 0,
    AMM__TH_MAJOR = 8,
    AMM__TH_MINOR = 10,
    AMM__TH_HEADER_SIZE = 12,
    AMM__TH_RECORD_SIZE = 14,
    AMM__TH_CANARY = 16,
    AMM__TH_PAGE = 20,
    AMM__TH_PTR_BITS = 24,
    AMM__TH_ENDIAN = 25,
    AMM__TH_CHUNK_HEADER_SIZE = 26,
    AMM__TH_MAX_CHUNK = 28,
    AMM__TH_PID = 32,
    AMM__TH_START = 40,
    AMM__TH_CRC = 60
};

enum {
    AMM__CH_MAGIC = 0,
    AMM__CH_COUNT = 4,
    AMM__CH_FLAGS = 6,
    AMM__CH_FIRST_SEQ = 8,
    AMM__CH_BASE_TIME = 16,
    AMM__CH_DROPPED = 24,
    AMM__CH_CRC = 28
};

#define AMM__CHUNK_SNAPSHOT 0x1u /* chunk flag: a SNAPSHOT_BEGIN record is in this chunk */
#define AMM__TRACE_LITTLE_ENDIAN 1u
#define AMM__STRING_BYTES 24      /* text bytes carried by one STRING record (bytes 8..31) */
#define AMM__CHUNK_BYTES (AMM_TRACE_CHUNK_HEADER_SIZE + AMM_TRACE_MAX_CHUNK_RECORDS * AMM_TRACE_RECORD_SIZE)

_Static_assert(AMM__TH_CRC + 4 == AMM_TRACE_HEADER_SIZE, "the header CRC ends the 64-byte header");
_Static_assert(AMM__CH_CRC + 4 == AMM_TRACE_CHUNK_HEADER_SIZE, "the chunk CRC ends the chunk header");
_Static_assert(AMM_TRACE_MAX_CHUNK_RECORDS <= 0xFFFF, "count is a u16");
_Static_assert(AMM__STRING_BYTES + 8 == AMM_TRACE_RECORD_SIZE, "STRING text fills bytes 8..31");

static inline void amm__put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void amm__put32(uint8_t *p, uint32_t v) {
    amm__put16(p, (uint16_t)v);
    amm__put16(p + 2, (uint16_t)(v >> 16));
}
static inline void amm__put64(uint8_t *p, uint64_t v) {
    amm__put32(p, (uint32_t)v);
    amm__put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t amm__get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t amm__get32(const uint8_t *p) {
    return (uint32_t)amm__get16(p) | ((uint32_t)amm__get16(p + 2) << 16);
}
static inline uint64_t amm__get64(const uint8_t *p) {
    return (uint64_t)amm__get32(p) | ((uint64_t)amm__get32(p + 4) << 32);
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, the zlib one).
 * Start with crc = 0; feed pieces by passing the previous result.  O(n). */
uint32_t amm__crc32(uint32_t crc, const void *data, size_t n);

/* Whether op is followed by an ARGS record (the X-macro's third column). */
int amm__trace_op_has_args(unsigned op);

#endif /* AMM_TRACE_CODEC_H */
