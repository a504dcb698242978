/*
 * ingest.c - sources, the reading thread and the event store (see ingest.h).
 *
 * The thread parses into a private batch (VZ_BATCH events) and takes the
 * lock only to append the batch, so the lock is held for a memcpy at most.
 * Waiting is done with poll() on pipes and sockets (non-blocking fds: the
 * reader answers AGAIN) and with short sleeps on a followed regular file,
 * checking the stop flag each time, so quitting never hangs on a read.
 */
#define _GNU_SOURCE
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VZ_BATCH 4096u
#define VZ_SITE_MAX 65536u
#define VZ_SITE_LEN 96u

struct vz_ingest {
    vz_source_kind kind;
    char path[512];
    int follow;
    int listen_fd;
    pthread_t thread;
    int started;
    atomic_int stop;

    pthread_mutex_t lock;
    /* store (under lock) */
    vm_event **chunks;
    size_t nchunks, cap_chunks;
    uint64_t base_chunk;          /* chunk number of chunks[0] */
    uint64_t count;
    uint64_t max_events;
    uint64_t consumed;
    char (*sites)[VZ_SITE_LEN];   /* site id -> name */
    size_t sites_cap;
    vz_stat st;

    /* thread-private */
    vm_event batch[VZ_BATCH];
    size_t nbatch;
    uint64_t reader_dropped;      /* the current reader's count already added to st.dropped */
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Copies text (truncated) into the status message. */
static void copy_text(char *dst, size_t cap, const char *text)
{
    size_t n = strnlen(text, cap - 1);
    memcpy(dst, text, n);
    dst[n] = '\0';
}

static void set_message(vz_ingest *g, const char *text)
{
    pthread_mutex_lock(&g->lock);
    copy_text(g->st.message, sizeof g->st.message, text);
    pthread_mutex_unlock(&g->lock);
}

static void set_failed(vz_ingest *g, const char *text)
{
    pthread_mutex_lock(&g->lock);
    copy_text(g->st.message, sizeof g->st.message, text);
    g->st.failed = 1;
    pthread_mutex_unlock(&g->lock);
}

/* ---- store ----------------------------------------------------------------- */

static uint64_t store_base(const vz_ingest *g) { return g->base_chunk * VZ_CHUNK; }

/* Frees chunks fully below the consumer while the store is over its budget. Lock held. */
static void store_evict(vz_ingest *g)
{
    while (g->nchunks > 1 && g->count - store_base(g) > g->max_events &&
           g->consumed >= store_base(g) + VZ_CHUNK) {
        free(g->chunks[0]);
        memmove(g->chunks, g->chunks + 1, (g->nchunks - 1) * sizeof *g->chunks);
        g->nchunks--;
        g->base_chunk++;
    }
    g->st.base = store_base(g);
}

/* Appends n events; waits (unlocked) while the store is full and the consumer behind. */
static void store_append(vz_ingest *g, const vm_event *ev, size_t n)
{
    pthread_mutex_lock(&g->lock);
    while (n > 0) {
        store_evict(g);
        if (g->count - store_base(g) >= g->max_events + VZ_CHUNK && !atomic_load(&g->stop)) {
            g->st.waiting = 1;
            pthread_mutex_unlock(&g->lock);
            sleep_ms(5);
            pthread_mutex_lock(&g->lock);
            continue;
        }
        g->st.waiting = 0;
        size_t ci = (size_t)(g->count / VZ_CHUNK - g->base_chunk);
        size_t off = (size_t)(g->count % VZ_CHUNK);
        if (ci >= g->nchunks) {
            if (g->nchunks == g->cap_chunks) {
                size_t cap = g->cap_chunks ? g->cap_chunks * 2 : 16;
                vm_event **nc = realloc(g->chunks, cap * sizeof *nc);
                if (!nc) break;
                g->chunks = nc;
                g->cap_chunks = cap;
            }
            g->chunks[g->nchunks] = malloc(VZ_CHUNK * sizeof(vm_event));
            if (!g->chunks[g->nchunks]) break;
            g->nchunks++;
        }
        size_t take = VZ_CHUNK - off < n ? VZ_CHUNK - off : n;
        memcpy(&g->chunks[ci][off], ev, take * sizeof *ev);
        g->count += take;
        ev += take;
        n -= take;
    }
    if (n > 0) snprintf(g->st.message, sizeof g->st.message, "out of memory: %zu events lost", n);
    g->st.count = g->count;
    pthread_mutex_unlock(&g->lock);
}

static void batch_flush(vz_ingest *g)
{
    if (g->nbatch) store_append(g, g->batch, g->nbatch);
    g->nbatch = 0;
}

static void site_store(vz_ingest *g, const amm_trace_event *ev)
{
    uint32_t id = ev->rec.aux_a;
    if (id >= VZ_SITE_MAX) return;
    pthread_mutex_lock(&g->lock);
    if (id >= g->sites_cap) {
        size_t cap = g->sites_cap ? g->sites_cap : 256;
        while (cap <= id) cap *= 2;
        char(*n)[VZ_SITE_LEN] = realloc(g->sites, cap * VZ_SITE_LEN);
        if (n) {
            memset(n + g->sites_cap, 0, (cap - g->sites_cap) * VZ_SITE_LEN);
            g->sites = n;
            g->sites_cap = cap;
        }
    }
    if (id < g->sites_cap) {
        size_t len = strnlen(ev->text, sizeof ev->text);
        const char *t = len >= VZ_SITE_LEN ? ev->text + len - (VZ_SITE_LEN - 1) : ev->text;
        copy_text(g->sites[id], VZ_SITE_LEN, t);
    }
    pthread_mutex_unlock(&g->lock);
}

void vz_push(vz_ingest *g, const amm_trace_event *ev)
{
    if (ev->rec.op == AMM_TOP_SITE) {
        batch_flush(g);
        site_store(g, ev);
    }
    vm_event_from_trace(&g->batch[g->nbatch++], ev);
    if (g->nbatch == VZ_BATCH) batch_flush(g);
}

void vz_flush(vz_ingest *g) { batch_flush(g); }

size_t vz_read(vz_ingest *g, uint64_t from, vm_event *out, size_t max)
{
    size_t done = 0;
    pthread_mutex_lock(&g->lock);
    while (done < max && from >= store_base(g) && from < g->count) {
        size_t ci = (size_t)(from / VZ_CHUNK - g->base_chunk);
        size_t off = (size_t)(from % VZ_CHUNK);
        size_t take = VZ_CHUNK - off;
        if (take > max - done) take = max - done;
        if (take > g->count - from) take = (size_t)(g->count - from);
        memcpy(out + done, &g->chunks[ci][off], take * sizeof *out);
        done += take;
        from += take;
    }
    pthread_mutex_unlock(&g->lock);
    return done;
}

void vz_event_expand(vz_ingest *g, const vm_event *in, amm_trace_event *out)
{
    vm_event_to_trace(out, in);
    if (in->rec.op != AMM_TOP_SITE) return;
    pthread_mutex_lock(&g->lock);
    if (in->rec.aux_a < g->sites_cap) copy_text(out->text, sizeof out->text, g->sites[in->rec.aux_a]);
    pthread_mutex_unlock(&g->lock);
}

void vz_set_consumed(vz_ingest *g, uint64_t idx)
{
    pthread_mutex_lock(&g->lock);
    g->consumed = idx;
    pthread_mutex_unlock(&g->lock);
}

void vz_get_stat(vz_ingest *g, vz_stat *out)
{
    pthread_mutex_lock(&g->lock);
    *out = g->st;
    out->base = store_base(g);
    out->count = g->count;
    pthread_mutex_unlock(&g->lock);
}

/* ---- reading a stream -------------------------------------------------------- */

static void stat_update(vz_ingest *g, amm_trace_reader *r)
{
    uint64_t d = amm_trace_dropped(r);
    pthread_mutex_lock(&g->lock);
    g->st.dropped += d - g->reader_dropped;
    g->st.bytes = amm_trace_offset(r);
    g->st.unknown = amm_trace_unknown_skipped(r);
    pthread_mutex_unlock(&g->lock);
    g->reader_dropped = d;
}

/* Waits for more input: poll on a pipe/socket, a short sleep on a followed file. */
static void wait_input(int fd)
{
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 50);
    } else {
        sleep_ms(20);
    }
}

/* Reads one stream until it ends, fails, or stop is asked. */
static void read_stream(vz_ingest *g, amm_trace_reader *r, int fd)
{
    amm_trace_event ev;
    g->reader_dropped = 0;
    pthread_mutex_lock(&g->lock);
    g->st.connected = 1;
    g->st.streams++;
    int later = g->st.streams > 1;
    pthread_mutex_unlock(&g->lock);
    if (later) {
        memset(&ev, 0, sizeof ev);
        ev.rec.op = VM_OP_STREAM_START;
        vz_push(g, &ev);
    }
    unsigned since_stat = 0;
    while (!atomic_load(&g->stop)) {
        amm_trace_status s = amm_trace_next(r, &ev);
        if (s == AMM_TRACE_OK) {
            vz_push(g, &ev);
            if (++since_stat == 65536) {
                since_stat = 0;
                stat_update(g, r);
            }
            continue;
        }
        batch_flush(g);
        stat_update(g, r);
        if (s == AMM_TRACE_AGAIN) {
            wait_input(fd);
        } else if (s == AMM_TRACE_DAMAGED) {
            pthread_mutex_lock(&g->lock);
            g->st.damaged++;
            g->st.damage_offset = amm_trace_offset(r);
            copy_text(g->st.message, sizeof g->st.message, amm_trace_error(r));
            pthread_mutex_unlock(&g->lock);
        } else {
            const char *e = amm_trace_error(r);
            if (s == AMM_TRACE_FATAL)
                set_failed(g, e && *e ? e : "unreadable stream");
            else if (e && *e)
                set_message(g, e);
            break;
        }
    }
    batch_flush(g);
    pthread_mutex_lock(&g->lock);
    g->st.connected = 0;
    pthread_mutex_unlock(&g->lock);
}

static void run_fd_source(vz_ingest *g, int fd, int own)
{
    char err[256] = "";
    amm_trace_reader *r = amm_trace_open_fd(fd, own, g->follow ? AMM_TRACE_FOLLOW : 0u, err, sizeof err);
    if (!r) {
        set_failed(g, err);
        if (own) close(fd);
        return;
    }
    read_stream(g, r, fd);
    amm_trace_close(r);
}

static void run_listen(vz_ingest *g)
{
    while (!atomic_load(&g->stop)) {
        struct pollfd p = {g->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int c = accept(g->listen_fd, NULL, NULL);
        if (c < 0) continue;
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
        run_fd_source(g, c, 1);
    }
}

static void run_source(vz_ingest *g)
{
    if (g->kind == VZ_SRC_LISTEN) {
        run_listen(g);
    } else if (g->kind == VZ_SRC_STDIN) {
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        run_fd_source(g, 0, 0);
    } else if (g->kind == VZ_SRC_FILE) {
        int fd = open(g->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "cannot open %s: %s", g->path, strerror(errno));
            set_failed(g, msg);
        } else {
            run_fd_source(g, fd, 1);
        }
    }
    batch_flush(g);
    pthread_mutex_lock(&g->lock);
    g->st.finished = 1;
    pthread_mutex_unlock(&g->lock);
}

static void *thread_main(void *arg)
{
    run_source(arg);
    return NULL;
}

/* ---- lifetime ------------------------------------------------------------------ */

static int listen_socket(const char *path, char *err, size_t err_len)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, err_len, "socket path too long (%zu bytes, at most %zu): %s", strlen(path),
                 sizeof sa.sun_path - 1, path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            snprintf(err, err_len, "%s exists and is not a socket; not replacing it", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

vz_ingest *vz_ingest_new(vz_source_kind kind, const char *path, int follow, uint64_t max_events, char *err,
                         size_t err_len)
{
    vz_ingest *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    g->kind = kind;
    g->follow = follow;
    g->listen_fd = -1;
    g->max_events = max_events ? max_events : (uint64_t)2 << 20;
    if (g->max_events < VZ_CHUNK) g->max_events = VZ_CHUNK;
    snprintf(g->path, sizeof g->path, "%s", path ? path : "");
    pthread_mutex_init(&g->lock, NULL);
    atomic_init(&g->stop, 0);
    if (kind == VZ_SRC_LISTEN) {
        g->listen_fd = listen_socket(g->path, err, err_len);
        if (g->listen_fd < 0) {
            pthread_mutex_destroy(&g->lock);
            free(g);
            return NULL;
        }
    }
    return g;
}

int vz_ingest_start(vz_ingest *g, char *err, size_t err_len)
{
    if (g->kind == VZ_SRC_NONE) return 0;
    int rc = pthread_create(&g->thread, NULL, thread_main, g);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the ingest thread: %s", strerror(rc));
        return -1;
    }
    g->started = 1;
    return 0;
}

void vz_ingest_run_sync(vz_ingest *g)
{
    if (g->kind != VZ_SRC_LISTEN && g->kind != VZ_SRC_NONE) run_source(g);
    batch_flush(g);
}

void vz_ingest_free(vz_ingest *g)
{
    if (!g) return;
    atomic_store(&g->stop, 1);
    if (g->started) pthread_join(g->thread, NULL);
    batch_flush(g);
    if (g->listen_fd >= 0) {
        close(g->listen_fd);
        unlink(g->path);
    }
    for (size_t i = 0; i < g->nchunks; i++) free(g->chunks[i]);
    free(g->chunks);
    free(g->sites);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
