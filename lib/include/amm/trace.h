/*
 * trace.h - the amm trace stream: record format, writer and reader.
 *
 * The full specification is docs/trace-format.md.  In short: a 64-byte file
 * header, then chunks.  A chunk is a 32-byte chunk header followed by `count`
 * records of 32 bytes each; the chunk header carries the sequence number of
 * its first record, its base time, the number of records dropped before it and
 * a CRC-32 of the chunk.  All integers are little-endian.
 *
 * Record (32 bytes):
 *   off size field
 *   0   1    op          (amm_trace_op)
 *   1   1    align_log2  (alignment = 1 << align_log2)
 *   2   2    thread      (small id assigned by the writer, 1-based)
 *   4   4    aux_a       (meaning per op)
 *   8   4    aux_b       (meaning per op)
 *   12  4    dt_us       (microseconds since the chunk's base time)
 *   16  8    addr
 *   24  8    size
 * The sequence number of a record is its chunk's first_seq + its index.
 * An AMM_TOP_ARGS record extends the record before it (old address of a
 * realloc, source of a copy, ...); the reader merges the pair into one event.
 */
#ifndef AMM_TRACE_H
#define AMM_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "amm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AMM_TRACE_MAGIC "AMMTRACE"
#define AMM_TRACE_MAJOR 1
#define AMM_TRACE_MINOR 0
#define AMM_TRACE_HEADER_SIZE 64
#define AMM_TRACE_CHUNK_HEADER_SIZE 32
#define AMM_TRACE_RECORD_SIZE 32
#define AMM_TRACE_CHUNK_MAGIC "AMMC"
#define AMM_TRACE_MAX_CHUNK_RECORDS 1024

/*
 * X(enum suffix, printed name, args-record follows?, meaning of the fields).
 * Values are stable: never renumber, only append (minor version bump).
 */
#define AMM_TRACE_OPS(X)                                                                               \
    X(NOP, "nop", 0, "padding")                                                                        \
    X(MANAGER_CREATE, "manager-create", 0, "addr=manager id, size=quarantine limit, aux_a=canary bytes") \
    X(MANAGER_DESTROY, "manager-destroy", 0, "addr=manager id, size=live bytes left, aux_a=live blocks left") \
    X(REGION_MAP, "region-map", 0, "addr=base, size=bytes, aux_a=amm_origin, aux_b=region id")            \
    X(REGION_UNMAP, "region-unmap", 0, "addr=base, size=bytes, aux_a=amm_origin, aux_b=region id")        \
    X(POOL_CREATE, "pool-create", 1, "addr=slab base, size=block size, aux_a=slot count, aux_b=pool id; args: addr=stride, size=front offset of the user pointer in a slot") \
    X(ALLOC, "alloc", 0, "addr=user ptr, size, aux_a=user-raw (front bytes), aux_b=site id | origin<<24 | flags<<26") \
    X(FREE, "free", 0, "addr=user ptr, size, aux_a=1 if it entered quarantine")                         \
    X(REALLOC, "realloc", 1, "like alloc for the new block; args: addr=old ptr, size=old size, aux_a=AMM_TRACE_REALLOC_OLD_* flags") \
    X(COPY, "copy", 1, "like alloc for the copy; args: addr=source ptr")                                 \
    X(RETAIN, "retain", 0, "addr=user ptr, aux_a=new refcount")                                          \
    X(RELEASE, "release", 0, "addr=user ptr, aux_a=new refcount (0: freed, a FREE follows)")           \
    X(MOVE, "move", 1, "compaction move; addr=new ptr, size, aux_a=user-raw; args: addr=old ptr")       \
    X(DEFRAG_BEGIN, "defrag-begin", 1, "aux_a=flags, aux_b=external frag ppm, addr=reserved, size=free; args: addr=largest free, size=resident") \
    X(DEFRAG_END, "defrag-end", 1, "as defrag-begin, after; args also aux_a=blocks moved, aux_b=regions released") \
    X(FAULT, "fault", 1, "addr=ptr given, size=block size, aux_a=amm_error_kind, aux_b=bytes; args: addr=block, size=offset (two's complement)") \
    X(QUARANTINE_RELEASE, "quarantine-release", 0, "addr=user ptr, size: a quarantined block leaves quarantine and becomes free") \
    X(SAMPLE, "sample", 1, "addr=live bytes, size=reserved, aux_a=external frag ppm, aux_b=live blocks; args: addr=resident, size=free bytes, aux_a=overhead ppm, aux_b=largest free / 4096") \
    X(SITE, "site", 0, "aux_a=site id, aux_b=line, size=file name length; STRING records carry the name") \
    X(STRING, "string", 0, "24 bytes of text in bytes 8..31 continuing the previous SITE")             \
    X(DROPPED, "dropped", 0, "aux_a=records the writer dropped since the last DROPPED record")          \
    X(SNAPSHOT_BEGIN, "snapshot-begin", 0, "a full state follows: REGION_MAP, POOL_CREATE, SITE, LIVE records; aux_a=live blocks") \
    X(LIVE, "live", 1, "snapshot block: like alloc; args: aux_a=refcount, aux_b=amm_block_state")      \
    X(SNAPSHOT_END, "snapshot-end", 0, "end of a snapshot")                                            \
    X(ARGS, "args", 0, "extends the previous record")                                                  \
    X(PURGE, "purge", 0, "addr, size: free pages returned to the system (madvise)")                    \
    X(CHECK, "check", 0, "aux_a=problems found by amm_check")                                          \
    X(THREAD_NAME, "thread", 0, "aux_a=thread id, addr=system thread id")

/* REALLOC args.aux_a: when the block moved, whether its old block entered quarantine
 * (then a QUARANTINE_RELEASE for it follows later) or was freed at once.  Writers
 * before this flag leave aux_a 0: readers then have to infer it. */
#define AMM_TRACE_REALLOC_OLD_QUARANTINED 0x1u
#define AMM_TRACE_REALLOC_OLD_KNOWN 0x2u

typedef enum amm_trace_op {
#define AMM__X(e, name, has_args, doc) AMM_TOP_##e,
    AMM_TRACE_OPS(AMM__X)
#undef AMM__X
    AMM_TOP_COUNT
} amm_trace_op;

/* Name of an op ("alloc"), or "unknown". */
const char *amm_trace_op_name(unsigned op);

/* One raw 32-byte record, decoded. */
typedef struct amm_trace_record {
    uint8_t op;
    uint8_t align_log2;
    uint16_t thread;
    uint32_t aux_a;
    uint32_t aux_b;
    uint32_t dt_us;
    uint64_t addr;
    uint64_t size;
} amm_trace_record;

/* Encodes/decodes one record, byte by byte (little-endian). */
void amm_trace_record_encode(const amm_trace_record *rec, uint8_t out[AMM_TRACE_RECORD_SIZE]);
void amm_trace_record_decode(const uint8_t in[AMM_TRACE_RECORD_SIZE], amm_trace_record *rec);

/* The file header, decoded. */
typedef struct amm_trace_header {
    uint16_t major, minor;
    uint16_t header_size, record_size;
    uint32_t canary_bytes;
    uint32_t page_size;
    uint8_t pointer_bits;
    uint32_t pid;
    uint64_t start_time_ns; /* CLOCK_REALTIME at trace start */
} amm_trace_header;

/*
 * One event as the reader yields it: a record merged with its ARGS record,
 * with the absolute sequence number and time.  STRING records are merged into
 * their SITE event (text holds the name).
 */
typedef struct amm_trace_event {
    uint64_t seq;
    uint64_t time_ns;  /* since trace start */
    amm_trace_record rec;
    int has_args;
    amm_trace_record args;
    char text[256];    /* SITE: the file name, NUL-terminated */
    int in_snapshot;   /* 1 between SNAPSHOT_BEGIN and SNAPSHOT_END */
} amm_trace_event;

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct amm_trace_reader amm_trace_reader;

#define AMM_TRACE_FOLLOW 0x1u /* at EOF, wait for more data (tail -f) instead of ending */

/* Opens a file ("-" = stdin).  NULL with err filled on failure. */
amm_trace_reader *amm_trace_open_file(const char *path, unsigned flags, char *err, size_t err_len);
/* Reads from an open descriptor (pipe, socket, file); the reader does not close it unless own_fd. */
amm_trace_reader *amm_trace_open_fd(int fd, int own_fd, unsigned flags, char *err, size_t err_len);
/* Reads from memory (the buffer must outlive the reader). */
amm_trace_reader *amm_trace_open_mem(const void *data, size_t len, char *err, size_t err_len);
void amm_trace_close(amm_trace_reader *r);

/* The header; valid after a successful open. */
const amm_trace_header *amm_trace_reader_header(const amm_trace_reader *r);

typedef enum amm_trace_status {
    AMM_TRACE_OK = 0,       /* ev filled */
    AMM_TRACE_END = 1,      /* clean end of stream (or a truncated tail, see amm_trace_error) */
    AMM_TRACE_AGAIN = 2,    /* FOLLOW mode, or a non-blocking fd: no data yet */
    AMM_TRACE_DAMAGED = 3,  /* damage found; amm_trace_error says where; call next again to resync */
    AMM_TRACE_FATAL = 4     /* unreadable (bad header, unknown major version, I/O error) */
} amm_trace_status;

/* Yields the next event.  Unknown ops are skipped (counted). */
amm_trace_status amm_trace_next(amm_trace_reader *r, amm_trace_event *ev);

/* The last error or warning text, naming the byte offset ("" if none). */
const char *amm_trace_error(const amm_trace_reader *r);

/* Byte offset consumed so far; records skipped as unknown; bytes skipped by resync; drops reported. */
uint64_t amm_trace_offset(const amm_trace_reader *r);
uint64_t amm_trace_unknown_skipped(const amm_trace_reader *r);
uint64_t amm_trace_bytes_skipped(const amm_trace_reader *r);
uint64_t amm_trace_dropped(const amm_trace_reader *r);

/* ------------------------------------------------------------------------ */
/* Writer (normally driven by the manager: AMM_OPTIONS=trace=...)           */
/* ------------------------------------------------------------------------ */

/*
 * Starts tracing m to dest ("file:PATH", "fd:N", "unix:PATH").  Returns 0, or
 * -1 with a BAD_OPTION / OUT_OF_MEMORY report.  Emits a snapshot of the current
 * state first, so tracing can start at any time.
 */
int amm_trace_start(amm_manager *m, const char *dest);
/* Flushes and stops tracing (also done by amm_destroy).  O(buffer). */
void amm_trace_stop(amm_manager *m);
/* Forces buffered records out now. */
void amm_trace_flush(amm_manager *m);
/* Records dropped because the reader was too slow. */
uint64_t amm_trace_drop_count(amm_manager *m);

#ifdef __cplusplus
}
#endif
#endif /* AMM_TRACE_H */
