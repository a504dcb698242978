/*
 * manager.c - the public entry points: each takes the manager's lock, checks
 * its arguments, looks the pointer up (registry.c) before touching it, and
 * hands the work to pool.c, heap.c or large.c.
 *
 * A block's life:  alloc -> LIVE --free/release to 0--> QUARANTINED --evicted--> FREE
 * (with quarantine off, or for a block larger than it, LIVE goes straight to FREE).
 * A small heap chunk may stop short of FREE, kept whole for reuse (AMM__BINNED,
 * heap.c): still a freed block to every check, free space to walks and stats.
 * Counters follow the invariants listed in internal.h.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hot.h"

/* ---- locking and fork ----
 *
 * Every live manager is on one list.  Around fork() the prepare handler holds
 * the list's mutex and every manager's lock; the parent and the child release
 * them.  So the child never inherits a manager locked by a thread that does
 * not exist there (it would hang at its first call), nor a trace writer with
 * no thread behind it: the child drops every tracer (its records would mix
 * with the parent's) and runs on untraced.
 *
 * Each thread knows which manager locks it holds (a short stack: a callback
 * of one manager may call another).  That makes three things work:
 *  - the fork gate: while a fork is being prepared, a thread entering amm
 *    from outside waits at amm__lock, so the locks drain instead of being
 *    taken again and again; a thread already inside (in a callback) goes on;
 *  - a fork() from inside a callback: the locks this thread holds are not
 *    waited for (the child's copy of the thread releases them as usual);
 *  - a fork handler that runs after amm's prepare, on the forking thread,
 *    may call amm: every lock is its own then, and amm__lock passes.
 * The prepare handler never blocks while it holds a manager lock (so a
 * callback of m1 waiting for m2 cannot deadlock with it): it takes what
 * trylock gives, and when one lock is busy it lets go of all and waits for
 * that one alone, then tries the rest again.
 */
#define AMM__HELD_MAX 8

typedef struct amm__thread_locks {
    unsigned depth;                     /* manager locks this thread holds */
    amm_manager *held[AMM__HELD_MAX];   /* the first AMM__HELD_MAX of them, in order */
    int fork_held;                      /* inside fork, after amm's prepare: all locks are this thread's */
} amm__thread_locks;

static _Thread_local amm__thread_locks tl_locks __attribute__((tls_model("initial-exec")));
static atomic_int fork_gate; /* forks being prepared (two threads may fork at once) */

/* Inline in this file's entry points; amm__lock/amm__unlock for the others. */
static inline __attribute__((always_inline)) void lock_take(amm_manager *m) {
    amm__thread_locks *t = &tl_locks;
    if (t->fork_held) return;
    if (t->depth == 0) {
        while (atomic_load_explicit(&fork_gate, memory_order_acquire)) sched_yield();
    }
    amm__mutex_lock(&m->lock);
    if (t->depth < AMM__HELD_MAX) t->held[t->depth] = m;
    t->depth++;
    const void *self = amm__tcache_self();
    if (__builtin_expect(m->tc_first != self, 0)) { /* a second thread: the manager is shared (tcache.c) */
        if (!m->tc_first) m->tc_first = self;
        else m->tc_shared = 1;
    }
}

static inline __attribute__((always_inline)) void lock_give(amm_manager *m) {
    amm__thread_locks *t = &tl_locks;
    if (t->fork_held) return;
    t->depth--;
    amm__mutex_unlock(&m->lock);
}

void amm__lock(amm_manager *m) { lock_take(m); }
void amm__unlock(amm_manager *m) { lock_give(m); }
int amm__fork_held(void) { return tl_locks.fork_held; }
void amm__fork_wait(void) {
    while (atomic_load_explicit(&fork_gate, memory_order_acquire)) sched_yield();
}

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static amm_manager *all_head;
static atomic_int fork_registered;

static int held_by_me(const amm_manager *m) {
    const amm__thread_locks *t = &tl_locks;
    for (unsigned i = 0; i < t->depth && i < AMM__HELD_MAX; i++) {
        if (t->held[i] == m) return 1;
    }
    return 0;
}

static int on_list(const amm_manager *m) {
    for (const amm_manager *x = all_head; x; x = x->all_next) {
        if (x == m) return 1;
    }
    return 0;
}

/* Takes all_mu without blocking while anything is held (a thread in
 * amm_create or amm_destroy holds it only briefly). */
static void all_mu_take(void) {
    while (pthread_mutex_trylock(&all_mu) != 0) sched_yield();
}

static void fork_prepare(void) {
    atomic_fetch_add_explicit(&fork_gate, 1, memory_order_acq_rel);
    all_mu_take();
    amm_manager *held = NULL; /* the lock waited for last time, held */
    for (;;) {
        if (held && !on_list(held)) { /* destroyed meanwhile (its destroy waits at the gate) */
            amm__mutex_unlock(&held->lock);
            held = NULL;
        }
        amm_manager *busy = NULL;
        for (amm_manager *m = all_head; m && !busy; m = m->all_next) {
            if (m != held && !held_by_me(m) && amm__mutex_trylock(&m->lock) != 0) busy = m;
        }
        if (!busy && amm__tcache_fork_trylock() == 0) {
            /* the thread caches last: an owner inside one waits for nothing */
            for (amm_manager *m = all_head; m; m = m->all_next) amm__tcache_fork_lock(m);
            tl_locks.fork_held = 1;
            return;
        }
        int wait_detach = !busy; /* a thread exiting or a destroy holds the caches' mutex: wait for it alone */
        for (amm_manager *m = all_head; m != busy; m = m->all_next) {
            if (m != held && !held_by_me(m)) amm__mutex_unlock(&m->lock);
        }
        if (held) amm__mutex_unlock(&held->lock);
        pthread_mutex_unlock(&all_mu);
        held = NULL;
        if (wait_detach) {
            amm__tcache_fork_mutex(1);
            amm__tcache_fork_mutex(0);
        } else {
            /* wait for the busy one holding nothing; it cannot be freed meanwhile:
             * amm_destroy takes its lock (through the gate) before it frees it */
            amm__mutex_lock(&busy->lock);
            held = busy;
        }
        all_mu_take();
    }
}

static void fork_release(int child) {
    if (!tl_locks.fork_held) return;
    tl_locks.fork_held = 0;
    if (child) amm__trace_forget_all_in_child();
    if (child) amm__tcache_fork_child();
    for (amm_manager *m = all_head; m; m = m->all_next) {
        if (child) amm__trace_forget_in_child(m);
        amm__tcache_fork_unlock(m, child); /* the child empties the caches of threads it has not */
        if (!held_by_me(m)) amm__mutex_unlock(&m->lock);
    }
    amm__tcache_fork_mutex(0);
    pthread_mutex_unlock(&all_mu);
    if (child) atomic_store_explicit(&fork_gate, 0, memory_order_release); /* no other fork goes on there */
    else atomic_fetch_sub_explicit(&fork_gate, 1, memory_order_acq_rel);
}

static void fork_parent(void) { fork_release(0); }
static void fork_child(void) { fork_release(1); }

static void fork_register(void) {
    int expected = 0; /* not pthread_once: under the shim, pthread_atfork may call malloc, so amm_create */
    if (atomic_compare_exchange_strong(&fork_registered, &expected, 1))
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void fork_register_early(void) { fork_register(); }

/* Inside a fork handler all_mu and every manager lock are this thread's
 * already: a manager created there is locked like the others (the release
 * unlocks it), one destroyed there is unlocked first. */
static void all_add(amm_manager *m) {
    fork_register(); /* done by the constructor already, unless constructors did not run */
    int in_fork = tl_locks.fork_held;
    if (!in_fork) pthread_mutex_lock(&all_mu);
    else amm__mutex_lock(&m->lock);
    m->all_prev = NULL;
    m->all_next = all_head;
    if (all_head) all_head->all_prev = m;
    all_head = m;
    if (!in_fork) pthread_mutex_unlock(&all_mu);
}

static void all_remove(amm_manager *m) {
    int in_fork = tl_locks.fork_held;
    if (!in_fork) pthread_mutex_lock(&all_mu);
    else if (!held_by_me(m)) amm__mutex_unlock(&m->lock);
    if (m->all_prev) m->all_prev->all_next = m->all_next;
    else all_head = m->all_next;
    if (m->all_next) m->all_next->all_prev = m->all_prev;
    if (!in_fork) pthread_mutex_unlock(&all_mu);
}

/* ---- creation ---- */

static void init_manager(amm_manager *m, const amm_config *cfg) {
    m->cfg = *cfg;
    if (cfg->trace == cfg->trace_buf) m->cfg.trace = m->cfg.trace_buf;
    m->canary = cfg->canary;
    m->front = amm__align_up(cfg->canary, AMM__GRANULE);
    m->on_fault = cfg->on_fault;
    m->on_fault_user = cfg->on_fault_user;
    m->secret = amm__os_random();
    amm__guard_init(m);
}

amm_manager *amm_create(const amm_config *cfg) {
    amm_config local;
    if (!cfg) {
        amm_config_defaults(&local);
        amm__config_from_env(&local);
        cfg = &local;
    }
    char err[256];
    if (amm__config_check(cfg, err, sizeof err) != 0) {
        amm__fault(NULL, AMM_ERR_BAD_OPTION, NULL, NULL, "create", err, 0, 0, NULL, 0);
        return NULL;
    }
    amm_manager *m = amm__os_map(sizeof *m);
    if (!m) {
        amm__fault(NULL, AMM_ERR_OUT_OF_MEMORY, NULL, NULL, "create", NULL, 0, sizeof *m, NULL, 0);
        return NULL;
    }
    atomic_init(&m->lock.state, 0); /* the mapping is zeroed already: this says so */
    init_manager(m, cfg);
    all_add(m);
    lock_take(m);
    if (m->cfg.trace && m->cfg.trace[0]) amm__trace_start_locked(m, m->cfg.trace);
    AMM__TRACE(m, amm__trace_manager(m, AMM_TOP_MANAGER_CREATE));
    lock_give(m);
    return m;
}

/* Valgrind: every block still live goes back, so none shows up as leaked. */
static int forget_live(const amm_block_info *b, void *user) {
    (void)user;
    if (b->state == AMM_BLOCK_LIVE) amm__san_free((uintptr_t)b->user, 0);
    return 0;
}

static void destroy_large(amm_manager *m) {
    for (size_t i = m->range_count; i-- > 0;) {
        if (m->ranges[i].kind == AMM__RANGE_LARGE) amm__large_release(m, m->ranges[i].obj);
    }
}

void amm_destroy(amm_manager *m) {
    if (!m) return;
    if (m->cfg.leaks) amm_leak_report(m, stderr, 0);
    all_remove(m);
    lock_take(m);
    amm__tcache_flush_all(m);
    amm__quarantine_flush(m);
    AMM__TRACE(m, amm__trace_manager(m, AMM_TOP_MANAGER_DESTROY));
    if (m->tracer) amm__trace_stop_locked(m);
    amm__walk_locked(m, forget_live, NULL);
    destroy_large(m);
    amm__pool_destroy_all(m);
    amm__heap_destroy(m);
    amm__registry_destroy(m);
    amm__array_free(m->ranges, m->range_cap, sizeof(amm__range));
    amm__meta_destroy(m);
    lock_give(m);
    amm__tcache_detach_all(m); /* their threads free them */
    amm__os_unmap(m, sizeof *m);
}

void amm_set_error_handler(amm_manager *m, amm_error_fn fn, void *user) {
    if (!m) return;
    lock_take(m);
    m->on_fault = fn;
    m->on_fault_user = user;
    lock_give(m);
}

size_t amm_fault_count(const amm_manager *m) {
    if (!m) return 0;
    amm__lock((amm_manager *)m);
    size_t n = m->faults;
    amm__unlock((amm_manager *)m);
    return n;
}

void amm_set_move_callback(amm_manager *m, amm_move_fn fn, void *user) {
    if (!m) return;
    lock_take(m);
    m->on_move = fn;
    m->on_move_user = user;
    lock_give(m);
}

/* ---- shared steps ---- */

/* Every few operations: the periodic check and trace sample the options ask for. */
static void op_tick_due(amm_manager *m) {
    if (m->cfg.check_every && ++m->ops_since_check >= m->cfg.check_every) {
        m->ops_since_check = 0;
        amm__check_locked(m);
    }
    if (AMM__TRACING(m) && m->cfg.sample_every && ++m->ops_since_sample >= m->cfg.sample_every) {
        m->ops_since_sample = 0;
        amm__trace_sample(m);
    }
}

static inline void op_tick(amm_manager *m) {
    if (m->cfg.check_every || AMM__TRACING(m)) op_tick_due(m);
}

/* The effective alignment (0 -> default), or 0 after reporting a bad one. */
static size_t check_align(amm_manager *m, size_t align, const char *op, const char *file, int line) {
    if (align == 0) return AMM_DEFAULT_ALIGN;
    if (!amm__is_pow2(align) || align > AMM_MAX_ALIGN) {
        amm__fault(m, AMM_ERR_BAD_ALIGNMENT, NULL, NULL, op, NULL, 0, align, file, line);
        return 0;
    }
    return align;
}

/* What every new block gets beyond amm__block_set_live: flags, site, zeroing. */
static inline amm__block *finish_block(amm__block *b, size_t size, unsigned flags, const char *file, int line) {
    b->flags = (uint8_t)(flags & (AMM_ALLOC_MOVABLE | AMM_ALLOC_NO_POOL));
    b->file = file;
    b->line = line;
    if (flags & AMM_ALLOC_ZERO) memset((void *)b->user, 0, size);
    return b;
}

/* Allocates a LIVE block (no pool if NO_POOL), or reports and returns NULL. */
static amm__block *alloc_block(amm_manager *m, size_t size, size_t align, unsigned flags, const char *op,
                               const char *file, int line) {
    if (size > SIZE_MAX / 4) {
        amm__fault(m, AMM_ERR_BAD_SIZE, NULL, NULL, op, NULL, 0, size, file, line);
        return NULL;
    }
    size_t place = align < AMM__GRANULE ? AMM__GRANULE : align;
    amm__block *b = NULL;
    int pools = !(flags & AMM_ALLOC_NO_POOL) && m->pool_count;
    if (pools) b = amm__pool_alloc_any(m, size, align, 0);
    if (!b) {
        size_t need = amm__heap_chunk_need(m, size);
        if (need >= m->cfg.large_threshold || need + place > m->cfg.region_size) b = amm__large_alloc(m, size, place);
        else b = amm__heap_alloc(m, size, place);
        if (b) b->align_log2 = (uint8_t)amm__log2(align);
    }
    if (!b && pools) b = amm__pool_alloc_any(m, size, align, 1); /* the system said no: a quarantined slot */
    if (!b) {
        amm__fault(m, AMM_ERR_OUT_OF_MEMORY, NULL, NULL, op, NULL, 0, size, file, line);
        return NULL;
    }
    return finish_block(b, size, flags, file, line);
}

/* A LIVE block for ptr, or NULL after reporting why not. */
static amm__block *live_block(amm_manager *m, const void *ptr, const char *op, const char *file, int line) {
    amm__block *b;
    switch (amm__lookup(m, ptr, &b)) {
    case AMM__PTR_FOREIGN:
        amm__fault(m, AMM_ERR_INVALID_POINTER, ptr, NULL, op, NULL, 0, 0, file, line);
        return NULL;
    case AMM__PTR_INTERIOR:
        if (b && (b->state == AMM_BLOCK_LIVE || b->state == AMM_BLOCK_QUARANTINED) && (uintptr_t)ptr >= b->raw &&
            (uintptr_t)ptr < b->raw + b->raw_size) {
            amm__fault(m, AMM_ERR_INTERIOR_POINTER, ptr, b, op, NULL, (long long)((uintptr_t)ptr - b->user), 0, file, line);
        } else {
            amm__fault(m, AMM_ERR_INVALID_POINTER, ptr, NULL, op,
                       "it points into amm memory that is free, padding or a guard", 0, 0, file, line);
        }
        return NULL;
    case AMM__PTR_BLOCK:
        break;
    }
    if (b->state == AMM_BLOCK_QUARANTINED || b->state == AMM__BINNED ||
        ((b->state == AMM_BLOCK_FREE || b->state == AMM__CACHED) && b->serial)) {
        amm__fault(m, AMM_ERR_DOUBLE_FREE, ptr, b, op, NULL, 0, 0, file, line);
        return NULL;
    }
    if (b->state != AMM_BLOCK_LIVE) {
        amm__fault(m, AMM_ERR_INVALID_POINTER, ptr, NULL, op,
                   b->state == AMM__CACHED ? "a chunk or slot a thread cache holds, never allocated"
                                           : "a pool slot that was never allocated",
                   0, 0, file, line);
        return NULL;
    }
    return b;
}

/* The LIVE block at ptr when it is one, by the shortest way: a pointer in no
 * pool slab is a heap block's (the registry alone) or nothing; NULL sends the
 * caller to live_block, which classifies and reports. */
static inline __attribute__((always_inline)) amm__block *live_fast(amm_manager *m, const void *ptr) {
    amm__block *b;
    if ((uintptr_t)ptr - m->pool_lo < m->pool_span) {
        if (amm__lookup(m, ptr, &b) != AMM__PTR_BLOCK) return NULL;
    } else {
        b = amm__registry_get(m, (uintptr_t)ptr);
    }
    return b && __atomic_load_n(&b->state, __ATOMIC_ACQUIRE) == AMM_BLOCK_LIVE ? b : NULL; /* (tc_hand_out) */
}

/* A block a thread cache handed out (AMM__TC_OWNED) may be freed by its
 * owner without the manager's lock at this very moment (the program frees it
 * twice at once): the owner's short free swaps the owned bit for
 * AMM__TC_FREEING and this path clears it, each with one compare-and-swap,
 * and only the one that wins frees the block.  f: the flags as read.  1: ours
 * (*owned: it was a cache's); 0: the owner's, reported as a double free. */
static int tc_claim(amm_manager *m, amm__block *b, uint8_t f, int *owned, const char *op, const char *file,
                    int line) {
    *owned = 0;
    while (f & AMM__TC_OWNED) {
        if (__atomic_compare_exchange_n(&b->flags, &f, (uint8_t)(f & ~AMM__TC_OWNED), 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            *owned = 1;
            return 1;
        }
    }
    if (!(f & AMM__TC_FREEING)) return 1; /* (not a cache's block after all) */
    amm__fault(m, AMM_ERR_DOUBLE_FREE, (void *)b->user, NULL, op, "freed by its own thread at the same moment", 0, 0,
               file, line);
    return 0;
}

/* Takes a LIVE block out of use: canaries checked, counters, trace,
 * quarantine.  -1 (reported) if its thread's cache took it back meanwhile. */
static inline __attribute__((always_inline)) int retire(amm_manager *m, amm__block *b, const char *op, const char *file,
                                                       int line, int traced) {
    int owned = 0;
    uint8_t f = __atomic_load_n(&b->flags, __ATOMIC_ACQUIRE);
    if ((f & (AMM__TC_OWNED | AMM__TC_FREEING)) && !tc_claim(m, b, f, &owned, op, file, line)) return -1;
    amm__guards_check(m, b, op, file, line);
    m->live_blocks--;
    m->live_bytes -= b->size;
    m->total_frees++;
    if (amm__pool_of(b)) {
        b->pool->used--;
        m->pool_slots_used--;
    }
    if (b->origin == AMM_ORIGIN_LARGE) m->large_count--;
    int quarantined = amm__quarantines(m, b);
    if (traced) AMM__TRACE(m, amm__trace_free(m, b, quarantined));
    if (quarantined) {
        amm__quarantine_push(m, b);
    } else {
        amm__san_free(b->user, b->size);
        if (!owned || b->origin == AMM_ORIGIN_LARGE || !amm__tcache_give_back(m, b))
            amm__release_block(m, b);
    }
    return 0;
}

/* ---- thread caches (tcache.c explains them) ---- */

/* Makes b, a chunk cache c held, a LIVE block: what amm__block_set_live and
 * finish_block do, with c's counters and serials (inside c: amm__tc_enter). */
static inline __attribute__((always_inline)) void tc_hand_out(amm_manager *m, amm__tcache *c, size_t list, amm__block *b,
                                                             size_t size, size_t align, unsigned flags, const char *file,
                                                             int line) {
    b->size = size;
    b->align_log2 = (uint8_t)amm__log2(align ? align : AMM_DEFAULT_ALIGN);
    b->refcount = 1;
    b->serial = c->serial_next++;
    b->flags = (uint8_t)((flags & (AMM_ALLOC_MOVABLE | AMM_ALLOC_NO_POOL)) | AMM__TC_OWNED);
    b->tc_owner = c;
    b->file = file;
    b->line = line;
    /* after the fields: a merge next door (amm__state_peek) or a racing stray
     * free (live_fast) that sees LIVE sees them too */
    __atomic_store_n(&b->state, AMM_BLOCK_LIVE, __ATOMIC_RELEASE);
    amm__san_alloc(b->user, size, 0);
    amm__guards_put(m, b); /* (the sanitizers' view of the guards follows the state) */
    if (m->cfg.fill) memset((void *)b->user, AMM_FILL_NEW, size);
    if (flags & AMM_ALLOC_ZERO) memset((void *)b->user, 0, size);
    c->live_blocks++;
    c->live_bytes += size;
    c->allocs++;
    if (list >= AMM__TC_CLASSES) c->pool_used[list - AMM__TC_CLASSES]++;
    atomic_store_explicit(&c->taken, atomic_load_explicit(&c->taken, memory_order_relaxed) + 1,
                          memory_order_relaxed); /* only the owner writes it */
    if (!amm__quarantines(m, b)) { /* its free may come back here (tc_free) */
        amm__tc_entry *e = &c->map[amm__tc_slot(b->user)];
        e->b = b;
        atomic_store_explicit(&e->user, b->user, memory_order_relaxed);
    }
}

/* The next chunk of class cls in c: its own list, else what was freed back to it. */
static inline __attribute__((always_inline)) amm__block *tc_pop(amm__tcache *c, size_t cls) {
    amm__block *b = c->local[cls];
    if (!b && atomic_load_explicit(&c->remote[cls], memory_order_relaxed))
        b = atomic_exchange_explicit(&c->remote[cls], NULL, memory_order_acquire);
    if (b) c->local[cls] = b->q_next;
    return b;
}

/* An alloc from this thread's cache c of m, without the manager's lock; NULL: ask the manager. */
static inline __attribute__((always_inline)) void *tc_alloc(amm_manager *m, amm__tcache *c, size_t size, size_t align,
                                                           unsigned flags, const char *file, int line) {
    size_t need = amm__tcache_need(m, size, align);
    if (!need || (align & (align - 1))) return NULL;
    amm__thread_locks *t = &tl_locks;
    if (t->fork_held) return NULL; /* a fork handler: the caches are stopped for this thread's fork */
    if (t->depth == 0) {
        while (atomic_load_explicit(&fork_gate, memory_order_acquire)) sched_yield();
    }
    size_t cls = need / AMM__GRANULE;
    void *user = NULL;
    if (!amm__tc_enter(c)) return NULL;
    int mine = c->enabled && c->serial_next != c->serial_end && (size >= c->pool_limit || (flags & AMM_ALLOC_NO_POOL));
    amm__block *b = mine ? tc_pop(c, cls) : NULL;
    if (b) {
        tc_hand_out(m, c, cls, b, size, align, flags, file, line);
        user = (void *)b->user;
    }
    amm__tc_leave(c);
    return user;
}

/* The list of c that b goes back to (a heap chunk's class, or its pool's), or 0 if none. */
static inline __attribute__((always_inline)) size_t tc_list_of(const amm__tcache *c, const amm__block *b) {
    if (b->origin == AMM_ORIGIN_POOL) return amm__tc_pool_list(c, b->pool);
    size_t cls = b->raw_size / AMM__GRANULE; /* (a block resized in place past the classes: none) */
    return b->origin == AMM_ORIGIN_HEAP && cls < AMM__TC_CLASSES ? cls : 0;
}

/* 1 if b has no guard bytes, or short ones (amm__guards_inline) that are whole. */
static inline __attribute__((always_inline)) int tc_guards_whole(const amm_manager *m, const amm__block *b) {
    uintptr_t uend = b->user + b->size;
    size_t front = b->user - b->raw, back = b->raw + b->raw_size - uend;
    if (!(front | back)) return 1; /* nothing to read: not even the line a neighbour's owner may be writing */
    return amm__guards_inline(front, back) && amm__canary_ok(m, b->raw, front) && amm__canary_ok(m, uend, back);
}

/* A free by the thread whose cache c handed ptr out, without the manager's
 * lock: 1 if done; 0 sends it to the manager (not c's, quarantined, damaged
 * guards, anything to report), which checks it all again. */
static inline __attribute__((always_inline)) int tc_free(amm_manager *m, amm__tcache *c, void *ptr) {
    uintptr_t user = (uintptr_t)ptr;
    amm__tc_entry *e = &c->map[amm__tc_slot(user)];
    if (atomic_load_explicit(&e->user, memory_order_relaxed) != user) return 0; /* not one this cache handed out */
    amm__thread_locks *t = &tl_locks;
    if (t->fork_held) return 0;
    if (t->depth == 0) {
        while (atomic_load_explicit(&fork_gate, memory_order_acquire)) sched_yield();
    }
    int done = 0;
    size_t list;
    if (!amm__tc_enter(c)) return 0;
    /* The entry stands while the block is LIVE and c's, or back in c: a
     * flush clears it, and so does a free elsewhere that does not give the
     * chunk back to c (amm__tcache_give_back).  So the record read here is
     * one no other thread writes (unless the program frees the block twice
     * at once).  It must still be the LIVE block c handed out at user, with
     * count 1, not resized past the classes, not quarantined, guards whole. */
    amm__block *b = e->b;
    uint8_t f;
    if (c->enabled && atomic_load_explicit(&e->user, memory_order_relaxed) == user &&
        __atomic_load_n(&b->state, __ATOMIC_RELAXED) == AMM_BLOCK_LIVE &&
        ((f = __atomic_load_n(&b->flags, __ATOMIC_RELAXED)) & AMM__TC_OWNED) && b->tc_owner == c &&
        b->user == user && b->refcount == 1 && (list = tc_list_of(c, b)) != 0 && !amm__quarantines(m, b) &&
        tc_guards_whole(m, b) &&
        /* the claim (tc_claim): a free of it through the manager at this moment loses */
        __atomic_compare_exchange_n(&b->flags, &f, (uint8_t)AMM__TC_FREEING, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        c->live_blocks--;
        c->live_bytes -= b->size;
        c->frees++;
        amm__san_free(user, b->size);
        if (list >= AMM__TC_CLASSES) { /* a pool slot: canary end to end while cached, as on its free stack */
            if (m->cfg.fill) amm__pool_refill(m, b);
            c->pool_used[list - AMM__TC_CLASSES]--;
        }
        amm__san_freed(b->raw, b->raw_size);
        b->refcount = 0;
        __atomic_store_n(&b->state, AMM__CACHED, __ATOMIC_RELAXED);
        b->q_next = c->local[list];
        c->local[list] = b;
        atomic_store_explicit(&c->taken, atomic_load_explicit(&c->taken, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        atomic_store_explicit(&e->user, 0, memory_order_relaxed);
        done = 1;
    }
    amm__tc_leave(c);
    return done;
}

/* A miss (manager lock held; no flush can come, and the owner is this
 * thread): c's counters in, new serials if it has none, and c enabled as the
 * caller saw amm__tcache_enabled.  Then list is refilled if it is empty. */
static void tc_prepare(amm_manager *m, amm__tcache *c) {
    amm__tcache_fold(m, c);
    if (c->serial_next == c->serial_end) {
        c->serial_next = m->serial + 1;
        m->serial += AMM__TC_SERIALS;
        c->serial_end = m->serial + 1;
    }
    c->enabled = 1;
    c->pool_limit = m->pool_count ? m->pool_max_block + 1 : 0; /* (a new pool flushes the caches: they come here) */
}

static inline int tc_list_empty(amm__tcache *c, size_t list) {
    return !c->local[list] && !atomic_load_explicit(&c->remote[list], memory_order_relaxed);
}

/* The heap's miss: refill c's class for need-byte chunks and take one. */
static amm__block *tc_refill_alloc(amm_manager *m, amm__tcache *c, size_t need, size_t size, size_t align,
                                   unsigned flags, const char *file, int line) {
    size_t cls = need / AMM__GRANULE;
    tc_prepare(m, c);
    if (tc_list_empty(c, cls)) amm__tcache_refill(m, c, need);
    amm__block *b = tc_pop(c, cls);
    if (b) tc_hand_out(m, c, cls, b, size, align, flags, file, line);
    return b;
}

/* A pool's miss: this thread's cache takes slots of pool (a list for it if
 * it has none and one is unused) and hands one out; NULL: the pool's own
 * path.  *want: this thread has no cache of m yet. */
static amm__block *tc_pool_refill_alloc(amm_manager *m, amm_pool *pool, size_t size, size_t align, const char *file,
                                        int line, int *want) {
    amm__tcache *c = amm__tcache_find(m);
    if (!c) {
        *want = 1;
        return NULL;
    }
    size_t list = amm__tc_pool_list(c, pool);
    for (size_t j = 0; !list && j < AMM__TC_POOLS; j++) {
        if (!c->pool[j]) {
            c->pool[j] = pool;
            pool->tc_kept = 1;
            list = AMM__TC_CLASSES + j;
        }
    }
    if (!list) return NULL; /* it keeps the first AMM__TC_POOLS pools its thread used */
    tc_prepare(m, c);
    if (tc_list_empty(c, list)) amm__tcache_refill_pool(m, c, list - AMM__TC_CLASSES);
    amm__block *b = tc_pop(c, list);
    if (b) tc_hand_out(m, c, list, b, size, align, 0, file, line);
    return b;
}

/* A pool alloc from this thread's cache c of m, without the manager's lock; NULL: ask the manager. */
static inline __attribute__((always_inline)) void *tc_pool_alloc(amm_manager *m, amm__tcache *c, amm_pool *pool,
                                                                size_t size, size_t align, const char *file, int line) {
    size_t list = amm__tc_pool_list(c, pool); /* c->pool is its owner's to write: this thread's */
    if (!list || (align & (align - 1)) || size > pool->block_size || align > ((size_t)1 << pool->align_log2))
        return NULL; /* (a pool's size and alignment never change) */
    amm__thread_locks *t = &tl_locks;
    if (t->fork_held) return NULL;
    if (t->depth == 0) {
        while (atomic_load_explicit(&fork_gate, memory_order_acquire)) sched_yield();
    }
    void *user = NULL;
    if (!amm__tc_enter(c)) return NULL;
    amm__block *b = c->enabled && c->serial_next != c->serial_end ? tc_pop(c, list) : NULL;
    if (b) {
        tc_hand_out(m, c, list, b, size, align, 0, file, line);
        user = (void *)b->user;
    }
    amm__tc_leave(c);
    return user;
}

/* A cache of m for this thread (no lock held: the thread's exit hook may allocate). */
static void tc_make(amm_manager *m) {
    amm__tcache_thread_register();
    void *mem = amm__tcache_map();
    if (!mem) return; /* no cache: this thread goes on through the manager's lock */
    lock_take(m);
    if (amm__tcache_enabled(m) && !amm__tcache_find(m) && amm__tcache_new(m, mem) == mem)
        mem = NULL; /* (an exited thread's cache, if any, is taken over instead) */
    lock_give(m);
    if (mem) amm__tcache_unmap(mem);
}

/* ---- blocks ---- */

void *amm_alloc_at(amm_manager *m, size_t size, size_t align, unsigned flags, const char *file, int line) {
    if (!m) {
        amm__fault(NULL, AMM_ERR_INVALID_POINTER, NULL, NULL, "alloc", "NULL manager", 0, 0, file, line);
        return NULL;
    }
    amm__tcache *tc = amm__tl_caches; /* the cache last used: a thread mostly sticks to one manager */
    if (tc && atomic_load_explicit(&tc->m, memory_order_relaxed) == m) {
        void *user = tc_alloc(m, tc, size, align, flags, file, line);
        if (user) return user;
    }
    lock_take(m);
    void *user = NULL;
    amm__block *b = NULL;
    int want_cache = 0;
    if (m->tc_shared && amm__tcache_enabled(m) && !(align & (align - 1)) &&
        (!m->pool_count || size > m->pool_max_block || (flags & AMM_ALLOC_NO_POOL))) { /* a pool first */
        size_t need = amm__tcache_need(m, size, align);
        if (need && !tl_locks.fork_held) {
            tc = amm__tcache_find(m);
            if (tc) b = tc_refill_alloc(m, tc, need, size, align, flags, file, line);
            else want_cache = 1;
        }
    }
    /* the common case first: a kept chunk of this size, when no pool could
     * take the request (alloc_block tries pools first) */
    if (!b && align <= AMM__GRANULE && (align & (align - 1)) == 0 && m->reuse_blocks &&
        (!m->pool_count || size > m->pool_max_block || (flags & AMM_ALLOC_NO_POOL))) {
        b = amm__heap_reuse_alloc(m, size, align ? align : AMM_DEFAULT_ALIGN);
        if (b) finish_block(b, size, flags, file, line);
    }
    if (!b) {
        size_t a = check_align(m, align, "alloc", file, line);
        b = a ? alloc_block(m, size, a, flags, "alloc", file, line) : NULL;
    }
    if (b) {
        user = (void *)b->user;
        AMM__TRACE(m, amm__trace_block(m, AMM_TOP_ALLOC, b));
        op_tick(m);
    }
    lock_give(m);
    if (want_cache) tc_make(m);
    return user;
}

int amm_free_at(amm_manager *m, void *ptr, const char *file, int line) {
    if (!ptr) return 0;
    if (!m) {
        amm__fault(NULL, AMM_ERR_INVALID_POINTER, ptr, NULL, "free", "NULL manager", 0, 0, file, line);
        return -1;
    }
    amm__tcache *tc = amm__tl_caches;
    if (tc && atomic_load_explicit(&tc->m, memory_order_relaxed) == m && tc_free(m, tc, ptr)) return 0;
    lock_take(m);
    int rc = -1;
    amm__block *b = live_fast(m, ptr);
    if (!b) b = live_block(m, ptr, "free", file, line);
    if (b && b->refcount > 1) {
        amm__fault(m, AMM_ERR_SHARED_FREE, ptr, b, "free", NULL, 0, 0, file, line);
    } else if (b) {
        rc = retire(m, b, "free", file, line, 1);
        op_tick(m);
    }
    lock_give(m);
    return rc;
}

static int resize_in_place(amm_manager *m, amm__block *b, size_t new_size) {
    switch ((amm_origin)b->origin) {
    case AMM_ORIGIN_HEAP: return amm__heap_resize(m, b, new_size);
    case AMM_ORIGIN_POOL: return amm__pool_resize(m, b, new_size);
    case AMM_ORIGIN_LARGE: return amm__large_resize(m, b, new_size);
    }
    return -1;
}

static void *realloc_locked(amm_manager *m, amm__block *b, size_t new_size, size_t align, const char *file,
                            int line) {
    amm__guards_check(m, b, "realloc", file, line);
    uintptr_t old_user = b->user;
    size_t old_size = b->size;
    if (new_size > SIZE_MAX / 4) {
        amm__fault(m, AMM_ERR_BAD_SIZE, (void *)old_user, b, "realloc", NULL, 0, new_size, file, line);
        return NULL;
    }
    if (old_user % align == 0 && resize_in_place(m, b, new_size) == 0) {
        amm__san_resize(old_user, old_size, new_size);
        if (m->cfg.fill && new_size > old_size) memset((void *)(old_user + old_size), AMM_FILL_NEW, new_size - old_size);
        b->size = new_size;
        b->align_log2 = (uint8_t)amm__log2(align);
        amm__guards_put(m, b);
        m->live_bytes = m->live_bytes - old_size + new_size;
        if ((ptrdiff_t)m->live_bytes > (ptrdiff_t)m->peak_live_bytes && !m->tc_head)
            m->peak_live_bytes = m->live_bytes; /* (with caches: tcache.c) */
        AMM__TRACE(m, amm__trace_resize(m, AMM_TOP_REALLOC, b, old_user, old_size));
        return (void *)old_user;
    }
    unsigned flags = (b->flags & (AMM_ALLOC_MOVABLE | AMM_ALLOC_NO_POOL)) |
                     (b->origin == AMM_ORIGIN_POOL ? 0u : AMM_ALLOC_NO_POOL);
    amm__block *nb = alloc_block(m, new_size, align, flags, "realloc", file ? file : b->file, file ? line : b->line);
    if (!nb) return NULL;
    memcpy((void *)nb->user, (const void *)old_user, old_size < new_size ? old_size : new_size);
    nb->refcount = b->refcount;
    b->refcount = 1;
    (void)retire(m, b, "realloc", file, line, 0); /* (refused: the program freed it at once on its thread) */
    AMM__TRACE(m, amm__trace_resize(m, AMM_TOP_REALLOC, nb, old_user, old_size));
    return (void *)nb->user;
}

void *amm_realloc_at(amm_manager *m, void *ptr, size_t new_size, size_t align, const char *file, int line) {
    if (!ptr) return amm_alloc_at(m, new_size, align, 0, file, line);
    if (!m) {
        amm__fault(NULL, AMM_ERR_INVALID_POINTER, ptr, NULL, "realloc", "NULL manager", 0, 0, file, line);
        return NULL;
    }
    lock_take(m);
    void *out = NULL;
    amm__block *b = live_block(m, ptr, "realloc", file, line);
    if (b) {
        size_t a = align ? check_align(m, align, "realloc", file, line) : amm__align_of(b);
        if (a) out = realloc_locked(m, b, new_size, a, file, line);
        if (out) op_tick(m);
    }
    lock_give(m);
    return out;
}

/* Checks that [src, src+size) may be read; reports and returns -1 if not. */
static int check_source(amm_manager *m, const void *src, size_t size, const char *file, int line) {
    amm__block *b;
    amm__lookup_kind k = amm__lookup(m, src, &b);
    if (k == AMM__PTR_FOREIGN) return 0; /* not amm's memory: the caller vouches for it */
    if (!b || (b->state != AMM_BLOCK_LIVE && b->state != AMM_BLOCK_QUARANTINED && b->state != AMM__BINNED &&
               !(b->state == AMM__CACHED && b->serial))) {
        amm__fault(m, AMM_ERR_INVALID_POINTER, src, NULL, "copy", "the source is not a live block", 0, 0, file, line);
        return -1;
    }
    if (b->state != AMM_BLOCK_LIVE) { /* freed: in quarantine, kept for reuse or in a thread cache */
        amm__fault(m, AMM_ERR_USE_AFTER_FREE, src, b, "copy", NULL, 0, 0, file, line);
        return -1;
    }
    uintptr_t s = (uintptr_t)src;
    if (s < b->user || s - b->user > b->size || size > b->size - (s - b->user)) {
        size_t over = s < b->user ? 0 : size - (b->size - (s - b->user));
        amm__fault(m, AMM_ERR_OVERFLOW, src, b, "copy", "the copy would read past the end of the source", 
                   (long long)(s - b->user), over, file, line);
        return -1;
    }
    return 0;
}

void *amm_copy_at(amm_manager *m, const void *src, size_t size, const char *file, int line) {
    if (!m) {
        amm__fault(NULL, AMM_ERR_INVALID_POINTER, src, NULL, "copy", "NULL manager", 0, 0, file, line);
        return NULL;
    }
    lock_take(m);
    void *out = NULL;
    if (!src && size) {
        amm__fault(m, AMM_ERR_INVALID_POINTER, src, NULL, "copy", "NULL source", 0, 0, file, line);
    } else if (!src || check_source(m, src, size, file, line) == 0) {
        amm__block *nb = alloc_block(m, size, AMM_DEFAULT_ALIGN, 0, "copy", file, line);
        if (nb) {
            if (size) memcpy((void *)nb->user, src, size);
            out = (void *)nb->user;
            AMM__TRACE(m, amm__trace_resize(m, AMM_TOP_COPY, nb, (uintptr_t)src, size));
            op_tick(m);
        }
    }
    lock_give(m);
    return out;
}

/* Reports a NULL manager or pointer for a refcount call; returns 1 if it did. */
static int refcount_args_bad(amm_manager *m, void *ptr, const char *op, const char *file, int line) {
    if (m && ptr) return 0;
    if (m) lock_take(m);
    amm__fault(m, AMM_ERR_INVALID_POINTER, ptr, NULL, op, m ? "NULL pointer" : "NULL manager", 0, 0, file, line);
    if (m) lock_give(m);
    return 1;
}

unsigned amm_retain_at(amm_manager *m, void *ptr, const char *file, int line) {
    if (refcount_args_bad(m, ptr, "retain", file, line)) return 0;
    lock_take(m);
    unsigned out = 0;
    amm__block *b = live_block(m, ptr, "retain", file, line);
    if (b) {
        amm__guards_check(m, b, "retain", file, line);
        if (b->refcount >= UINT32_MAX - 1) {
            amm__fault(m, AMM_ERR_REFCOUNT_OVERFLOW, ptr, b, "retain", NULL, 0, 0, file, line);
        } else {
            out = ++b->refcount;
            AMM__TRACE(m, amm__trace_refcount(m, AMM_TOP_RETAIN, b));
            op_tick(m);
        }
    }
    lock_give(m);
    return out;
}

unsigned amm_release_at(amm_manager *m, void *ptr, const char *file, int line) {
    if (refcount_args_bad(m, ptr, "release", file, line)) return (unsigned)-1;
    lock_take(m);
    unsigned out = (unsigned)-1;
    amm__block *b = live_block(m, ptr, "release", file, line);
    if (b) {
        out = --b->refcount;
        AMM__TRACE(m, amm__trace_refcount(m, AMM_TOP_RELEASE, b));
        if (out == 0) {
            b->refcount = 1; /* it is still live until retired */
            (void)retire(m, b, "release", file, line, 1);
        } else {
            amm__guards_check(m, b, "release", file, line);
        }
        op_tick(m);
    }
    lock_give(m);
    return out;
}

size_t amm_size(amm_manager *m, const void *ptr) {
    if (!m) return 0;
    lock_take(m);
    amm__block *b = live_block(m, ptr, "size", NULL, 0);
    size_t n = b ? b->size : 0;
    lock_give(m);
    return n;
}

int amm_owns(amm_manager *m, const void *ptr) {
    if (!m || !ptr) return 0;
    lock_take(m);
    amm__block *b;
    int owned = amm__lookup(m, ptr, &b) == AMM__PTR_BLOCK && b->state == AMM_BLOCK_LIVE;
    lock_give(m);
    return owned;
}

int amm_set_movable(amm_manager *m, void *ptr, int movable) {
    if (!m) return -1;
    lock_take(m);
    amm__block *b = live_block(m, ptr, "set_movable", NULL, 0);
    if (b) {
        if (movable) b->flags |= AMM_ALLOC_MOVABLE;
        else b->flags &= (uint8_t)~AMM_ALLOC_MOVABLE;
    }
    lock_give(m);
    return b ? 0 : -1;
}

/* ---- pools ---- */

amm_pool *amm_pool_create(amm_manager *m, size_t block_size, size_t block_count, size_t align) {
    if (!m) return NULL;
    lock_take(m);
    amm_pool *p = NULL;
    size_t a = check_align(m, align, "pool_create", NULL, 0);
    if (a && (block_size == 0 || block_count == 0 || block_count > UINT32_MAX || block_size > SIZE_MAX / 4)) {
        amm__fault(m, AMM_ERR_BAD_SIZE, NULL, NULL, "pool_create",
                   "a pool needs block_size > 0 and 0 < block_count < 2^32", 0, block_size, NULL, 0);
    } else if (a) {
        p = amm__pool_new(m, block_size, block_count, a < AMM__GRANULE ? AMM__GRANULE : a);
        if (!p) amm__fault(m, AMM_ERR_OUT_OF_MEMORY, NULL, NULL, "pool_create", NULL, 0, block_size * block_count, NULL, 0);
    }
    lock_give(m);
    return p;
}

static int pool_of(const amm_manager *m, const amm_pool *pool) {
    for (size_t i = 0; i < m->pool_count; i++) {
        if (m->pools[i] == pool) return 1;
    }
    return 0;
}

void *amm_pool_alloc_at(amm_manager *m, amm_pool *pool, size_t size, size_t align, const char *file, int line) {
    if (!m) return NULL;
    amm__tcache *tc = amm__tl_caches;
    if (tc && pool && atomic_load_explicit(&tc->m, memory_order_relaxed) == m) { /* (a foreign pool: no list) */
        void *user = tc_pool_alloc(m, tc, pool, size, align, file, line);
        if (user) return user;
    }
    lock_take(m);
    void *user = NULL;
    size_t a = check_align(m, align, "pool_alloc", file, line);
    amm__block *b = NULL;
    int want_cache = 0;
    if (a && pool && !pool_of(m, pool)) {
        amm__fault(m, AMM_ERR_INVALID_POINTER, pool, NULL, "pool_alloc", "not a pool of this manager", 0, 0, file, line);
    } else if (a) {
        if (pool && m->tc_shared && amm__tcache_enabled(m) && !tl_locks.fork_held && size <= pool->block_size &&
            a <= ((size_t)1 << pool->align_log2))
            b = tc_pool_refill_alloc(m, pool, size, a, file, line, &want_cache);
        if (!b) b = pool ? amm__pool_alloc(m, pool, size, a) : amm__pool_alloc_any(m, size, a, 1);
    }
    if (b) {
        b->file = file;
        b->line = line;
        user = (void *)b->user;
        AMM__TRACE(m, amm__trace_block(m, AMM_TOP_ALLOC, b));
        op_tick(m);
    }
    lock_give(m);
    if (want_cache) tc_make(m);
    return user;
}

size_t amm_pool_count(amm_manager *m) {
    if (!m) return 0;
    lock_take(m);
    size_t n = m->pool_count;
    lock_give(m);
    return n;
}

amm_pool *amm_pool_get(amm_manager *m, size_t index) {
    if (!m) return NULL;
    lock_take(m);
    amm_pool *p = index < m->pool_count ? m->pools[index] : NULL;
    lock_give(m);
    return p;
}

int amm_pool_info_get(amm_manager *m, const amm_pool *p, amm_pool_info *info) {
    if (!m || !info) return -1;
    lock_take(m);
    int ok = pool_of(m, p);
    if (ok) {
        amm__tcache_fold_all(m); /* the thread caches' use of it counted; their slots count as free */
        *info = (amm_pool_info){(void *)p->base, p->slab_bytes,     p->block_size,           p->stride,
                                (size_t)1 << p->align_log2, p->count, p->used, p->quarantined,
                                p->free_top + p->tc_held,   p->high_water};
    }
    lock_give(m);
    return ok ? 0 : -1;
}

/* ---- defragmentation ---- */

void amm_defragment(amm_manager *m, unsigned flags, amm_defrag_report *report) {
    if (!m) return;
    amm_defrag_report r;
    memset(&r, 0, sizeof r);
    lock_take(m);
    /* quarantined blocks are checked and freed first: "before" is the heap compaction starts from */
    if (flags & (AMM_DEFRAG_COMPACT | AMM_DEFRAG_RELEASE)) {
        amm__tcache_flush_all(m); /* cached chunks are free space to compaction and release */
        amm__quarantine_flush(m);
    }
    amm__stats_locked(m, &r.before);
    AMM__TRACE(m, amm__trace_defrag(m, AMM_TOP_DEFRAG_BEGIN, flags, &r.before, 0, 0));
    if (flags & AMM_DEFRAG_COMPACT) {
        r.bytes_moved = amm__heap_compact(m, &r.blocks_moved);
        m->bytes_moved += r.bytes_moved;
    }
    if (flags & AMM_DEFRAG_RELEASE) r.bytes_released = amm__heap_release_memory(m, &r.regions_released);
    amm__stats_locked(m, &r.after);
    AMM__TRACE(m, amm__trace_defrag(m, AMM_TOP_DEFRAG_END, flags, &r.after, r.blocks_moved, r.regions_released));
    lock_give(m);
    if (report) *report = r;
}
