/*
 * trace_writer.c - the trace writer: the amm__trace_* hooks, the chunk
 * buffer and the flusher thread.
 *
 * Algorithm.  The hooks run with the manager lock held, so the producer side
 * needs no lock of its own: a hook encodes its records (32 bytes each, byte
 * by byte) straight into the current chunk, one of TW_CHUNKS fixed buffers
 * of 1024 records.  A chunk is sealed when it is full, when it is older than
 * 50 ms, before a snapshot, on flush and on stop; sealing appends it to a
 * ring of ready chunks (t->mu) and wakes the flusher thread, which adds the
 * CRC and writes it out, off the manager lock.  Every 50 ms the flusher also
 * seals an idle, non-empty chunk (if it can take the manager lock without
 * waiting), so a quiet program's records still go out within 50 ms.
 *
 * Bounds.  Memory is fixed at start: one mapping of about 1.2 MiB (the ring,
 * the site table, the thread bitmap); nothing is allocated afterwards and
 * nothing through the traced manager.  When every buffer is waiting for the
 * destination:
 *   - a regular file: the producer waits for the flusher (disk writes end);
 *   - a pipe, socket or other fd: the producer drops the record and counts
 *     it; when a buffer frees up, the next chunk opens with a DROPPED record
 *     (and dropped_before in its header), and a snapshot follows at the next
 *     sample so a viewer can recover the state.
 * The flusher writes pipes at most PIPE_BUF bytes after poll() says the fd is
 * writable and sockets with send(MSG_DONTWAIT | MSG_NOSIGNAL), so it never
 * blocks for long; it runs with every signal blocked, so a closed pipe gives
 * EPIPE (then the destination is dead and later records are dropped and
 * counted), never a SIGPIPE that kills the program.  On stop it drains the
 * ring, giving up on a destination that accepts nothing for TW_PATIENCE_NS;
 * an atexit handler flushes the tracers of managers never destroyed.
 *
 * Sites are interned by (file pointer, line) in an open-addressed table of
 * TW_SITES entries; a SITE record (and STRING records with the name) is
 * emitted the first time a site is used after each snapshot.  A full table
 * gives site id 0 (unknown).  Threads get a THREAD_NAME record the first
 * time they appear after each snapshot.
 *
 * Snapshots (SNAPSHOT_BEGIN, REGION_MAP per range, POOL_CREATE per pool,
 * LIVE per live or quarantined block, SNAPSHOT_END) are written at start and
 * then from amm__trace_sample when at least 8x the last snapshot's size has
 * been written since, and either 262144 records or one second have passed:
 * the snapshots then cost at most a ninth of the stream.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hot.h"
#include "trace_codec.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define TW_HAVE_TSC 1
#else
#define TW_HAVE_TSC 0
#endif

#define TW_CHUNKS 32u                               /* ring: 32 x 32,800 bytes */
#define TW_SITES 4096u                              /* interned sites (power of two) */
#define TW_FLUSH_NS 50000000ull                     /* seal and write at least this often */
#define TW_PATIENCE_NS 500000000ull                 /* stop gives up on a stuck reader after this */
#define TW_SNAPSHOT_RECORDS 262144u                 /* periodic snapshot: at least this many records ... */
#define TW_SNAPSHOT_NS 1000000000ull                /* ... or this much time since the last one */
#define TW_MAX_STRINGS ((255 + AMM__STRING_BYTES - 1) / AMM__STRING_BYTES)

typedef enum tw_dest { TW_FILE, TW_PIPE, TW_SOCKET } tw_dest;

typedef struct tw_site {
    const char *file; /* NULL: empty slot */
    int line;
    uint32_t epoch;   /* snapshot epoch in which its SITE record was last written (0: never) */
} tw_site;

struct amm__tracer {
    amm_manager *m;
    int fd, own_fd;
    tw_dest dest;
    uint64_t start_ns; /* amm__os_now_ns() at start: record times are relative to it */
    int use_tsc;       /* the kernel's clocksource is the TSC: records may read it directly */
    uint8_t header[AMM_TRACE_HEADER_SIZE];

    /* Producer side: guarded by the manager lock. */
    uint8_t *cur;          /* chunk being filled, NULL if none */
    unsigned cur_count;
    uint16_t cur_flags;
    uint64_t cur_base, cur_first, cur_dropped;
    uint64_t next_seq;
    uint64_t last_ns;                /* latest record time: times never go back */
    uint64_t exact_ns, exact_tsc;    /* last CLOCK_MONOTONIC reading and the TSC then */
    uint64_t cal_ns, cal_tsc;        /* calibration point */
    double ns_per_tick;              /* 0: not calibrated yet */
    uint64_t drop_pending; /* dropped since the last DROPPED record */
    uint64_t dropped;      /* dropped by the producer, total */
    uint64_t since_snapshot, snapshot_size, snapshot_ns;
    int want_snapshot;
    uint32_t epoch;
    size_t site_count;
    tw_site sites[TW_SITES];
    uint8_t threads_seen[65536 / 8];

    /* Shared with the flusher: guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* to the flusher: a chunk is ready, or stop */
    pthread_cond_t space;  /* from the flusher: a chunk was written */
    unsigned head, ready;  /* ready chunks are bufs[head .. head+ready) mod TW_CHUNKS */
    uint64_t sealed, written;
    uint64_t io_dropped;   /* records lost because the destination failed */
    int stopping, dead;
    pthread_t flusher;

    uint8_t bufs[TW_CHUNKS][AMM__CHUNK_BYTES];
};

/*
 * Record times.  clock_gettime costs 20-60 ns (the upper end in VMs): read
 * for every record, it was the largest part of a record's cost.  Where the
 * kernel itself keeps time with the TSC, a record reads the TSC instead and
 * converts the ticks since the chunk opened with a ratio calibrated against
 * CLOCK_MONOTONIC (recalibrated whenever a chunk opens 10 ms or more after
 * the last calibration); chunk base times are always CLOCK_MONOTONIC.
 * Elsewhere, or before the first calibration, every record reads the clock.
 */
static uint64_t tw_ticks(void) {
#if TW_HAVE_TSC
    return __rdtsc();
#else
    return 0;
#endif
}

static int tw_tsc_is_clocksource(void) {
    char name[16] = "";
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    return TW_HAVE_TSC && n >= 3 && strncmp(name, "tsc", 3) == 0 && (n == 3 || name[3] == '\n');
}

/* The system clock (ns since trace start), recalibrating the TSC ratio. */
static uint64_t tw_now_exact(struct amm__tracer *t) {
    uint64_t ns = amm__os_now_ns() - t->start_ns, tsc = tw_ticks();
    if (t->use_tsc && tsc > t->cal_tsc && ns - t->cal_ns >= 10000000u) {
        t->ns_per_tick = (double)(ns - t->cal_ns) / (double)(tsc - t->cal_tsc);
        t->cal_ns = ns;
        t->cal_tsc = tsc;
    }
    t->exact_ns = ns;
    t->exact_tsc = tsc;
    if (ns < t->last_ns) ns = t->last_ns;
    return t->last_ns = ns;
}

/* A record's time: from the TSC when calibrated, else the system clock. */
static uint64_t tw_now(struct amm__tracer *t) {
    if (t->ns_per_tick <= 0.0) return tw_now_exact(t);
    uint64_t tsc = tw_ticks();
    uint64_t ns = t->exact_ns + (tsc > t->exact_tsc ? (uint64_t)((double)(tsc - t->exact_tsc) * t->ns_per_tick) : 0);
    if (ns < t->last_ns) ns = t->last_ns;
    return t->last_ns = ns;
}

/* ------------------------------------------------------------------------ */
/* Chunks (producer side, manager lock held)                                */
/* ------------------------------------------------------------------------ */

/* Hands the current chunk to the flusher. */
static void tw_seal(struct amm__tracer *t) {
    if (t->cur == NULL || t->cur_count == 0) return;
    uint8_t *c = t->cur;
    memcpy(c + AMM__CH_MAGIC, AMM_TRACE_CHUNK_MAGIC, 4);
    amm__put16(c + AMM__CH_COUNT, (uint16_t)t->cur_count);
    amm__put16(c + AMM__CH_FLAGS, t->cur_flags);
    amm__put64(c + AMM__CH_FIRST_SEQ, t->cur_first);
    amm__put64(c + AMM__CH_BASE_TIME, t->cur_base);
    amm__put32(c + AMM__CH_DROPPED, t->cur_dropped > UINT32_MAX ? UINT32_MAX : (uint32_t)t->cur_dropped);
    pthread_mutex_lock(&t->mu);
    if (t->ready++ == 0) pthread_cond_signal(&t->wake); /* with chunks waiting, the flusher is not asleep */
    t->sealed++;
    pthread_mutex_unlock(&t->mu);
    t->cur = NULL;
}

/* Takes a free buffer; a file destination waits for one.  1 if t->cur is set. */
static int tw_acquire(struct amm__tracer *t) {
    pthread_mutex_lock(&t->mu);
    if (t->dest == TW_FILE)
        while (t->ready == TW_CHUNKS && !t->dead) pthread_cond_wait(&t->space, &t->mu);
    if (t->ready < TW_CHUNKS && !t->dead) t->cur = t->bufs[(t->head + t->ready) % TW_CHUNKS];
    pthread_mutex_unlock(&t->mu);
    return t->cur != NULL;
}

static void tw_put_record(struct amm__tracer *t, uint8_t *p, amm_trace_record *rec, uint64_t now) {
    rec->dt_us = now > t->cur_base ? (uint32_t)((now - t->cur_base) / 1000u) : 0;
    amm_trace_record_encode(rec, p);
}

/* Opens a chunk in t->cur; reports drops first with a DROPPED record. */
static void tw_open(struct amm__tracer *t, uint64_t *now) {
    *now = tw_now_exact(t);
    t->cur_count = 0;
    t->cur_flags = 0;
    t->cur_base = *now;
    t->cur_first = t->next_seq;
    t->cur_dropped = t->drop_pending;
    if (t->drop_pending == 0) return;
    amm_trace_record rec = {.op = AMM_TOP_DROPPED, .thread = amm__thread_id()};
    rec.aux_a = t->drop_pending > UINT32_MAX ? UINT32_MAX : (uint32_t)t->drop_pending;
    tw_put_record(t, t->cur + AMM_TRACE_CHUNK_HEADER_SIZE, &rec, *now);
    t->cur_count = 1;
    t->next_seq++;
    t->drop_pending = 0;
    t->want_snapshot = 1;
}

/* Room for n consecutive records in one chunk, or NULL (they are dropped).
 * A new chunk takes its base time from the system clock: *now is updated. */
static uint8_t *tw_reserve(struct amm__tracer *t, unsigned n, uint64_t *now) {
    if (t->cur != NULL && (t->cur_count + n > AMM_TRACE_MAX_CHUNK_RECORDS || *now - t->cur_base >= TW_FLUSH_NS))
        tw_seal(t);
    if (t->cur == NULL) {
        if (!tw_acquire(t)) {
            t->drop_pending += n;
            t->dropped += n;
            return NULL;
        }
        tw_open(t, now);
    }
    uint8_t *p = t->cur + AMM_TRACE_CHUNK_HEADER_SIZE + (size_t)t->cur_count * AMM_TRACE_RECORD_SIZE;
    t->cur_count += n;
    t->next_seq += n;
    t->since_snapshot += n;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

static void tw_thread_name(struct amm__tracer *t, uint16_t tid, uint64_t now) {
    uint8_t bit = (uint8_t)(1u << (tid & 7u));
    if (t->threads_seen[tid >> 3] & bit) return;
    uint8_t *p = tw_reserve(t, 1, &now);
    if (p == NULL) return;
    amm_trace_record rec = {.op = AMM_TOP_THREAD_NAME, .thread = tid, .aux_a = tid};
    rec.addr = (uint64_t)syscall(SYS_gettid);
    tw_put_record(t, p, &rec, now);
    t->threads_seen[tid >> 3] |= bit;
}

/* Writes rec (and args, if not NULL) as one unit. */
static void tw_emit(struct amm__tracer *t, amm_trace_record *rec, amm_trace_record *args) {
    uint64_t now = tw_now(t);
    uint16_t tid = amm__thread_id();
    tw_thread_name(t, tid, now);
    uint8_t *p = tw_reserve(t, args ? 2u : 1u, &now);
    if (p == NULL) return;
    rec->thread = tid;
    tw_put_record(t, p, rec, now);
    if (args != NULL) {
        args->op = AMM_TOP_ARGS;
        args->thread = tid;
        tw_put_record(t, p + AMM_TRACE_RECORD_SIZE, args, now);
    }
}

/* SITE + STRING records for the site in slot i. */
static int tw_site_record(struct amm__tracer *t, size_t i) {
    const tw_site *s = &t->sites[i];
    size_t len = strnlen(s->file, 255);
    unsigned strings = (unsigned)((len + AMM__STRING_BYTES - 1) / AMM__STRING_BYTES);
    uint64_t now = tw_now(t);
    uint16_t tid = amm__thread_id();
    tw_thread_name(t, tid, now);
    uint8_t *p = tw_reserve(t, 1 + strings, &now);
    if (p == NULL) return 0;
    amm_trace_record rec = {.op = AMM_TOP_SITE, .thread = tid, .aux_a = (uint32_t)(i + 1), .size = len};
    rec.aux_b = (uint32_t)s->line;
    tw_put_record(t, p, &rec, now);
    for (unsigned k = 0; k < strings; k++) {
        uint8_t *q = p + (size_t)(k + 1) * AMM_TRACE_RECORD_SIZE;
        size_t off = (size_t)k * AMM__STRING_BYTES, n = len - off < AMM__STRING_BYTES ? len - off : AMM__STRING_BYTES;
        memset(q, 0, AMM_TRACE_RECORD_SIZE);
        q[0] = AMM_TOP_STRING;
        memcpy(q + 8, s->file + off, n);
    }
    return 1;
}

/* The site id of (file, line), writing its SITE record if this epoch has not. */
static uint32_t tw_site_id(struct amm__tracer *t, const char *file, int line) {
    if (file == NULL) return 0;
    size_t h = ((uintptr_t)file >> 3) * 0x9E3779B97F4A7C15ull + (size_t)(unsigned)line * 0x85EBCA6Bu;
    for (size_t k = 0; k < TW_SITES; k++) {
        size_t i = (h + k) & (TW_SITES - 1);
        tw_site *s = &t->sites[i];
        if (s->file == NULL) {
            if (t->site_count >= TW_SITES * 3 / 4) return 0;
            s->file = file;
            s->line = line;
            t->site_count++;
        } else if (s->file != file || s->line != line) {
            continue;
        }
        if (s->epoch != t->epoch && tw_site_record(t, i)) s->epoch = t->epoch;
        return (uint32_t)(i + 1);
    }
    return 0;
}

/* addr/size/align/aux of a block as ALLOC, LIVE, REALLOC, COPY and MOVE carry them. */
static void tw_block_fields(struct amm__tracer *t, amm_trace_record *rec, uintptr_t user, uintptr_t raw, size_t size,
                            unsigned align_log2, unsigned origin, unsigned flags, const char *file, int line) {
    rec->addr = user;
    rec->size = size;
    rec->align_log2 = (uint8_t)align_log2;
    rec->aux_a = (uint32_t)(user - raw);
    rec->aux_b = tw_site_id(t, file, line) | (uint32_t)(origin & 3u) << 24 | (uint32_t)(flags & 0x3Fu) << 26;
}

static void tw_from_block(struct amm__tracer *t, amm_trace_record *rec, const amm__block *b) {
    tw_block_fields(t, rec, b->user, b->raw, b->size, b->align_log2, b->origin,
                    b->flags & (AMM_ALLOC_MOVABLE | AMM_ALLOC_NO_POOL), b->file, b->line); /* the allocation flags */
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                */
/* ------------------------------------------------------------------------ */

static void tw_live(struct amm__tracer *t, const amm__block *b) {
    if (b->state != AMM_BLOCK_LIVE && b->state != AMM_BLOCK_QUARANTINED) return;
    /* a quarantined block has no references left (the walker shows 0 too) */
    uint32_t refs = b->state == AMM_BLOCK_LIVE ? b->refcount : 0;
    amm_trace_record rec = {.op = AMM_TOP_LIVE}, args = {.aux_a = refs, .aux_b = b->state};
    tw_from_block(t, &rec, b);
    tw_emit(t, &rec, &args);
}

static void tw_snapshot_range(struct amm__tracer *t, const amm__range *r) {
    amm_trace_record rec = {.op = AMM_TOP_REGION_MAP, .addr = r->start, .size = r->end - r->start};
    if (r->kind == AMM__RANGE_HEAP) {
        const amm__region *reg = r->obj;
        rec.aux_a = AMM_ORIGIN_HEAP;
        rec.aux_b = (uint32_t)reg->id;
        tw_emit(t, &rec, NULL);
        for (const amm__block *b = reg->first; b != NULL; b = b->next_phys) tw_live(t, b);
    } else if (r->kind == AMM__RANGE_POOL) {
        const amm_pool *p = r->obj;
        rec.aux_a = AMM_ORIGIN_POOL;
        rec.aux_b = (uint32_t)p->id;
        tw_emit(t, &rec, NULL);
        amm__trace_pool(t->m, p);
        for (size_t i = 0; i < p->count; i++) tw_live(t, &p->slots[i]);
    } else {
        rec.aux_a = AMM_ORIGIN_LARGE;
        tw_emit(t, &rec, NULL);
        tw_live(t, r->obj);
    }
}

static void tw_snapshot(struct amm__tracer *t) {
    amm_manager *m = t->m;
    uint64_t before = t->next_seq;
    tw_seal(t);
    if (++t->epoch == 0) t->epoch = 1;
    memset(t->threads_seen, 0, sizeof t->threads_seen);
    amm_trace_record rec = {.op = AMM_TOP_SNAPSHOT_BEGIN, .addr = (uintptr_t)m, .aux_a = (uint32_t)m->live_blocks};
    tw_emit(t, &rec, NULL);
    if (t->cur != NULL) t->cur_flags |= AMM__CHUNK_SNAPSHOT;
    for (size_t i = 0; i < m->range_count; i++) tw_snapshot_range(t, &m->ranges[i]);
    amm_trace_record end = {.op = AMM_TOP_SNAPSHOT_END};
    tw_emit(t, &end, NULL);
    t->snapshot_size = t->next_seq - before;
    t->since_snapshot = 0;
    t->snapshot_ns = tw_now(t);
    t->want_snapshot = 0;
}

/* Whether a record written now would find a buffer. */
static int tw_has_room(struct amm__tracer *t) {
    if (t->cur != NULL) return 1;
    pthread_mutex_lock(&t->mu);
    int room = t->ready < TW_CHUNKS && !t->dead;
    pthread_mutex_unlock(&t->mu);
    return room;
}

static int tw_snapshot_due(struct amm__tracer *t) {
    if (t->want_snapshot) return tw_has_room(t);
    if (t->since_snapshot < 8 * t->snapshot_size) return 0;
    return t->since_snapshot >= TW_SNAPSHOT_RECORDS || tw_now(t) - t->snapshot_ns >= TW_SNAPSHOT_NS;
}

/* ------------------------------------------------------------------------ */
/* Output (flusher thread)                                                  */
/* ------------------------------------------------------------------------ */

static void tw_kill(struct amm__tracer *t) {
    int sig;
    sigset_t pipe_set;
    struct timespec zero = {0, 0};
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    while ((sig = sigtimedwait(&pipe_set, NULL, &zero)) > 0) {
    } /* consume the SIGPIPE a closed pipe raised on this thread */
    pthread_mutex_lock(&t->mu);
    t->dead = 1;
    pthread_mutex_unlock(&t->mu);
}

static int tw_stopping(struct amm__tracer *t) {
    pthread_mutex_lock(&t->mu);
    int s = t->stopping;
    pthread_mutex_unlock(&t->mu);
    return s;
}

/* One write attempt of at most n bytes: bytes written, 0 (try later) or -1 (dead). */
static ssize_t tw_write_some(struct amm__tracer *t, const uint8_t *p, size_t n) {
    if (t->dest != TW_FILE) {
        struct pollfd pfd = {.fd = t->fd, .events = POLLOUT};
        int r = poll(&pfd, 1, (int)(TW_FLUSH_NS / 1000000u));
        if (r == 0 || (r < 0 && errno == EINTR)) return 0;
        if (r < 0 || (pfd.revents & (POLLERR | POLLNVAL))) return -1;
        if (t->dest == TW_PIPE && n > PIPE_BUF) n = PIPE_BUF; /* POLLOUT guarantees room for PIPE_BUF */
    }
    ssize_t w = t->dest == TW_SOCKET ? send(t->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(t->fd, p, n);
    if (w >= 0) return w;
    return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
}

/* Writes all n bytes; 0, or -1 if the destination failed or stayed stuck through a stop. */
static int tw_write_all(struct amm__tracer *t, const uint8_t *p, size_t n) {
    uint64_t idle_since = amm__os_now_ns();
    while (n > 0) {
        ssize_t w = tw_write_some(t, p, n);
        if (w < 0) return -1;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            idle_since = amm__os_now_ns();
        } else if (amm__os_now_ns() - idle_since >= TW_PATIENCE_NS && tw_stopping(t)) {
            return -1;
        }
    }
    return 0;
}

static void tw_write_chunk(struct amm__tracer *t, uint8_t *c) {
    unsigned count = amm__get16(c + AMM__CH_COUNT);
    size_t body = (size_t)count * AMM_TRACE_RECORD_SIZE;
    uint32_t crc = amm__crc32(0, c, AMM__CH_CRC);
    amm__put32(c + AMM__CH_CRC, amm__crc32(crc, c + AMM_TRACE_CHUNK_HEADER_SIZE, body));
    int dead;
    pthread_mutex_lock(&t->mu);
    dead = t->dead;
    pthread_mutex_unlock(&t->mu);
    if (!dead && tw_write_all(t, c, AMM_TRACE_CHUNK_HEADER_SIZE + body) == 0) return;
    if (!dead) tw_kill(t);
    pthread_mutex_lock(&t->mu);
    t->io_dropped += count;
    pthread_mutex_unlock(&t->mu);
}

/* Seals a quiet chunk if the manager lock is free right now. */
static void tw_seal_idle(struct amm__tracer *t) {
    if (amm__mutex_trylock(&t->m->lock) != 0) return;
    if (t->m->tracer == t && t->cur != NULL && t->cur_count > 0) tw_seal(t);
    amm__mutex_unlock(&t->m->lock);
}

/* The absolute time TW_FLUSH_NS from now on clock, for pthread_cond_timedwait. */
static struct timespec tw_in_50ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_nsec += (long)TW_FLUSH_NS;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *tw_flusher(void *arg) {
    struct amm__tracer *t = arg;
    if (tw_write_all(t, t->header, sizeof t->header) != 0) tw_kill(t);
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (t->ready > 0) {
            uint8_t *c = t->bufs[t->head];
            pthread_mutex_unlock(&t->mu);
            tw_write_chunk(t, c);
            pthread_mutex_lock(&t->mu);
            t->head = (t->head + 1) % TW_CHUNKS;
            t->ready--;
            t->written++;
            pthread_cond_broadcast(&t->space);
            continue;
        }
        if (t->stopping) break;
        struct timespec until = tw_in_50ms(CLOCK_MONOTONIC);
        if (pthread_cond_timedwait(&t->wake, &t->mu, &until) == ETIMEDOUT && t->ready == 0 && !t->stopping) {
            pthread_mutex_unlock(&t->mu);
            tw_seal_idle(t);
            pthread_mutex_lock(&t->mu);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Seals the current chunk and waits until the flusher has written it (a
 * file: always; a pipe or socket: until it stops taking bytes for
 * TW_PATIENCE_NS).  Manager lock held. */
static void tw_flush_locked(struct amm__tracer *t) {
    tw_seal(t);
    pthread_mutex_lock(&t->mu);
    uint64_t target = t->sealed, seen = t->written, idle_since = amm__os_now_ns();
    while (t->written < target && !t->dead) {
        struct timespec until = tw_in_50ms(CLOCK_REALTIME);
        pthread_cond_timedwait(&t->space, &t->mu, &until);
        if (t->written != seen) {
            seen = t->written;
            idle_since = amm__os_now_ns();
        } else if (t->dest != TW_FILE && amm__os_now_ns() - idle_since >= TW_PATIENCE_NS) {
            break; /* a stuck reader: the records stay buffered */
        }
    }
    pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------------------ */
/* Flush at exit                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A program may exit without destroying its manager (an LD_PRELOAD run, a
 * test that calls exit): an atexit handler flushes every tracer still
 * running.  It takes each manager's lock with trylock only (retrying for up
 * to TW_EXIT_TRIES ms), so an exit from inside an error handler, or while
 * another thread holds the lock, cannot deadlock: that tracer just is not
 * flushed.  At most TW_EXIT_SLOTS tracers are registered.
 */
#define TW_EXIT_SLOTS 64
#define TW_EXIT_TRIES 100

static pthread_mutex_t tw_exit_mu = PTHREAD_MUTEX_INITIALIZER;
static struct amm__tracer *tw_exit_list[TW_EXIT_SLOTS];
static pthread_once_t tw_exit_once = PTHREAD_ONCE_INIT;

static void tw_at_exit(void) {
    pthread_mutex_lock(&tw_exit_mu);
    for (size_t i = 0; i < TW_EXIT_SLOTS; i++) {
        struct amm__tracer *t = tw_exit_list[i];
        if (t == NULL) continue;
        for (int k = 0; k < TW_EXIT_TRIES; k++) {
            if (amm__mutex_trylock(&t->m->lock) == 0) {
                tw_flush_locked(t);
                amm__mutex_unlock(&t->m->lock);
                break;
            }
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
    }
    pthread_mutex_unlock(&tw_exit_mu);
}

static void tw_exit_register(void) { atexit(tw_at_exit); }

/*
 * fork: the child has no flusher thread, and its records would interleave
 * with the parent's in the same destination.  So a child is not traced:
 * manager.c's atfork child handler calls these for every tracer the exit
 * flush knows of and for every manager, which drops
 * the child's copy of the tracer without touching the tracer's mutex (the
 * flusher may have held it at the fork).  The exit list's mutex may have been
 * held too: the child, alone, starts it afresh.
 */
/* Drops every tracer the exit flush knows of (in the child, after fork). */
void amm__trace_forget_all_in_child(void) {
    tw_exit_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    for (size_t i = 0; i < TW_EXIT_SLOTS; i++) {
        struct amm__tracer *t = tw_exit_list[i];
        if (t != NULL && t->m->tracer == t) amm__trace_forget_in_child(t->m);
        tw_exit_list[i] = NULL;
    }
}

void amm__trace_forget_in_child(amm_manager *m) {
    struct amm__tracer *t = m->tracer;
    if (t == NULL) return;
    tw_exit_mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    for (size_t i = 0; i < TW_EXIT_SLOTS; i++) {
        if (tw_exit_list[i] == t) tw_exit_list[i] = NULL;
    }
    m->tracer = NULL;
    if (t->own_fd) close(t->fd);
    amm__os_unmap(t, sizeof *t);
}

static void tw_exit_track(struct amm__tracer *t, int add) {
    if (add) pthread_once(&tw_exit_once, tw_exit_register);
    pthread_mutex_lock(&tw_exit_mu);
    for (size_t i = 0; i < TW_EXIT_SLOTS; i++) {
        if (add ? tw_exit_list[i] == NULL : tw_exit_list[i] == t) {
            tw_exit_list[i] = add ? t : NULL;
            break;
        }
    }
    pthread_mutex_unlock(&tw_exit_mu);
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */
/* ------------------------------------------------------------------------ */

static int tw_connect_unix(const char *path) {
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) return -1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int tw_parse_fd(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < 0 || v > INT_MAX) return -1;
    return fcntl((int)v, F_GETFD) == -1 ? -1 : (int)v;
}

/* Opens dest: 0 with fd, own and kind set, or -1 with why naming the problem. */
static int tw_open_dest(const char *dest, int *fd, int *own, tw_dest *kind, const char **why) {
    struct stat st;
    *own = 1;
    if (strncmp(dest, "file:", 5) == 0 && dest[5] != '\0') {
        /* O_NONBLOCK: a FIFO with no reader is refused (ENXIO) instead of blocking the program */
        *fd = open(dest + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
        *why = "trace: cannot create the trace file (or it is a FIFO nobody reads)";
    } else if (strncmp(dest, "fd:", 3) == 0) {
        *fd = tw_parse_fd(dest + 3);
        *own = 0;
        *why = "trace: fd:N needs an open file descriptor number";
    } else if (strncmp(dest, "unix:", 5) == 0 && dest[5] != '\0') {
        *fd = tw_connect_unix(dest + 5);
        *why = "trace: cannot connect to the unix socket (is the viewer listening?)";
    } else {
        *fd = -1;
        *why = "trace: unknown destination (use file:PATH, fd:N or unix:PATH)";
    }
    if (*fd < 0) return -1;
    *kind = TW_PIPE;
    if (fstat(*fd, &st) == 0 && S_ISREG(st.st_mode)) *kind = TW_FILE;
    if (fstat(*fd, &st) == 0 && S_ISSOCK(st.st_mode)) *kind = TW_SOCKET;
    return 0;
}

static void tw_header(struct amm__tracer *t) {
    uint8_t *h = t->header;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    memcpy(h + AMM__TH_MAGIC, AMM_TRACE_MAGIC, 8);
    amm__put16(h + AMM__TH_MAJOR, AMM_TRACE_MAJOR);
    amm__put16(h + AMM__TH_MINOR, AMM_TRACE_MINOR);
    amm__put16(h + AMM__TH_HEADER_SIZE, AMM_TRACE_HEADER_SIZE);
    amm__put16(h + AMM__TH_RECORD_SIZE, AMM_TRACE_RECORD_SIZE);
    amm__put32(h + AMM__TH_CANARY, (uint32_t)t->m->canary);
    amm__put32(h + AMM__TH_PAGE, (uint32_t)amm__page_size());
    h[AMM__TH_PTR_BITS] = (uint8_t)(sizeof(void *) * CHAR_BIT);
    h[AMM__TH_ENDIAN] = AMM__TRACE_LITTLE_ENDIAN;
    amm__put16(h + AMM__TH_CHUNK_HEADER_SIZE, AMM_TRACE_CHUNK_HEADER_SIZE);
    amm__put16(h + AMM__TH_MAX_CHUNK, AMM_TRACE_MAX_CHUNK_RECORDS);
    amm__put32(h + AMM__TH_PID, (uint32_t)getpid());
    amm__put64(h + AMM__TH_START, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    amm__put32(h + AMM__TH_CRC, amm__crc32(0, h, AMM__TH_CRC));
}

/* Initialises the locks and starts the flusher with every signal blocked. */
static int tw_start_thread(struct amm__tracer *t) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->wake, &ca);
    pthread_cond_init(&t->space, NULL);
    pthread_condattr_destroy(&ca);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->flusher, NULL, tw_flusher, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) return 0;
    pthread_cond_destroy(&t->space);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->mu);
    return -1;
}

static void tw_refuse(amm_manager *m, amm_error_kind kind, const char *why) {
    amm__fault(m, kind, NULL, NULL, "trace_start", why, 0, 0, NULL, 0);
}

int amm__trace_start_locked(amm_manager *m, const char *dest) {
    int fd, own;
    tw_dest kind;
    const char *why;
    if (m->tracer != NULL) {
        tw_refuse(m, AMM_ERR_BAD_OPTION, "trace: tracing is already on; stop it first");
        return -1;
    }
    if (dest == NULL || tw_open_dest(dest, &fd, &own, &kind, &why) != 0) {
        tw_refuse(m, AMM_ERR_BAD_OPTION, dest == NULL ? "trace: no destination" : why);
        return -1;
    }
    struct amm__tracer *t = amm__os_map(sizeof *t);
    if (t != NULL) {
        t->m = m;
        t->fd = fd;
        t->own_fd = own;
        t->dest = kind;
        t->start_ns = amm__os_now_ns();
        t->use_tsc = tw_tsc_is_clocksource();
        t->cal_tsc = tw_ticks();
        tw_header(t);
    }
    if (t == NULL || tw_start_thread(t) != 0) {
        if (t != NULL) amm__os_unmap(t, sizeof *t);
        if (own) close(fd);
        tw_refuse(m, AMM_ERR_OUT_OF_MEMORY, "trace: no memory or thread for the trace writer");
        return -1;
    }
    amm__tcache_flush_all(m); /* a trace sees every alloc: no cache hands any out while it runs */
    m->tracer = t;
    tw_exit_track(t, 1);
    amm__trace_manager(m, AMM_TOP_MANAGER_CREATE);
    tw_snapshot(t);
    return 0;
}

void amm__trace_stop_locked(amm_manager *m) {
    struct amm__tracer *t = m->tracer;
    if (t == NULL) return;
    tw_exit_track(t, 0);
    tw_seal(t);
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->flusher, NULL);
    if (t->own_fd) close(t->fd);
    pthread_cond_destroy(&t->space);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->mu);
    m->tracer = NULL;
    amm__os_unmap(t, sizeof *t);
}

/* ------------------------------------------------------------------------ */
/* Hooks (manager lock held, m->tracer != NULL)                             */
/* ------------------------------------------------------------------------ */

void amm__trace_manager(amm_manager *m, amm_trace_op op) {
    struct amm__tracer *t = m->tracer;
    amm_trace_record rec = {.op = (uint8_t)op, .addr = (uintptr_t)m};
    if (op == AMM_TOP_MANAGER_CREATE) {
        if (t->next_seq > 0) return; /* written at start already */
        rec.size = m->cfg.quarantine;
        rec.aux_a = (uint32_t)m->canary;
    } else {
        rec.size = m->live_bytes;
        rec.aux_a = (uint32_t)m->live_blocks;
    }
    tw_emit(t, &rec, NULL);
}

void amm__trace_region(amm_manager *m, amm_trace_op op, uintptr_t base, size_t size, amm_origin kind, size_t id) {
    amm_trace_record rec = {.op = (uint8_t)op, .addr = base, .size = size, .aux_a = kind, .aux_b = (uint32_t)id};
    tw_emit(m->tracer, &rec, NULL);
}

void amm__trace_pool(amm_manager *m, const amm_pool *p) {
    amm_trace_record rec = {.op = AMM_TOP_POOL_CREATE, .addr = p->base, .size = p->block_size};
    rec.align_log2 = p->align_log2;
    rec.aux_a = (uint32_t)p->count;
    rec.aux_b = (uint32_t)p->id;
    amm_trace_record args = {.addr = p->stride, .size = p->front};
    tw_emit(m->tracer, &rec, &args);
}

void amm__trace_block(amm_manager *m, amm_trace_op op, const amm__block *b) {
    if (op == AMM_TOP_LIVE) {
        tw_live(m->tracer, b);
        return;
    }
    amm_trace_record rec = {.op = (uint8_t)op};
    tw_from_block(m->tracer, &rec, b);
    tw_emit(m->tracer, &rec, NULL);
}

void amm__trace_free(amm_manager *m, const amm__block *b, int quarantined) {
    amm_trace_record rec = {.op = AMM_TOP_FREE, .addr = b->user, .size = b->size, .aux_a = quarantined ? 1u : 0u};
    rec.align_log2 = b->align_log2;
    tw_emit(m->tracer, &rec, NULL);
}

void amm__trace_resize(amm_manager *m, amm_trace_op op, const amm__block *b, uintptr_t old_user, size_t old_size) {
    amm_trace_record rec = {.op = (uint8_t)op}, args = {.addr = old_user, .size = old_size};
    if (op == AMM_TOP_REALLOC && old_user != b->user) { /* a moving realloc: where did the old block go? */
        amm__block *old;
        int quarantined = amm__lookup(m, (const void *)old_user, &old) == AMM__PTR_BLOCK &&
                          old->state == AMM_BLOCK_QUARANTINED;
        args.aux_a = AMM_TRACE_REALLOC_OLD_KNOWN | (quarantined ? AMM_TRACE_REALLOC_OLD_QUARANTINED : 0u);
    }
    tw_from_block(m->tracer, &rec, b);
    tw_emit(m->tracer, &rec, &args);
}

void amm__trace_refcount(amm_manager *m, amm_trace_op op, const amm__block *b) {
    amm_trace_record rec = {.op = (uint8_t)op, .addr = b->user, .size = b->size, .aux_a = b->refcount};
    rec.align_log2 = b->align_log2;
    tw_emit(m->tracer, &rec, NULL);
}

void amm__trace_fault(amm_manager *m, const amm_report *r) {
    amm_trace_record rec = {.op = AMM_TOP_FAULT, .addr = (uintptr_t)r->ptr, .size = r->block_size};
    rec.aux_a = (uint32_t)r->kind;
    rec.aux_b = r->bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)r->bytes;
    rec.align_log2 = (uint8_t)(amm__is_pow2(r->alignment) ? amm__log2(r->alignment) : 0);
    amm_trace_record args = {.addr = (uintptr_t)r->block, .size = (uint64_t)r->offset};
    tw_emit(m->tracer, &rec, &args);
}

void amm__trace_simple(amm_manager *m, amm_trace_op op, uint64_t addr, uint64_t size, uint32_t aux_a, uint32_t aux_b) {
    amm_trace_record rec = {.op = (uint8_t)op, .addr = addr, .size = size, .aux_a = aux_a, .aux_b = aux_b};
    tw_emit(m->tracer, &rec, NULL);
}

static uint32_t tw_ppm(double ratio) {
    if (!(ratio > 0.0)) return 0;
    return ratio >= 1.0 ? 1000000u : (uint32_t)(ratio * 1e6 + 0.5);
}

static uint32_t tw_u32(size_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

void amm__trace_defrag(amm_manager *m, amm_trace_op op, unsigned flags, const amm_stats *st, size_t blocks_moved,
                       size_t regions_released) {
    amm_trace_record rec = {.op = (uint8_t)op, .aux_a = flags, .aux_b = tw_ppm(st->external_frag)};
    rec.addr = st->reserved_bytes;
    rec.size = st->free_bytes;
    amm_trace_record args = {.addr = st->largest_free, .size = st->resident_bytes};
    if (op == AMM_TOP_DEFRAG_END) {
        args.aux_a = tw_u32(blocks_moved);
        args.aux_b = tw_u32(regions_released);
    }
    tw_emit(m->tracer, &rec, &args);
}

void amm__trace_sample(amm_manager *m) {
    struct amm__tracer *t = m->tracer;
    amm_stats st;
    amm__stats_locked(m, &st);
    amm_trace_record rec = {.op = AMM_TOP_SAMPLE, .addr = st.live_bytes, .size = st.reserved_bytes};
    rec.aux_a = tw_ppm(st.external_frag);
    rec.aux_b = tw_u32(st.live_blocks);
    amm_trace_record args = {.addr = st.resident_bytes, .size = st.free_bytes, .aux_a = tw_ppm(st.overhead)};
    args.aux_b = tw_u32(st.largest_free / 4096u);
    tw_emit(t, &rec, &args);
    if (tw_snapshot_due(t)) tw_snapshot(t);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

int amm_trace_start(amm_manager *m, const char *dest) {
    if (m == NULL) return -1;
    amm__lock(m);
    int rc = amm__trace_start_locked(m, dest);
    amm__unlock(m);
    return rc;
}

void amm_trace_stop(amm_manager *m) {
    if (m == NULL) return;
    amm__lock(m);
    amm__trace_stop_locked(m);
    amm__unlock(m);
}

void amm_trace_flush(amm_manager *m) {
    if (m == NULL) return;
    amm__lock(m);
    if (m->tracer != NULL) tw_flush_locked(m->tracer);
    amm__unlock(m);
}

uint64_t amm_trace_drop_count(amm_manager *m) {
    if (m == NULL) return 0;
    amm__lock(m);
    uint64_t n = 0;
    struct amm__tracer *t = m->tracer;
    if (t != NULL) {
        pthread_mutex_lock(&t->mu);
        n = t->dropped + t->io_dropped;
        pthread_mutex_unlock(&t->mu);
    }
    amm__unlock(m);
    return n;
}
