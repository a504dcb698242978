/*
 * trace_reader.c - record codec, CRC-32 and the trace reader.
 *
 * The reader turns a byte stream (memory, a file, a pipe or a socket) into
 * events.  Its algorithm, with the bound it keeps:
 *
 *  - It holds at most two chunks of input (2 x 32,800 bytes) whatever the
 *    input: a chunk is read whole into the buffer, its CRC-32 checked, then
 *    its records are decoded one by one straight from the buffer.  Nothing
 *    else grows with the input.
 *  - A chunk that fails its checks (magic, record count, CRC) is reported as
 *    AMM_TRACE_DAMAGED with its byte offset; the next call resynchronises by
 *    scanning forward byte by byte for "AMMC" followed by a chunk whose CRC
 *    holds.  Candidates that fail are skipped silently (counted in
 *    amm_trace_bytes_skipped).
 *  - At the end of a non-growing stream, an incomplete chunk is yielded up
 *    to its last whole record (it cannot be CRC-checked, so only when it is
 *    in sequence with the chunk before it and no valid chunk follows it) and
 *    amm_trace_error says so.  In FOLLOW mode (a regular file that grows), an
 *    incomplete chunk means "not written yet": AMM_TRACE_AGAIN.
 *  - ARGS records are merged into the record they extend, STRING records
 *    into their SITE; unknown ops and orphan continuation records are skipped
 *    and counted.
 *
 * The format itself is specified in docs/trace-format.md; the offsets are
 * named in trace_codec.h.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amm/trace.h"
#include "trace_codec.h"

/* ------------------------------------------------------------------------ */
/* Op table, record codec, CRC                                              */
/* ------------------------------------------------------------------------ */

static const char *const op_names[AMM_TOP_COUNT] = {
#define AMM__X(e, name, has_args, doc) name,
    AMM_TRACE_OPS(AMM__X)
#undef AMM__X
};

static const unsigned char op_args[AMM_TOP_COUNT] = {
#define AMM__X(e, name, has_args, doc) has_args,
    AMM_TRACE_OPS(AMM__X)
#undef AMM__X
};

_Static_assert(AMM_TOP_COUNT <= 256, "op is one byte");

const char *amm_trace_op_name(unsigned op) { return op < AMM_TOP_COUNT ? op_names[op] : "unknown"; }

int amm__trace_op_has_args(unsigned op) { return op < AMM_TOP_COUNT && op_args[op]; }

void amm_trace_record_encode(const amm_trace_record *rec, uint8_t out[AMM_TRACE_RECORD_SIZE]) {
    out[0] = rec->op;
    out[1] = rec->align_log2;
    amm__put16(out + 2, rec->thread);
    amm__put32(out + 4, rec->aux_a);
    amm__put32(out + 8, rec->aux_b);
    amm__put32(out + 12, rec->dt_us);
    amm__put64(out + 16, rec->addr);
    amm__put64(out + 24, rec->size);
}

void amm_trace_record_decode(const uint8_t in[AMM_TRACE_RECORD_SIZE], amm_trace_record *rec) {
    rec->op = in[0];
    rec->align_log2 = in[1];
    rec->thread = amm__get16(in + 2);
    rec->aux_a = amm__get32(in + 4);
    rec->aux_b = amm__get32(in + 8);
    rec->dt_us = amm__get32(in + 12);
    rec->addr = amm__get64(in + 16);
    rec->size = amm__get64(in + 24);
}

/* Slicing-by-8 tables: crc_tab[0] is the classic byte table, crc_tab[k]
 * advances a byte through k further zero bytes. */
static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xFFu];
}

uint32_t amm__crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t a = crc ^ amm__get32(p), b = amm__get32(p + 4);
        crc = crc_tab[7][a & 0xFFu] ^ crc_tab[6][(a >> 8) & 0xFFu] ^ crc_tab[5][(a >> 16) & 0xFFu] ^
              crc_tab[4][a >> 24] ^ crc_tab[3][b & 0xFFu] ^ crc_tab[2][(b >> 8) & 0xFFu] ^
              crc_tab[1][(b >> 16) & 0xFFu] ^ crc_tab[0][b >> 24];
    }
    while (n--) crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xFFu];
    return ~crc;
}

/* ------------------------------------------------------------------------ */
/* Reader state                                                             */
/* ------------------------------------------------------------------------ */

#define READER_BUF (2 * (size_t)AMM__CHUNK_BYTES)

typedef enum fill_result { FILL_OK, FILL_EOF, FILL_AGAIN, FILL_ERROR } fill_result;

struct amm_trace_reader {
    int fd;                  /* -1 for memory */
    int own_fd;
    int follow;              /* FOLLOW asked and the fd is a regular file */
    int fatal;               /* a FATAL was returned: every later call returns it */
    const uint8_t *data;     /* memory: the caller's bytes; fd: buf */
    size_t start, end;       /* unconsumed bytes are data[start, end) */
    size_t cap;              /* fd: READER_BUF */
    uint64_t base_off;       /* stream offset of data[0] */
    int have_header;
    amm_trace_header hdr;
    uint64_t header_skip;    /* bytes of a longer (newer minor) header still to skip */

    /* the chunk being yielded (its bytes stay in the buffer until it is done) */
    const uint8_t *recs;
    unsigned count, idx;
    uint64_t first_seq, base_time;

    int resyncing;           /* after damage: scanning for the next valid chunk */
    int seq_known;           /* the last chunk was verified: next_seq is trustworthy */
    uint64_t next_seq;
    int in_snapshot;

    uint64_t unknown, skipped, dropped;
    char err[256];
    uint8_t buf[];           /* fd readers only */
};

static void set_err(amm_trace_reader *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

static uint64_t cur_offset(const amm_trace_reader *r) { return r->base_off + r->start; }
static size_t avail(const amm_trace_reader *r) { return r->end - r->start; }

/* Makes at least need (<= cap) bytes available at data + start. */
static fill_result fill(amm_trace_reader *r, size_t need) {
    if (avail(r) >= need) return FILL_OK;
    if (r->fd < 0) return FILL_EOF;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, avail(r));
        r->base_off += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    while (r->end < need) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
        } else if (n == 0) {
            return r->follow ? FILL_AGAIN : FILL_EOF;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return FILL_AGAIN;
        } else if (errno != EINTR) {
            set_err(r, "offset %llu: read error: %s", (unsigned long long)(r->base_off + r->end), strerror(errno));
            return FILL_ERROR;
        }
    }
    return FILL_OK;
}

static amm_trace_status fatal(amm_trace_reader *r) {
    r->fatal = 1;
    return AMM_TRACE_FATAL;
}

/* ------------------------------------------------------------------------ */
/* File header                                                              */
/* ------------------------------------------------------------------------ */

static amm_trace_status check_header(amm_trace_reader *r, const uint8_t *p) {
    if (memcmp(p + AMM__TH_MAGIC, AMM_TRACE_MAGIC, 8) != 0) {
        set_err(r, "offset 0: not an amm trace (the magic \"AMMTRACE\" is missing)");
        return fatal(r);
    }
    unsigned major = amm__get16(p + AMM__TH_MAJOR), minor = amm__get16(p + AMM__TH_MINOR);
    if (major != AMM_TRACE_MAJOR) {
        set_err(r, "offset 8: trace format version %u.%u is not supported: this reader reads major version %u only",
                major, minor, (unsigned)AMM_TRACE_MAJOR);
        return fatal(r);
    }
    uint32_t want = amm__get32(p + AMM__TH_CRC), got = amm__crc32(0, p, AMM__TH_CRC);
    if (want != got) {
        set_err(r, "offset 60: header CRC mismatch (stored 0x%08x, computed 0x%08x): damaged header", want, got);
        return fatal(r);
    }
    unsigned hsize = amm__get16(p + AMM__TH_HEADER_SIZE), rsize = amm__get16(p + AMM__TH_RECORD_SIZE);
    unsigned csize = amm__get16(p + AMM__TH_CHUNK_HEADER_SIZE), endian = p[AMM__TH_ENDIAN];
    if (hsize < AMM_TRACE_HEADER_SIZE || rsize != AMM_TRACE_RECORD_SIZE || csize != AMM_TRACE_CHUNK_HEADER_SIZE ||
        endian != AMM__TRACE_LITTLE_ENDIAN) {
        set_err(r, "offset 12: unsupported layout (header %u, record %u, chunk header %u bytes, endianness %u)", hsize,
                rsize, csize, endian);
        return fatal(r);
    }
    amm_trace_header *h = &r->hdr;
    h->major = (uint16_t)major;
    h->minor = (uint16_t)minor;
    h->header_size = (uint16_t)hsize;
    h->record_size = (uint16_t)rsize;
    h->canary_bytes = amm__get32(p + AMM__TH_CANARY);
    h->page_size = amm__get32(p + AMM__TH_PAGE);
    h->pointer_bits = p[AMM__TH_PTR_BITS];
    h->pid = amm__get32(p + AMM__TH_PID);
    h->start_time_ns = amm__get64(p + AMM__TH_START);
    r->header_skip = hsize - AMM_TRACE_HEADER_SIZE;
    return AMM_TRACE_OK;
}

static amm_trace_status read_header(amm_trace_reader *r) {
    fill_result f = fill(r, AMM_TRACE_HEADER_SIZE);
    if (f == FILL_AGAIN) return AMM_TRACE_AGAIN;
    if (f == FILL_ERROR) return fatal(r);
    if (f == FILL_EOF) {
        if (avail(r) >= 8 && memcmp(r->data + r->start, AMM_TRACE_MAGIC, 8) != 0)
            set_err(r, "offset 0: not an amm trace (the magic \"AMMTRACE\" is missing)");
        else
            set_err(r, "offset %zu: truncated file header (%zu of %d bytes)", avail(r), avail(r), AMM_TRACE_HEADER_SIZE);
        return fatal(r);
    }
    amm_trace_status st = check_header(r, r->data + r->start);
    if (st != AMM_TRACE_OK) return st;
    r->start += AMM_TRACE_HEADER_SIZE;
    r->have_header = 1;
    r->seq_known = 1; /* the first chunk starts at sequence 0 */
    r->next_seq = 0;
    return AMM_TRACE_OK;
}

/* Skips the part of a longer header this reader does not know. */
static amm_trace_status skip_header_rest(amm_trace_reader *r) {
    while (r->header_skip > 0) {
        size_t n = avail(r) < r->header_skip ? avail(r) : (size_t)r->header_skip;
        r->start += n;
        r->header_skip -= n;
        if (r->header_skip == 0) break;
        fill_result f = fill(r, 1);
        if (f == FILL_AGAIN) return AMM_TRACE_AGAIN;
        if (f == FILL_ERROR) return fatal(r);
        if (f == FILL_EOF) return AMM_TRACE_END;
    }
    return AMM_TRACE_OK;
}

/* ------------------------------------------------------------------------ */
/* Chunks                                                                   */
/* ------------------------------------------------------------------------ */

static size_t chunk_bytes(unsigned count) { return AMM_TRACE_CHUNK_HEADER_SIZE + (size_t)count * AMM_TRACE_RECORD_SIZE; }

/* The chunk's size if p[0, n) holds a whole chunk whose CRC holds, else 0. */
static size_t valid_chunk_at(const uint8_t *p, size_t n) {
    if (n < AMM_TRACE_CHUNK_HEADER_SIZE || memcmp(p, AMM_TRACE_CHUNK_MAGIC, 4) != 0) return 0;
    unsigned count = amm__get16(p + AMM__CH_COUNT);
    size_t total = chunk_bytes(count);
    if (count > AMM_TRACE_MAX_CHUNK_RECORDS || total > n) return 0;
    uint32_t crc = amm__crc32(0, p, AMM__CH_CRC);
    crc = amm__crc32(crc, p + AMM_TRACE_CHUNK_HEADER_SIZE, total - AMM_TRACE_CHUNK_HEADER_SIZE);
    return crc == amm__get32(p + AMM__CH_CRC) ? total : 0;
}

static int valid_chunk_after(const amm_trace_reader *r, size_t from) {
    for (size_t i = from; i + AMM_TRACE_CHUNK_HEADER_SIZE <= r->end; i++)
        if (r->data[i] == 'A' && valid_chunk_at(r->data + i, r->end - i)) return 1;
    return 0;
}

/* Reports damage at the current offset and arms the resync scan. */
static amm_trace_status damaged(amm_trace_reader *r, const char *what) {
    set_err(r, "offset %llu: %s; resynchronising at the next valid chunk", (unsigned long long)cur_offset(r), what);
    r->start++;
    r->skipped++;
    r->resyncing = 1;
    r->seq_known = 0;
    r->in_snapshot = 0;
    return AMM_TRACE_DAMAGED;
}

/* While resyncing, a candidate that fails is stepped over silently. */
static amm_trace_status reject(amm_trace_reader *r, const char *what) {
    if (!r->resyncing) return damaged(r, what);
    r->start++;
    r->skipped++;
    return AMM_TRACE_OK;
}

/* Moves start to the next "AMMC" in the stream (or the end). */
static amm_trace_status scan_magic(amm_trace_reader *r) {
    for (;;) {
        const uint8_t *p = r->data + r->start;
        size_t n = avail(r);
        for (size_t i = 0; i + 4 <= n; i++) {
            if (p[i] == 'A' && memcmp(p + i, AMM_TRACE_CHUNK_MAGIC, 4) == 0) {
                r->start += i;
                r->skipped += i;
                return AMM_TRACE_OK;
            }
        }
        size_t keep = n < 3 ? n : 3; /* a magic may straddle the refill */
        r->start += n - keep;
        r->skipped += n - keep;
        fill_result f = fill(r, keep + 1);
        if (f == FILL_AGAIN) return AMM_TRACE_AGAIN;
        if (f == FILL_ERROR) return fatal(r);
        if (f == FILL_EOF) {
            r->skipped += avail(r);
            r->start = r->end;
            return AMM_TRACE_END;
        }
    }
}

static void begin_chunk(amm_trace_reader *r, const uint8_t *p, unsigned count) {
    r->recs = p + AMM_TRACE_CHUNK_HEADER_SIZE;
    r->count = count;
    r->idx = 0;
    r->first_seq = amm__get64(p + AMM__CH_FIRST_SEQ);
    r->base_time = amm__get64(p + AMM__CH_BASE_TIME);
    if (r->resyncing)
        set_err(r, "offset %llu: resynchronised after skipping %llu damaged bytes in all",
                (unsigned long long)cur_offset(r), (unsigned long long)r->skipped);
    r->resyncing = 0;
}

/* Records of recs[0, whole) that form whole events: a record whose ARGS or
 * STRING records were cut off by the truncation is left out with them. */
static unsigned whole_events(const uint8_t *recs, unsigned whole) {
    unsigned i = 0;
    while (i < whole) {
        const uint8_t *p = recs + (size_t)i * AMM_TRACE_RECORD_SIZE;
        unsigned need = 1 + (amm__trace_op_has_args(p[0]) ? 1u : 0u);
        if (p[0] == AMM_TOP_SITE) {
            uint64_t len = amm__get64(p + 24) < 255 ? amm__get64(p + 24) : 255;
            need += (unsigned)((len + AMM__STRING_BYTES - 1) / AMM__STRING_BYTES);
        }
        if (i + need > whole) return i;
        for (i++; i < whole; i++) {
            unsigned op = recs[(size_t)i * AMM_TRACE_RECORD_SIZE];
            if (op != AMM_TOP_ARGS && op != AMM_TOP_STRING) break;
        }
    }
    return whole;
}

/* The stream ends inside a chunk whose header is at data + start. */
static amm_trace_status partial_chunk(amm_trace_reader *r, unsigned count) {
    const uint8_t *p = r->data + r->start;
    uint64_t first = amm__get64(p + AMM__CH_FIRST_SEQ);
    if (valid_chunk_after(r, r->start + 1)) return reject(r, "chunk length runs into the next chunk");
    if (!r->seq_known || first != r->next_seq) return reject(r, "incomplete final chunk out of sequence");
    unsigned whole = (unsigned)((avail(r) - AMM_TRACE_CHUNK_HEADER_SIZE) / AMM_TRACE_RECORD_SIZE);
    whole = whole_events(p + AMM_TRACE_CHUNK_HEADER_SIZE, whole);
    set_err(r, "offset %llu: truncated final chunk: %u of %u records present (yielded unverified)",
            (unsigned long long)cur_offset(r), whole, count);
    begin_chunk(r, p, whole);
    r->start = r->end;
    r->seq_known = 0;
    return AMM_TRACE_OK;
}

/* Positions the reader on the next chunk: OK, or END/AGAIN/DAMAGED/FATAL. */
static amm_trace_status next_chunk(amm_trace_reader *r) {
    for (;;) {
        if (r->resyncing) {
            amm_trace_status st = scan_magic(r);
            if (st != AMM_TRACE_OK) return st;
        }
        fill_result f = fill(r, AMM_TRACE_CHUNK_HEADER_SIZE);
        if (f == FILL_AGAIN) return AMM_TRACE_AGAIN;
        if (f == FILL_ERROR) return fatal(r);
        if (f == FILL_EOF) {
            if (avail(r) == 0) return AMM_TRACE_END;
            if (r->resyncing) {
                r->skipped += avail(r);
                r->start = r->end;
                return AMM_TRACE_END;
            }
            set_err(r, "offset %llu: truncated chunk header (%zu of %d bytes)", (unsigned long long)cur_offset(r),
                    avail(r), AMM_TRACE_CHUNK_HEADER_SIZE);
            r->start = r->end;
            return AMM_TRACE_END;
        }
        const uint8_t *p = r->data + r->start;
        if (memcmp(p, AMM_TRACE_CHUNK_MAGIC, 4) != 0) {
            amm_trace_status st = reject(r, "bad chunk magic");
            if (st != AMM_TRACE_OK) return st;
            continue;
        }
        unsigned count = amm__get16(p + AMM__CH_COUNT);
        if (count > AMM_TRACE_MAX_CHUNK_RECORDS) {
            amm_trace_status st = reject(r, "chunk declares more than 1024 records");
            if (st != AMM_TRACE_OK) return st;
            continue;
        }
        size_t total = chunk_bytes(count);
        f = fill(r, total);
        if (f == FILL_AGAIN) return AMM_TRACE_AGAIN;
        if (f == FILL_ERROR) return fatal(r);
        amm_trace_status st;
        if (f == FILL_EOF) {
            st = partial_chunk(r, count);
            if (st != AMM_TRACE_OK) return st;
            if (r->resyncing) continue; /* a candidate stepped over */
            return AMM_TRACE_OK;
        }
        p = r->data + r->start;
        if (!valid_chunk_at(p, total)) {
            st = reject(r, "chunk CRC mismatch");
            if (st != AMM_TRACE_OK) return st;
            continue;
        }
        begin_chunk(r, p, count);
        r->start += total;
        r->seq_known = 1;
        r->next_seq = r->first_seq + count;
        return AMM_TRACE_OK;
    }
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

static int next_is(const amm_trace_reader *r, unsigned op) {
    return r->idx < r->count && r->recs[(size_t)r->idx * AMM_TRACE_RECORD_SIZE] == op;
}

/* Collects the STRING records after a SITE into ev->text. */
static void gather_text(amm_trace_reader *r, amm_trace_event *ev) {
    size_t want = ev->rec.size < sizeof ev->text - 1 ? (size_t)ev->rec.size : sizeof ev->text - 1, len = 0;
    while (next_is(r, AMM_TOP_STRING)) {
        const uint8_t *s = r->recs + (size_t)r->idx * AMM_TRACE_RECORD_SIZE + 8;
        size_t n = want - len < AMM__STRING_BYTES ? want - len : AMM__STRING_BYTES;
        memcpy(ev->text + len, s, n);
        len += n;
        r->idx++;
    }
    ev->text[len] = '\0';
}

/* Decodes the record at idx into ev; 0 if it was skipped. */
static int take_event(amm_trace_reader *r, amm_trace_event *ev) {
    unsigned i = r->idx++;
    const uint8_t *p = r->recs + (size_t)i * AMM_TRACE_RECORD_SIZE;
    unsigned op = p[0];
    if (op >= AMM_TOP_COUNT || op == AMM_TOP_ARGS || op == AMM_TOP_STRING) {
        r->unknown++;
        return 0;
    }
    if (op == AMM_TOP_NOP) return 0;
    amm_trace_record_decode(p, &ev->rec);
    ev->seq = r->first_seq + i;
    ev->time_ns = r->base_time + (uint64_t)ev->rec.dt_us * 1000u;
    ev->has_args = next_is(r, AMM_TOP_ARGS);
    if (ev->has_args)
        amm_trace_record_decode(r->recs + (size_t)r->idx++ * AMM_TRACE_RECORD_SIZE, &ev->args);
    else
        memset(&ev->args, 0, sizeof ev->args);
    ev->text[0] = '\0';
    if (op == AMM_TOP_SITE) gather_text(r, ev);
    if (op == AMM_TOP_DROPPED) r->dropped += ev->rec.aux_a;
    if (op == AMM_TOP_SNAPSHOT_BEGIN) r->in_snapshot = 1;
    ev->in_snapshot = r->in_snapshot;
    if (op == AMM_TOP_SNAPSHOT_END) r->in_snapshot = 0;
    return 1;
}

amm_trace_status amm_trace_next(amm_trace_reader *r, amm_trace_event *ev) {
    if (r == NULL || ev == NULL) return AMM_TRACE_FATAL;
    if (r->fatal) return AMM_TRACE_FATAL;
    if (!r->have_header) {
        amm_trace_status st = read_header(r);
        if (st != AMM_TRACE_OK) return st;
    }
    if (r->header_skip > 0) {
        amm_trace_status st = skip_header_rest(r);
        if (st != AMM_TRACE_OK) return st;
    }
    for (;;) {
        while (r->idx < r->count)
            if (take_event(r, ev)) return AMM_TRACE_OK;
        amm_trace_status st = next_chunk(r);
        if (st != AMM_TRACE_OK) return st;
    }
}

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

static void put_err(char *err, size_t err_len, const char *msg) {
    if (err != NULL && err_len > 0) snprintf(err, err_len, "%s", msg);
}

/* Reads the header now if it is there; a FOLLOW reader may wait for it. */
static amm_trace_reader *finish_open(amm_trace_reader *r, char *err, size_t err_len) {
    amm_trace_status st = read_header(r);
    if (st == AMM_TRACE_OK || st == AMM_TRACE_AGAIN) return r;
    put_err(err, err_len, r->err);
    amm_trace_close(r);
    return NULL;
}

amm_trace_reader *amm_trace_open_fd(int fd, int own_fd, unsigned flags, char *err, size_t err_len) {
    if (fd < 0) {
        put_err(err, err_len, "amm_trace_open_fd: bad file descriptor");
        return NULL;
    }
    amm_trace_reader *r = calloc(1, sizeof *r + READER_BUF);
    if (r == NULL) {
        put_err(err, err_len, "amm_trace_open_fd: out of memory");
        if (own_fd) close(fd);
        return NULL;
    }
    struct stat st;
    r->fd = fd;
    r->own_fd = own_fd;
    r->follow = (flags & AMM_TRACE_FOLLOW) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    r->data = r->buf;
    r->cap = READER_BUF;
    return finish_open(r, err, err_len);
}

amm_trace_reader *amm_trace_open_file(const char *path, unsigned flags, char *err, size_t err_len) {
    if (path == NULL) {
        put_err(err, err_len, "amm_trace_open_file: no path");
        return NULL;
    }
    if (strcmp(path, "-") == 0) return amm_trace_open_fd(STDIN_FILENO, 0, flags, err, err_len);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err != NULL && err_len > 0) snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    return amm_trace_open_fd(fd, 1, flags, err, err_len);
}

amm_trace_reader *amm_trace_open_mem(const void *data, size_t len, char *err, size_t err_len) {
    if (data == NULL && len > 0) {
        put_err(err, err_len, "amm_trace_open_mem: no data");
        return NULL;
    }
    amm_trace_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        put_err(err, err_len, "amm_trace_open_mem: out of memory");
        return NULL;
    }
    static const uint8_t empty[1];
    r->fd = -1;
    r->data = data != NULL ? data : empty;
    r->end = len;
    r->cap = len;
    return finish_open(r, err, err_len);
}

void amm_trace_close(amm_trace_reader *r) {
    if (r == NULL) return;
    if (r->own_fd && r->fd >= 0) close(r->fd);
    free(r);
}

const amm_trace_header *amm_trace_reader_header(const amm_trace_reader *r) {
    return r != NULL && r->have_header ? &r->hdr : NULL;
}

const char *amm_trace_error(const amm_trace_reader *r) { return r != NULL ? r->err : "no reader"; }
uint64_t amm_trace_offset(const amm_trace_reader *r) { return r != NULL ? cur_offset(r) : 0; }
uint64_t amm_trace_unknown_skipped(const amm_trace_reader *r) { return r != NULL ? r->unknown : 0; }
uint64_t amm_trace_bytes_skipped(const amm_trace_reader *r) { return r != NULL ? r->skipped : 0; }
uint64_t amm_trace_dropped(const amm_trace_reader *r) { return r != NULL ? r->dropped : 0; }
