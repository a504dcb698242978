/*
 * test_fork.c - fork() while other threads are inside amm: the child must
 * find every manager unlocked and whole (amm's atfork handlers hold each
 * manager's lock across the fork).  Without them a child forked while a
 * thread held the lock waits forever; an alarm turns that into a failure.
 *
 * Run one test: ./test_fork <name> [--seed N].
 */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define HAMMERS 3
#define FORKS 30

/* Fork handlers of the program that use amm, registered before amm's own
 * (constructor priority 101 runs before amm's default-priority one): their
 * prepare runs after amm's prepare, their child handler before amm's release,
 * so they call amm while the forking thread holds every manager lock. */
static amm_manager *_Atomic handler_manager;
static atomic_int handler_calls;

static void handler_use_amm(void)
{
    amm_manager *m = atomic_load(&handler_manager);
    if (m) {
        void *p = amm_alloc(m, 40, 0);
        if (p && amm_free(m, p) == 0)
            atomic_fetch_add(&handler_calls, 1);
    }
}

__attribute__((constructor(101))) static void register_early_handlers(void)
{
    pthread_atfork(handler_use_amm, handler_use_amm, handler_use_amm);
}

typedef struct hammer {
    amm_manager *m;
    atomic_int *stop;
    int id;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = (hammer *)arg;
    h_rng r = h_rng_make(h_seed() + (uint64_t)h->id);
    while (!atomic_load(h->stop)) {
        void *p = amm_alloc(h->m, (size_t)h_rand_range(&r, 1, 400), 0);
        if (p)
            amm_free(h->m, p);
    }
    return NULL;
}

/* Forks n children one after the other; child i runs child(arg, i) under a
 * 10 s alarm (a lock inherited taken hangs it: SIGALRM fails it) and exits
 * with what it returns.  The parent's side is bounded by a 60 s alarm (a
 * deadlock in fork itself fails the test).  Returns how many exited 0. */
typedef int (*child_fn)(void *arg, int i);

static int fork_children(int n, child_fn child, void *arg)
{
    int ok = 0;
    alarm(60);
    for (int i = 0; i < n; i++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            alarm(10);
            _exit(child(arg, i));
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid)
            break;
        if (WIFSIGNALED(status))
            printf("    child %d killed by signal %d (%s)\n", i, WTERMSIG(status),
                   WTERMSIG(status) == SIGALRM ? "it hung" : "it crashed");
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    alarm(0);
    return ok;
}

/* The child: both managers work, check clean, and go away. */
static int child_main(void *arg, int i)
{
    amm_manager **ms = (amm_manager **)arg, *m = ms[0], *other = ms[1];
    int bad = 0;
    (void)i;
    for (int i = 0; i < 500; i++) {
        void *p = amm_alloc(m, (size_t)(i % 300) + 1, 0);
        void *q = amm_alloc(other, 32, 0);
        bad += p == NULL || q == NULL;
        bad += amm_free(m, p) != 0;
        bad += amm_free(other, q) != 0;
    }
    bad += amm_check(m) != 0;
    bad += amm_check(other) != 0;
    amm_destroy(other);
    amm_destroy(m);
    return bad ? 3 : 0;
}

TEST(fork_while_threads_allocate)
{
    h_faults f, g;
    amm_manager *m = h_new_manager("", &f);
    amm_manager *other = h_new_manager("quarantine=0,quarantine_blocks=0", &g);
    atomic_int stop = 0;
    pthread_t th[HAMMERS];
    hammer h[HAMMERS];
    amm_manager *both[2] = {m, other};
    int children_ok;
    ASSERT_NOT_NULL(m);
    ASSERT_NOT_NULL(other);
    for (int t = 0; t < HAMMERS; t++) {
        h[t] = (hammer){t % 2 ? other : m, &stop, t}; /* other has no quarantine: thread caches */
        ASSERT_EQ(pthread_create(&th[t], NULL, hammer_main, &h[t]), 0);
    }
    children_ok = fork_children(FORKS, child_main, both);
    atomic_store(&stop, 1);
    for (int t = 0; t < HAMMERS; t++)
        EXPECT_EQ(pthread_join(th[t], NULL), 0);
    EXPECT_EQ(children_ok, FORKS);
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    EXPECT_FAULTS(&g, 0);
    amm_destroy(other);
    amm_destroy(m);
}

/* A visitor of m1 that uses m2 (allowed: it is another manager) holds m1's
 * lock while it waits for m2's.  A fork meanwhile must not take m2 and then
 * wait for m1: amm's prepare handler takes the locks with trylock and backs
 * off.  A deadlock here would hang the test itself: the alarm fails it. */
typedef struct cross_ctx {
    amm_manager *m1, *m2;
    atomic_int *stop;
    size_t calls;
} cross_ctx;

static int cross_visit(const amm_block_info *b, void *user)
{
    cross_ctx *c = (cross_ctx *)user;
    (void)b;
    void *p = amm_alloc(c->m2, 16, 0);
    if (p)
        amm_free(c->m2, p);
    c->calls++;
    return 0;
}

static void *walker_main(void *arg)
{
    cross_ctx *c = (cross_ctx *)arg;
    while (!atomic_load(c->stop))
        amm_walk(c->m1, cross_visit, c);
    return NULL;
}

TEST(fork_while_a_visitor_uses_another_manager)
{
    h_faults f1, f2;
    amm_manager *m1 = h_new_manager("", &f1);
    amm_manager *m2 = h_new_manager("", &f2); /* created last: first in amm's list */
    atomic_int stop = 0;
    cross_ctx c = {m1, m2, &stop, 0};
    pthread_t walker;
    void *keep[32];
    amm_manager *both[2] = {m1, m2};
    int children_ok;
    ASSERT_NOT_NULL(m1);
    ASSERT_NOT_NULL(m2);
    for (int i = 0; i < 32; i++)
        ASSERT_NOT_NULL(keep[i] = amm_alloc(m1, 40, 0));
    ASSERT_EQ(pthread_create(&walker, NULL, walker_main, &c), 0);
    children_ok = fork_children(20, child_main, both);
    atomic_store(&stop, 1);
    EXPECT_EQ(pthread_join(walker, NULL), 0);
    EXPECT_EQ(children_ok, 20);
    EXPECT_GT(c.calls, 0);
    for (int i = 0; i < 32; i++)
        EXPECT_EQ(amm_free(m1, keep[i]), 0);
    EXPECT_FAULTS(&f1, 0);
    EXPECT_FAULTS(&f2, 0);
    amm_destroy(m2);
    amm_destroy(m1);
}

/* The program's own fork handlers (registered before amm's) allocate through
 * amm in every phase: prepare, parent and child. */
static int handler_child(void *arg, int i)
{
    (void)arg;
    return atomic_load(&handler_calls) == 2 * i + 2 ? 0 : 3; /* the prepares, parents, and this child */
}

TEST(fork_handlers_that_use_amm)
{
    h_faults f;
    amm_manager *m = h_new_manager("", &f);
    int children_ok;
    ASSERT_NOT_NULL(m);
    atomic_store(&handler_calls, 0);
    atomic_store(&handler_manager, m);
    children_ok = fork_children(5, handler_child, NULL);
    atomic_store(&handler_manager, NULL);
    EXPECT_EQ(children_ok, 5);
    EXPECT_EQ(atomic_load(&handler_calls), 10); /* prepare and parent, five times */
    EXPECT_EQ(amm_check(m), 0);
    EXPECT_FAULTS(&f, 0);
    amm_destroy(m);
}

/* Eight threads, each keeping its own manager busy: the fork must still get
 * every lock soon (threads entering amm wait while a fork is prepared). */
typedef struct own_hammer {
    amm_manager *m;
    atomic_int *stop;
} own_hammer;

static void *own_hammer_main(void *arg)
{
    own_hammer *h = (own_hammer *)arg;
    unsigned n = 0;
    while (!atomic_load(h->stop)) {
        void *p = amm_alloc(h->m, 16 + n++ % 500, 0);
        if (p)
            amm_free(h->m, p);
    }
    return NULL;
}

enum { BUSY = 8 };

static int busy_child(void *arg, int i)
{
    own_hammer *h = (own_hammer *)arg;
    int bad = 0;
    (void)i;
    for (int t = 0; t < BUSY; t++) {
        void *p = amm_alloc(h[t].m, 32, 0);
        bad += p == NULL || amm_free(h[t].m, p) != 0;
    }
    return bad ? 3 : 0;
}

TEST(fork_while_eight_managers_are_busy)
{
    enum { T = BUSY };
    h_faults f[T];
    own_hammer h[T];
    pthread_t th[T];
    atomic_int stop = 0;
    int children_ok;
    for (int t = 0; t < T; t++) {
        h[t].m = h_new_manager("", &f[t]);
        h[t].stop = &stop;
        ASSERT_NOT_NULL(h[t].m);
        ASSERT_EQ(pthread_create(&th[t], NULL, own_hammer_main, &h[t]), 0);
    }
    /* each fork took seconds, or forever, when the locks were retaken as fast as released */
    children_ok = fork_children(10, busy_child, h);
    atomic_store(&stop, 1);
    for (int t = 0; t < T; t++)
        EXPECT_EQ(pthread_join(th[t], NULL), 0);
    EXPECT_EQ(children_ok, 10);
    for (int t = 0; t < T; t++) {
        EXPECT_FAULTS(&f[t], 0);
        amm_destroy(h[t].m);
    }
}

/* A lock held for a long time (a slow error handler) delays the fork; the
 * child still finds the manager unlocked. */
static void slow_handler(const amm_report *r, void *user)
{
    (void)r;
    atomic_store((atomic_int *)user, 1);
    nanosleep(&(struct timespec){0, 300000000}, NULL); /* 0.3 s inside the handler, lock held */
}

static atomic_int faulting_may_end;

static void *faulting_main(void *arg)
{
    amm_manager *m = (amm_manager *)arg;
    int local;
    amm_free(m, &local); /* invalid pointer: the slow handler runs */
    while (!atomic_load(&faulting_may_end)) /* alive until the child is done (TSan: no finished, */
        sched_yield();                      /* unjoined thread in the child) */
    return NULL;
}

static int one_alloc_child(void *arg, int i)
{
    amm_manager *m = (amm_manager *)arg;
    void *p = amm_alloc(m, 8, 0);
    (void)i;
    return p != NULL && amm_free(m, p) == 0 ? 0 : 3;
}

TEST(fork_waits_for_a_slow_error_handler)
{
    amm_config cfg;
    atomic_int in_handler = 0;
    amm_config_defaults(&cfg);
    cfg.on_fault = slow_handler;
    cfg.on_fault_user = &in_handler;
    amm_manager *m = amm_create(&cfg);
    pthread_t th;
    ASSERT_NOT_NULL(m);
    atomic_store(&faulting_may_end, 0);
    ASSERT_EQ(pthread_create(&th, NULL, faulting_main, m), 0);
    while (!atomic_load(&in_handler))
        sched_yield();
    EXPECT_EQ(fork_children(1, one_alloc_child, m), 1); /* the fork waits for the handler to return */
    atomic_store(&faulting_may_end, 1);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    EXPECT_EQ(amm_fault_count(m), 1);
    amm_destroy(m);
}
