/*
 * test_trace_io.c - the trace writer's destinations under stress: 8 threads
 * writing through a pipe whose reader stops (drops counted, DROPPED record
 * when it drains, program unharmed), a pipe whose reader is gone (no
 * SIGPIPE death), a unix socket, fd:N on a file, and a FOLLOW reader
 * keeping up with a live trace.
 *
 * Nothing here is timed: waits are for events, bounded only so that a bug
 * fails the test instead of hanging it.
 *
 * Run one test: ./test_trace_io <name> [--seed N].
 */
#include "harness.h"

#include <amm/trace.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

typedef struct collected {
    amm_trace_reader *r;
    uint64_t watch_size;    /* allocs of this size are counted in watched */
    size_t events, allocs, frees, dropped_records, destroys, watched;
    uint64_t last_seq;
    int out_of_order, damaged, fatal;
} collected;

static void *collect_main(void *arg) {
    collected *c = arg;
    amm_trace_event e;
    int first = 1;
    for (;;) {
        amm_trace_status st = amm_trace_next(c->r, &e);
        if (st == AMM_TRACE_DAMAGED) {
            c->damaged++;
            continue;
        }
        if (st != AMM_TRACE_OK) {
            c->fatal = st == AMM_TRACE_FATAL;
            break;
        }
        if (!first && e.seq <= c->last_seq) c->out_of_order++;
        first = 0;
        c->last_seq = e.seq;
        c->events++;
        c->allocs += e.rec.op == AMM_TOP_ALLOC;
        c->watched += e.rec.op == AMM_TOP_ALLOC && e.rec.size == c->watch_size;
        c->destroys += e.rec.op == AMM_TOP_MANAGER_DESTROY;
        c->frees += e.rec.op == AMM_TOP_FREE;
        c->dropped_records += e.rec.op == AMM_TOP_DROPPED;
    }
    return NULL;
}

static amm_manager *traced(const char *dest) {
    amm_config cfg;
    amm_config_defaults(&cfg);
    cfg.trace = dest;
    return amm_create(&cfg);
}

/* A fresh temporary file: path (at least 32 bytes) and "file:<path>" in dest. */
static void temp_file_dest(char *path, size_t path_len, char *dest, size_t dest_len) {
    snprintf(path, path_len, "/tmp/amm_trace_io_XXXXXX");
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    snprintf(dest, dest_len, "file:%s", path);
}

/* Reads the whole trace at path into c (c->r closed again), counting allocs
 * of watch_size bytes; 0, or -1 if it cannot be opened. */
static int collect_file_watching(const char *path, uint64_t watch_size, collected *c) {
    char err[256];
    memset(c, 0, sizeof *c);
    c->watch_size = watch_size;
    c->r = amm_trace_open_file(path, 0, err, sizeof err);
    if (c->r == NULL) return -1;
    collect_main(c);
    amm_trace_close(c->r);
    c->r = NULL;
    return 0;
}

static int collect_file(const char *path, collected *c) { return collect_file_watching(path, 0, c); }

/* ------------------------------------------------------------------------ */
/* 8 threads, a reader that stops                                           */
/* ------------------------------------------------------------------------ */

typedef struct worker {
    amm_manager *m;
    int id, ops;
    long long bad;   /* pattern mismatches */
    int failed;      /* allocations refused */
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    h_rng rng = h_rng_make(h_seed() + (uint64_t)w->id);
    for (int i = 0; i < w->ops; i++) {
        size_t n = (size_t)h_rand_range(&rng, 1, 300);
        void *p = amm_alloc(w->m, n, 0);
        if (p == NULL) {
            w->failed++;
            continue;
        }
        h_fill(p, n, (uint64_t)i);
        if (h_verify(p, n, (uint64_t)i) >= 0) w->bad++;
        if (amm_free(w->m, p) != 0) w->failed++;
    }
    return NULL;
}

TEST(eight_threads_with_a_stuck_pipe_reader) {
    printf("eight_threads_with_a_stuck_pipe_reader: seed %llu\n", (unsigned long long)h_seed());
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    char dest[32];
    snprintf(dest, sizeof dest, "fd:%d", fds[1]);
    amm_manager *m = traced(dest);
    ASSERT_NOT_NULL(m);

    /* nobody reads: the pipe fills, then the writer's buffer, then records drop */
    worker w[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.m = m, .id = i, .ops = 20000};
        ASSERT_EQ(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        EXPECT_EQ(w[i].bad, 0);
        EXPECT_EQ(w[i].failed, 0);
    }
    EXPECT_EQ(amm_check(m), 0u);
    uint64_t drops = amm_trace_drop_count(m);
    printf("  dropped while stuck: %llu records\n", (unsigned long long)drops);
    EXPECT_GT(drops, 0u); /* 320,000+ records cannot fit a 1 MiB buffer and a pipe */

    /* the reader drains; once the writer has room again it reports the drops */
    char err[256];
    collected c = {0};
    c.r = amm_trace_open_fd(fds[0], 1, 0, err, sizeof err);
    ASSERT_NOT_NULL(c.r);
    pthread_t reader;
    ASSERT_EQ(pthread_create(&reader, NULL, collect_main, &c), 0);
    amm_trace_flush(m); /* returns once the backlog is written */
    for (int i = 0; i < 10; i++) amm_free(m, amm_alloc(m, 16, 0));
    uint64_t drops_total = amm_trace_drop_count(m);
    amm_destroy(m); /* drains the rest */
    close(fds[1]);
    pthread_join(reader, NULL);
    EXPECT_EQ(c.damaged, 0);
    EXPECT_EQ(c.fatal, 0);
    EXPECT_EQ(c.out_of_order, 0);
    EXPECT_GE(c.dropped_records, 1u);
    EXPECT_EQ(amm_trace_dropped(c.r), drops_total); /* every drop is recorded */
    EXPECT_GT(c.allocs, 10u);
    printf("  read %zu events, %zu DROPPED records reporting %llu drops\n", c.events, c.dropped_records,
           (unsigned long long)amm_trace_dropped(c.r));
    amm_trace_close(c.r);
}

/* ------------------------------------------------------------------------ */
/* A reader that is gone                                                    */
/* ------------------------------------------------------------------------ */

TEST(closed_pipe_does_not_kill_the_program) {
    signal(SIGPIPE, SIG_DFL); /* the default action would end this process */
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    close(fds[0]);
    char dest[32];
    snprintf(dest, sizeof dest, "fd:%d", fds[1]);
    amm_manager *m = traced(dest);
    ASSERT_NOT_NULL(m);
    for (int i = 0; i < 5000; i++) amm_free(m, amm_alloc(m, 32, 0));
    amm_trace_flush(m);
    for (int i = 0; i < 10; i++) amm_free(m, amm_alloc(m, 32, 0));
    EXPECT_GT(amm_trace_drop_count(m), 0u);
    EXPECT_EQ(amm_check(m), 0u);
    amm_destroy(m);
    close(fds[1]);
}

/* A reader that never reads: destroy gives up on it instead of hanging. */
TEST(destroy_returns_with_a_reader_that_never_reads) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    char dest[32];
    snprintf(dest, sizeof dest, "fd:%d", fds[1]);
    amm_manager *m = traced(dest);
    ASSERT_NOT_NULL(m);
    for (int i = 0; i < 100000; i++) amm_free(m, amm_alloc(m, 32, 0));
    EXPECT_GT(amm_trace_drop_count(m), 0u);
    amm_trace_flush(m); /* returns although nothing can be written */
    amm_destroy(m);     /* returns: the test would time out otherwise */
    /* what did get through is a readable prefix */
    close(fds[1]);
    char err[256];
    collected c = {0};
    c.r = amm_trace_open_fd(fds[0], 1, 0, err, sizeof err);
    ASSERT_NOT_NULL(c.r);
    collect_main(&c);
    EXPECT_EQ(c.fatal, 0);
    EXPECT_EQ(c.damaged, 0);
    EXPECT_GT(c.allocs, 0u);
    amm_trace_close(c.r);
}

/* ------------------------------------------------------------------------ */
/* Other destinations                                                       */
/* ------------------------------------------------------------------------ */

TEST(unix_socket_destination) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/amm_trace_sock_%d", (int)getpid());
    unlink(path);
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(ls, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    ASSERT_EQ(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(ls, 1), 0);
    char dest[80];
    snprintf(dest, sizeof dest, "unix:%s", path);
    amm_manager *m = traced(dest); /* connects; the backlog holds it until accept */
    ASSERT_NOT_NULL(m);
    int s = accept(ls, NULL, NULL);
    ASSERT_GE(s, 0);
    char err[256];
    collected c = {0};
    c.r = amm_trace_open_fd(s, 1, 0, err, sizeof err);
    ASSERT_NOT_NULL(c.r);
    pthread_t reader;
    ASSERT_EQ(pthread_create(&reader, NULL, collect_main, &c), 0);
    for (int i = 0; i < 3000; i++) amm_free(m, amm_alloc(m, (size_t)i % 200 + 1, 0));
    amm_destroy(m); /* closes the connection: the reader sees the end */
    pthread_join(reader, NULL);
    EXPECT_EQ(c.allocs, 3000u);
    EXPECT_EQ(c.frees, 3000u);
    EXPECT_EQ(c.damaged, 0);
    EXPECT_EQ(c.fatal, 0);
    EXPECT_EQ(amm_trace_dropped(c.r), 0u);
    amm_trace_close(c.r);
    close(ls);
    unlink(path);
}

TEST(fd_destination_on_a_file) {
    char path[] = "/tmp/amm_trace_fd_XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    char dest[32];
    snprintf(dest, sizeof dest, "fd:%d", fd);
    amm_manager *m = traced(dest);
    ASSERT_NOT_NULL(m);
    for (int i = 0; i < 100; i++) amm_free(m, amm_alloc(m, 8, 0));
    amm_destroy(m);
    EXPECT_NE(fcntl(fd, F_GETFD), -1); /* fd:N stays the caller's */
    close(fd);
    collected c;
    ASSERT_EQ(collect_file(path, &c), 0);
    EXPECT_EQ(c.allocs, 100u);
    EXPECT_EQ(c.fatal, 0);
    unlink(path);
}

/* A program that exits without destroying its manager still leaves its records. */
TEST(exit_without_destroy_flushes) {
    char path[64], dest[80];
    temp_file_dest(path, sizeof path, dest, sizeof dest);
    fflush(stdout);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        amm_manager *m = traced(dest);
        for (int i = 0; i < 7; i++) (void)amm_alloc(m, 24, 0);
        exit(m != NULL ? 0 : 3); /* no amm_destroy: the atexit flush must write the records */
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    collected c;
    ASSERT_EQ(collect_file(path, &c), 0);
    EXPECT_EQ(c.allocs, 7u);
    EXPECT_EQ(c.fatal, 0);
    unlink(path);
}

/* A forked child that keeps allocating is not traced and does not hang (it
 * has no flusher thread); the parent's trace goes on, with none of the
 * child's records in it. */
TEST(forked_child_is_not_traced) {
    char path[64], dest[80];
    temp_file_dest(path, sizeof path, dest, sizeof dest);
    amm_manager *m = traced(dest);
    ASSERT_NOT_NULL(m);
    for (int i = 0; i < 5; i++) amm_free(m, amm_alloc(m, 24, 0));
    fflush(stdout);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        alarm(60); /* a hang fails the test instead of stalling it */
        int bad = 0;
        for (int i = 0; i < 200000; i++) {
            void *p = amm_alloc(m, 777, 0); /* a size the parent never uses */
            bad += p == NULL || amm_free(m, p) != 0;
        }
        amm_destroy(m);
        exit(bad ? 3 : 0); /* the atexit flush has nothing left to do */
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 5; i++) amm_free(m, amm_alloc(m, 40, 0));
    amm_destroy(m);
    collected c;
    ASSERT_EQ(collect_file_watching(path, 777, &c), 0);
    EXPECT_EQ(c.fatal, 0);
    EXPECT_EQ(c.damaged, 0);
    EXPECT_EQ(c.allocs, 10u);
    EXPECT_EQ(c.watched, 0u); /* none of the child's */
    EXPECT_EQ(c.destroys, 1u);
    unlink(path);
}

/* More traced managers than the exit flush keeps track of (64): in a forked
 * child every one of them runs untraced, the last created too.  (amm's fork
 * handler holds all 70 manager locks at once; they are amm's own futex locks,
 * so ThreadSanitizer's limit of 64 pthread mutexes held by one thread does
 * not apply and this runs under TSan too.) */
TEST(forked_child_with_many_traced_managers) {
    enum { N = 70 };
    amm_manager *ms[N];
    for (int i = 0; i < N; i++) {
        ms[i] = traced("file:/dev/null");
        ASSERT_NOT_NULL(ms[i]);
    }
    fflush(stdout);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        alarm(60);
        int bad = 0;
        for (int k = 0; k < N; k += N - 1) { /* the first and the last */
            for (int i = 0; i < 100000; i++) {
                void *p = amm_alloc(ms[k], 64, 0);
                bad += p == NULL || amm_free(ms[k], p) != 0;
            }
        }
        _exit(bad ? 3 : 0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < N; i++) amm_destroy(ms[i]);
}

/* ------------------------------------------------------------------------ */
/* A FOLLOW reader on a live trace                                          */
/* ------------------------------------------------------------------------ */

static size_t drain(amm_trace_reader *r, unsigned op, amm_trace_status *last) {
    amm_trace_event e;
    size_t n = 0;
    while ((*last = amm_trace_next(r, &e)) == AMM_TRACE_OK) n += e.rec.op == op;
    return n;
}

TEST(follow_reader_keeps_up_with_a_live_trace) {
    char path[64], dest[80];
    temp_file_dest(path, sizeof path, dest, sizeof dest);
    amm_manager *m = traced(dest);
    ASSERT_NOT_NULL(m);
    char err[256];
    amm_trace_reader *r = amm_trace_open_file(path, AMM_TRACE_FOLLOW, err, sizeof err);
    ASSERT_NOT_NULL(r);
    amm_trace_status st;
    for (int round = 1; round <= 5; round++) {
        for (int i = 0; i < round * 300; i++) amm_free(m, amm_alloc(m, 24, 0));
        amm_trace_flush(m);
        EXPECT_EQ(drain(r, AMM_TOP_ALLOC, &st), (size_t)round * 300);
        EXPECT_EQ(st, AMM_TRACE_AGAIN);
    }
    /* without a flush, the writer still sends an idle chunk out (every 50 ms) */
    void *p = amm_alloc(m, 40, 0);
    size_t seen = 0;
    for (int tries = 0; tries < 1000 && seen == 0; tries++) { /* up to 10 s: a bound, not a timing */
        seen = drain(r, AMM_TOP_ALLOC, &st);
        if (seen == 0) usleep(10000);
    }
    EXPECT_EQ(seen, 1u);
    amm_free(m, p);
    amm_destroy(m);
    EXPECT_GE(drain(r, AMM_TOP_MANAGER_DESTROY, &st), 1u);
    EXPECT_EQ(st, AMM_TRACE_AGAIN); /* FOLLOW never ends by itself */
    amm_trace_close(r);
    unlink(path);
}
