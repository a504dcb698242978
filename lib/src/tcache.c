/*
 * tcache.c - per-thread caches of small heap chunks.
 *
 * A manager shared by threads serialises them on its one lock: four threads
 * each allocating and freeing their own blocks ran no faster than one.  So
 * once a second thread calls into a manager, each thread that allocates
 * from it gets a cache: lists of chunks by chunk size (16-byte classes up to
 * AMM__TC_CHUNK_MAX bytes, guards included) and of slots of the first
 * AMM__TC_POOLS pools it allocates from, refilled about 4 KiB (at most
 * cfg.tcache chunks) at a time.  The manager's lock is taken for a refill,
 * not for each block:
 *  - an alloc the cache can serve pops a chunk and makes it LIVE (record,
 *    guards, fill) with the cache's own counters and serials;
 *  - a free by the thread whose cache handed the block out finds the record
 *    in the cache's map (user pointer -> record, filled at hand-out), checks
 *    it (LIVE, this cache's, count 1, guards whole, not quarantined) and puts
 *    the chunk back on the cache's list.  Anything else (another thread's
 *    block, a damaged guard, a quarantine, a pointer the map forgot) goes to
 *    the manager as before, which validates it through the registry;
 *  - a block freed through the manager goes back to the cache that handed it
 *    out (AMM__TC_OWNED, tc_owner): pushed on that cache's remote list, which
 *    its owner takes whole when its own list runs dry (mimalloc's thread-free
 *    lists, under the manager's lock on the pushing side).  A cache holding
 *    64 * cfg.tcache chunks takes no more; those go to the heap.
 * With a quarantine (checked mode) there are no caches: every free goes to
 * the quarantine, under the manager's lock, and caching the allocs alone
 * measured slower than none (refills from what the quarantine let go).
 *
 * The owner and a flush keep apart without a lock on the owner's side: the
 * owner marks the cache busy and looks for a stop mark; a flush (under the
 * manager's lock) marks stop, makes every running thread execute a full
 * fence with membarrier(2), then waits until the cache is not busy
 * (amm__tc_enter in internal.h; without membarrier the owner fences).
 *
 * A cached chunk (AMM__CACHED) stays in the registry, so a stale pointer to
 * it is still a double free (a never-used one, an invalid pointer).  It
 * counts as used space in its region and is neither live nor free; stats
 * show it as cached_bytes.  A cached pool slot counts in its pool's tc_held
 * (pool info shows it as free); freed into a cache it is canary end to end
 * again, as on the pool's free stack, and goes back there without a refill,
 * so a write into it after its free is still found.  Nothing else meets one:
 *  - every walk, check, leak report, compaction and release empties every
 *    cache first (amm__tcache_flush_all), and stats and amm_check_fast add
 *    the caches' counters in (amm__tcache_fold_all);
 *  - a tracer or a periodic check stop the caches (amm__tcache_enabled) and
 *    empty them: a trace must see every alloc and free, in order;
 *  - a new pool empties them, and requests a pool fits (pool_limit, learnt
 *    at the next refill) go to the manager: the smallest fitting pool has
 *    first pick;
 *  - a merge under the manager's lock reads a neighbour's state atomically
 *    (amm__state_peek), as the owner writes it.
 * The manager's live counters are off the true figures (either way) until
 * every cache's are added in (stats, checks, walks: amm__tcache_fold_all and
 * _flush_all).  Once a manager has caches, peak_live_bytes is taken only
 * there: it may miss a peak between them, and never shows one that was not.
 *
 * Lifetimes: a thread's caches are on its own list (amm__tl_caches) and on
 * their manager's.  At thread exit (a pthread key's destructor) each is
 * emptied into its manager and left there as an orphan, since blocks it
 * handed out still name it; the next thread that needs a cache of that
 * manager takes it over.  amm_destroy unmaps the orphans and detaches the
 * rest (c->m = NULL, under detach_mu), which their threads unmap later.
 * fork() stops every cache after taking the managers' locks (manager.c),
 * and the child empties the caches of the threads it does not have.
 */
#define _GNU_SOURCE /* syscall(2), for membarrier(2) */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hot.h"

_Thread_local amm__tcache *amm__tl_caches __attribute__((tls_model("initial-exec")));
static _Thread_local int tl_registered __attribute__((tls_model("initial-exec")));
static _Thread_local int tl_hooked __attribute__((tls_model("initial-exec"))); /* its exit hook is set */
static _Thread_local int tl_exited __attribute__((tls_model("initial-exec"))); /* past its exit hook */

atomic_int amm__tc_asym; /* 1: membarrier(2) is registered (amm__tc_enter) */

/* A full fence on every running thread of this process. */
static void membarrier_all(void) {
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
    /* registered, so this does not fail; the slow global kind if it ever does */
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0) abort(); /* no fence at all: the caches are unsafe */
}

/* Registers the process for membarrier_all; without it the owners fence for themselves. */
static void asym_init(void) {
    int ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    atomic_store_explicit(&amm__tc_asym, ok, memory_order_relaxed);
}

static pthread_mutex_t detach_mu = PTHREAD_MUTEX_INITIALIZER; /* a cache's m, at thread exit and destroy */
static pthread_key_t exit_key;
static atomic_int key_state; /* 0: not made, 1: being made, 2: made, 3: refused */

int amm__tcache_enabled(const amm_manager *m) {
    return m->tc_shared && m->cfg.tcache && !m->tracer && !m->cfg.check_every &&
           !(m->cfg.quarantine && m->cfg.quarantine_blocks);
}

/* Chunks a refill aims for: cfg.tcache, and about 4 KiB of a class at most. */
static size_t class_room(const amm_manager *m, size_t need) {
    size_t k = 4096 / need;
    if (k < 2) k = 2;
    return k < m->cfg.tcache ? k : m->cfg.tcache;
}

/* Chunks a cache may hold in all before frees go to the heap instead. */
static size_t cache_room(const amm_manager *m) { return m->cfg.tcache * 64; }

static void local_push(amm__tcache *c, size_t cls, amm__block *b) {
    b->q_next = c->local[cls];
    c->local[cls] = b;
}

size_t amm__tcache_refill(amm_manager *m, amm__tcache *c, size_t need) {
    size_t cls = need / AMM__GRANULE, n = 0, want = class_room(m, need);
    while (n < want && m->reuse[cls]) { /* what other threads freed first */
        amm__block *b = m->reuse[cls];
        amm__reuse_unlink(m, b);
        b->region->used_chunks++;
        b->region->used_bytes += b->raw_size;
        b->state = AMM__CACHED; /* keeps its last block's user, size and site: a stale free names it */
        local_push(c, cls, b);
        n++;
    }
    while (n < want) { /* the rest: new chunks */
        amm__block *b = amm__heap_take(m, need, AMM__GRANULE);
        if (!b) break;
        b->state = AMM__CACHED;
        b->size = 0;
        b->serial = 0; /* never a block: a free of it is an invalid pointer, not a double free */
        b->file = NULL;
        b->line = 0;
        b->refcount = 0;
        local_push(c, cls, b);
        n++;
    }
    c->held += n;
    return n;
}

size_t amm__tcache_refill_pool(amm_manager *m, amm__tcache *c, size_t j) {
    amm_pool *p = c->pool[j];
    size_t n = 0, want = class_room(m, p->stride), share = p->count / 8 ? p->count / 8 : 1;
    if (want > share) want = share; /* a small pool is not one thread's */
    while (n < want && p->free_top) {
        amm__block *b = &p->slots[p->free_stack[--p->free_top]];
        if (b->raw + p->stride - p->base > p->shadowed) p->shadowed = b->raw + p->stride - p->base;
        b->user = b->raw + p->front; /* where it is handed out (a slot never used had none) */
        b->state = AMM__CACHED;
        local_push(c, AMM__TC_CLASSES + j, b);
        n++;
    }
    p->tc_held += n;
    c->held += n;
    return n;
}

/* b goes elsewhere: its owner's map forgets it, so that the owner never
 * reads a record that has become another thread's (the owner's own hand-out
 * may have replaced the entry already: then it stays). */
static int refuse(amm__tcache *c, const amm__block *b) {
    uintptr_t user = b->user;
    atomic_compare_exchange_strong_explicit(&c->map[amm__tc_slot(user)].user, &user, 0, memory_order_relaxed,
                                            memory_order_relaxed);
    return 0;
}

int amm__tcache_give_back(amm_manager *m, amm__block *b) {
    amm__tcache *c = b->tc_owner;
    amm_pool *p = amm__pool_of(b);
    size_t cls = p ? amm__tc_pool_list(c, p) : b->raw_size / AMM__GRANULE;
    if (c->orphan || !c->enabled || (p ? !cls : cls >= AMM__TC_CLASSES)) return refuse(c, b);
    if (c->held - c->taken_seen >= cache_room(m)) { /* full, as far as we knew: the owner's line, read */
        c->taken_seen = atomic_load_explicit(&c->taken, memory_order_relaxed);
        if (c->held - c->taken_seen >= cache_room(m)) return refuse(c, b);
    }
    if (p) { /* a free slot is canary end to end while it is cached, too (check_one) */
        if (m->cfg.fill) amm__pool_refill(m, b);
        p->tc_held++;
    }
    amm__san_freed(b->raw, b->raw_size);
    b->refcount = 0;
    b->flags = 0;
    __atomic_store_n(&b->state, AMM__CACHED, __ATOMIC_RELAXED);
    amm__block *head = atomic_load_explicit(&c->remote[cls], memory_order_relaxed);
    do {
        b->q_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&c->remote[cls], &head, b, memory_order_release,
                                                    memory_order_relaxed));
    c->held++;
    return 1;
}

void amm__tcache_fold(amm_manager *m, amm__tcache *c) {
    m->live_blocks += c->live_blocks;
    m->live_bytes += c->live_bytes;
    m->total_allocs += c->allocs;
    m->total_frees += c->frees;
    c->live_blocks = c->live_bytes = c->allocs = c->frees = 0;
    for (size_t j = 0; j < AMM__TC_POOLS; j++) {
        amm_pool *p = c->pool[j];
        if (!p) continue;
        p->used += c->pool_used[j]; /* slots handed out leave the cache's share; freed ones join it */
        p->tc_held -= c->pool_used[j];
        m->pool_slots_used += c->pool_used[j];
        c->pool_used[j] = 0;
    }
}

/* Every cache folded: live_bytes and each pool's used are true figures now, and may be peaks. */
static void peak_seen(amm_manager *m) {
    if ((ptrdiff_t)m->live_bytes > (ptrdiff_t)m->peak_live_bytes) m->peak_live_bytes = m->live_bytes;
    for (size_t i = 0; i < m->pool_count; i++) {
        amm_pool *p = m->pools[i];
        if (p->tc_kept && (ptrdiff_t)p->used > (ptrdiff_t)p->high_water) p->high_water = p->used;
    }
}

/* A cached slot back on its pool's free stack.  It is canary already (or
 * untouched): a write into it since is left for amm_check to find. */
static void slot_back(amm__block *b) {
    amm_pool *p = b->pool;
    p->tc_held--;
    amm__san_freed(b->raw, b->raw_size);
    b->state = AMM_BLOCK_FREE;
    b->refcount = 0;
    p->free_stack[p->free_top++] = (uint32_t)(b - p->slots);
}

/* Any cached chunk or slot back where it came from. */
static void chunk_back(amm_manager *m, amm__block *b) {
    if (b->origin == AMM_ORIGIN_POOL) slot_back(b);
    else amm__heap_release(m, b);
}

/* Every chunk of c back to the manager (its lock held; c stopped, or its owner the caller). */
static void flush_one(amm_manager *m, amm__tcache *c) {
    amm__tcache_fold(m, c);
    for (size_t cls = 0; cls < AMM__TC_LISTS; cls++) {
        amm__block *b = atomic_exchange_explicit(&c->remote[cls], NULL, memory_order_acquire);
        while (b) {
            amm__block *next = b->q_next;
            chunk_back(m, b);
            b = next;
        }
        for (b = c->local[cls]; b; b = c->local[cls]) {
            c->local[cls] = b->q_next;
            chunk_back(m, b);
        }
    }
    c->held = c->taken_seen = 0;
    atomic_store_explicit(&c->taken, 0, memory_order_relaxed);
    c->enabled = 0; /* until its next refill: what stopped the caches may hold now */
    for (size_t i = 0; i < AMM__TC_MAP; i++) atomic_store_explicit(&c->map[i].user, 0, memory_order_relaxed);
}

/* Every owner of m's caches kept out (amm__tc_enter): each marked stopped,
 * then waited for.  An owner inside waits for nothing, so this is short. */
static void stop_all(amm_manager *m) {
    for (amm__tcache *c = m->tc_head; c; c = c->m_next) atomic_store_explicit(&c->stop, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&amm__tc_asym, memory_order_relaxed)) membarrier_all();
    for (amm__tcache *c = m->tc_head; c; c = c->m_next) {
        while (atomic_load_explicit(&c->busy, memory_order_seq_cst)) sched_yield();
    }
}

/* ... and let in again: what was done meanwhile is theirs to see (release). */
static void go_all(amm_manager *m) {
    for (amm__tcache *c = m->tc_head; c; c = c->m_next) atomic_store_explicit(&c->stop, 0, memory_order_release);
}

static size_t list_bytes(const amm__block *b) {
    size_t n = 0;
    for (; b; b = b->q_next) n += b->raw_size;
    return n;
}

size_t amm__tcache_fold_all(amm_manager *m) {
    if (!m->tc_head) return 0;
    size_t bytes = 0;
    int own = amm__fork_held(); /* in a fork handler every cache is stopped already */
    if (!own) stop_all(m);
    for (amm__tcache *c = m->tc_head; c; c = c->m_next) {
        amm__tcache_fold(m, c);
        for (size_t cls = 0; cls < AMM__TC_LISTS; cls++) {
            bytes += list_bytes(c->local[cls]);
            bytes += list_bytes(atomic_load_explicit(&c->remote[cls], memory_order_acquire));
        }
    }
    peak_seen(m);
    if (!own) go_all(m);
    return bytes;
}

void amm__tcache_flush_all(amm_manager *m) {
    if (!m->tc_head) return;
    int own = amm__fork_held();
    if (!own) stop_all(m);
    for (amm__tcache *c = m->tc_head; c; c = c->m_next) flush_one(m, c);
    peak_seen(m);
    if (!own) go_all(m);
}

void *amm__tcache_map(void) { return amm__os_map(sizeof(amm__tcache)); }
void amm__tcache_unmap(void *mem) { amm__os_unmap(mem, sizeof(amm__tcache)); }

amm__tcache *amm__tcache_new(amm_manager *m, void *mem) {
    amm__tcache *c = NULL;
    if (tl_exited || !tl_hooked) return NULL; /* no exit hook: its chunks would never go back */
    for (amm__tcache *o = m->tc_head; o && !c; o = o->m_next) { /* an exited thread's cache, if any */
        if (o->orphan) c = o;
    }
    if (c) {
        c->orphan = 0;
    } else {
        if (!mem) return NULL;
        c = mem; /* zeroed by the mapping */
        atomic_init(&c->stop, 0);
        atomic_init(&c->busy, 0);
        atomic_init(&c->m, m);
        atomic_init(&c->taken, 0);
        for (size_t i = 0; i < AMM__TC_LISTS; i++) atomic_init(&c->remote[i], NULL);
        c->m_prev = NULL;
        c->m_next = m->tc_head;
        if (m->tc_head) m->tc_head->m_prev = c;
        m->tc_head = c;
    }
    c->owner = amm__tcache_self();
    c->t_next = amm__tl_caches;
    amm__tl_caches = c;
    return c;
}

amm__tcache *amm__tcache_find(amm_manager *m) {
    amm__tcache **link = &amm__tl_caches;
    while (*link) {
        amm__tcache *c = *link;
        amm_manager *cm = atomic_load_explicit(&c->m, memory_order_acquire);
        if (!cm) { /* its manager was destroyed: nobody else touches it now */
            *link = c->t_next;
            amm__tcache_unmap(c);
            continue;
        }
        if (cm == m) { /* to the front: the next alloc looks there first */
            *link = c->t_next;
            c->t_next = amm__tl_caches;
            amm__tl_caches = c;
            return c;
        }
        link = &c->t_next;
    }
    return NULL;
}

/* The key's destructor: this thread's caches go back to their managers,
 * emptied, as orphans: blocks they handed out still name them. */
static void thread_exit(void *unused) {
    (void)unused;
    tl_exited = 1; /* later destructors that allocate get no new cache (none would be given back) */
    while (amm__tl_caches) {
        amm__tcache *c = amm__tl_caches;
        amm__fork_wait(); /* let a fork being prepared go first (it would only wait for detach_mu) */
        pthread_mutex_lock(&detach_mu);
        amm_manager *m = atomic_load_explicit(&c->m, memory_order_acquire);
        /* The manager's lock, tried only: a thread holding it (in a callback)
         * may be in amm_destroy of another manager, waiting for detach_mu.
         * Then both are let go and this tries again (m may be destroyed
         * meanwhile: then c->m is NULL). */
        if (m && amm__mutex_trylock(&m->lock) != 0) {
            pthread_mutex_unlock(&detach_mu);
            sched_yield();
            continue;
        }
        amm__tl_caches = c->t_next; /* before c is an orphan: a thread that takes it over relinks it */
        if (m) {
            flush_one(m, c); /* its owner is this thread, out of amm: nobody else is inside it */
            c->orphan = 1;
            c->owner = NULL;
            memset(c->pool, 0, sizeof c->pool); /* the thread that takes it over keeps its own pools */
            amm__mutex_unlock(&m->lock);
        }
        pthread_mutex_unlock(&detach_mu);
        if (!m) amm__tcache_unmap(c);
    }
}

void amm__tcache_thread_register(void) {
    if (tl_registered) return;
    tl_registered = 1; /* first: under the LD_PRELOAD shim the calls below may allocate, and come back here */
    int st = atomic_load_explicit(&key_state, memory_order_acquire);
    while (st != 2) {
        if (st == 3) return;
        int expect = 0;
        if (st == 0 && atomic_compare_exchange_strong(&key_state, &expect, 1)) {
            asym_init(); /* before any cache exists */
            st = pthread_key_create(&exit_key, thread_exit) == 0 ? 2 : 3;
            atomic_store_explicit(&key_state, st, memory_order_release);
        } else {
            sched_yield();
            st = atomic_load_explicit(&key_state, memory_order_acquire);
        }
    }
    tl_hooked = pthread_setspecific(exit_key, &tl_registered) == 0; /* any non-NULL value: the destructor runs */
}

void amm__tcache_detach_all(amm_manager *m) {
    int own = amm__fork_held(); /* detach_mu is this thread's inside a fork handler */
    if (!own) pthread_mutex_lock(&detach_mu);
    for (amm__tcache *c = m->tc_head, *next; c; c = next) {
        next = c->m_next; /* read first: once c->m is NULL its thread may unmap c */
        if (c->orphan) amm__tcache_unmap(c);
        else atomic_store_explicit(&c->m, NULL, memory_order_release);
    }
    m->tc_head = NULL;
    if (!own) pthread_mutex_unlock(&detach_mu);
}

void amm__tcache_fork_child(void) {
    /* a thread the child has not was making the key: make it again (one key slot lost at most) */
    int making = 1;
    atomic_compare_exchange_strong(&key_state, &making, 0);
    if (atomic_load_explicit(&amm__tc_asym, memory_order_relaxed)) asym_init(); /* a new process registers anew */
}

void amm__tcache_fork_mutex(int take) {
    if (take) pthread_mutex_lock(&detach_mu);
    else pthread_mutex_unlock(&detach_mu);
}

int amm__tcache_fork_trylock(void) { return pthread_mutex_trylock(&detach_mu) == 0 ? 0 : -1; }

void amm__tcache_fork_lock(amm_manager *m) {
    if (m->tc_head) stop_all(m); /* an owner inside waits for nothing: this is short */
}

void amm__tcache_fork_unlock(amm_manager *m, int child) {
    const void *self = amm__tcache_self();
    for (amm__tcache *c = m->tc_head; c; c = c->m_next) {
        if (child && !c->orphan && c->owner != self) { /* its thread is not in the child */
            flush_one(m, c);
            c->orphan = 1;
            c->owner = NULL;
        }
    }
    go_all(m);
}
