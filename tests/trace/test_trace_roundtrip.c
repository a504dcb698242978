/*
 * test_trace_roundtrip.c - a real manager traced to a file, read back and
 * compared with what the test did: every record type the core emits, the
 * snapshot written when tracing starts late, periodic snapshots a late
 * joiner can start from, AMM_OPTIONS=trace=..., and refused destinations.
 *
 * Run one test: ./test_trace_roundtrip <name> [--seed N].
 */
#include "harness.h"

#include <amm/trace.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "trace_build.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct trace_file {
    char path[64];
    char dest[80];
} trace_file;

static void trace_file_make(trace_file *f) {
    snprintf(f->path, sizeof f->path, "/tmp/amm_trace_rt_XXXXXX");
    int fd = mkstemp(f->path);
    if (fd >= 0) close(fd);
    snprintf(f->dest, sizeof f->dest, "file:%s", f->path);
}

typedef struct events {
    amm_trace_event *ev;
    size_t n;
    int bad;   /* a status other than OK/END was seen */
    char err[256];
} events;

static events read_events_from(amm_trace_reader *r) {
    events out = {0};
    size_t cap = 0;
    amm_trace_event e;
    amm_trace_status st;
    while ((st = amm_trace_next(r, &e)) == AMM_TRACE_OK) {
        if (out.n == cap) {
            cap = cap ? cap * 2 : 1024;
            out.ev = realloc(out.ev, cap * sizeof e);
            if (out.ev == NULL) abort();
        }
        out.ev[out.n++] = e;
    }
    out.bad = st != AMM_TRACE_END;
    snprintf(out.err, sizeof out.err, "%s", amm_trace_error(r));
    return out;
}

static events read_events(const char *path) {
    char err[256] = "";
    amm_trace_reader *r = amm_trace_open_file(path, 0, err, sizeof err);
    events out = {0};
    if (r == NULL) {
        out.bad = 1;
        snprintf(out.err, sizeof out.err, "%s", err);
        return out;
    }
    out = read_events_from(r);
    amm_trace_close(r);
    return out;
}

static size_t count_op(const events *e, unsigned op) {
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) n += e->ev[i].rec.op == op;
    return n;
}

/* The SITE event for id (the last one before index `before`), or NULL. */
static const amm_trace_event *find_site(const events *e, uint32_t id, size_t before) {
    const amm_trace_event *s = NULL;
    for (size_t i = 0; i < before && i < e->n; i++)
        if (e->ev[i].rec.op == AMM_TOP_SITE && e->ev[i].rec.aux_a == id) s = &e->ev[i];
    return s;
}

/* What the test expects one checked event to hold (0 fields: not compared, see below). */
typedef struct want {
    unsigned op;
    uint64_t addr, size;
    long long aux_a;       /* -1: any */
    int origin;            /* -1: any; else (aux_b >> 24) & 3 */
    int line;              /* alloc-like ops: the site's line; 0: no site check */
    uint64_t args_addr;    /* compared when has_args */
    long long args_size;   /* -1: any */
    int has_args;
} want;

#define WANT_MAX 64
typedef struct wants {
    want w[WANT_MAX];
    size_t n;
} wants;

static void want_add(wants *ws, want w) {
    if (ws->n < WANT_MAX) ws->w[ws->n++] = w;
}

static int is_checked(unsigned op) {
    switch (op) {
    case AMM_TOP_MANAGER_CREATE: case AMM_TOP_MANAGER_DESTROY: case AMM_TOP_POOL_CREATE: case AMM_TOP_ALLOC:
    case AMM_TOP_FREE: case AMM_TOP_REALLOC: case AMM_TOP_COPY: case AMM_TOP_RETAIN: case AMM_TOP_RELEASE:
    case AMM_TOP_MOVE: case AMM_TOP_DEFRAG_BEGIN: case AMM_TOP_DEFRAG_END: case AMM_TOP_FAULT: case AMM_TOP_CHECK:
        return 1;
    default:
        return 0;
    }
}

static void check_one(const events *e, size_t i, const want *w, size_t k) {
    const amm_trace_event *ev = &e->ev[i];
    const amm_trace_record *r = &ev->rec;
    int ok = r->op == w->op && r->addr == w->addr && r->size == w->size &&
             (w->aux_a < 0 || r->aux_a == (uint64_t)w->aux_a) &&
             (w->origin < 0 || (int)((r->aux_b >> 24) & 3u) == w->origin) && ev->has_args == w->has_args &&
             (!w->has_args || (ev->args.addr == w->args_addr && (w->args_size < 0 || ev->args.size == (uint64_t)w->args_size)));
    if (!ok) {
        h_fail(__FILE__, __LINE__, "checked event %zu: got %s addr=0x%llx size=%llu aux_a=%u aux_b=0x%x args=%d(0x%llx,%llu); "
               "wanted %s addr=0x%llx size=%llu aux_a=%lld", k, amm_trace_op_name(r->op),
               (unsigned long long)r->addr, (unsigned long long)r->size, r->aux_a, r->aux_b, ev->has_args,
               (unsigned long long)ev->args.addr, (unsigned long long)ev->args.size, amm_trace_op_name(w->op),
               (unsigned long long)w->addr, (unsigned long long)w->size, w->aux_a);
        return;
    }
    if (w->line > 0) {
        const amm_trace_event *s = find_site(e, r->aux_b & 0xFFFFFFu, i);
        ASSERT_NOT_NULL(s);
        EXPECT_EQ(s->rec.aux_b, (uint32_t)w->line);
        EXPECT_STREQ(s->text, __FILE__);
    }
}

typedef struct moves {
    void *old_ptr[16], *new_ptr[16];
    size_t size[16];
    size_t n;
} moves;

static void on_move(void *old_ptr, void *new_ptr, size_t size, void *user) {
    moves *mv = user;
    if (mv->n < 16) {
        mv->old_ptr[mv->n] = old_ptr;
        mv->new_ptr[mv->n] = new_ptr;
        mv->size[mv->n] = size;
        mv->n++;
    }
}

static amm_manager *traced_manager(const char *options, const char *dest, h_faults *faults) {
    amm_config cfg;
    char err[256] = "";
    amm_config_defaults(&cfg);
    if (amm_config_parse(&cfg, options, err, sizeof err) != 0) {
        h_fail(__FILE__, __LINE__, "options refused: %s", err);
        return NULL;
    }
    cfg.trace = dest;
    cfg.on_fault = h_fault_recorder;
    cfg.on_fault_user = faults;
    h_faults_clear(faults);
    return amm_create(&cfg);
}

static uintptr_t U(const void *p) { return (uintptr_t)p; }

/* ------------------------------------------------------------------------ */
/* Every record type                                                        */
/* ------------------------------------------------------------------------ */

TEST(every_record_type_round_trips) {
    trace_file tf;
    trace_file_make(&tf);
    h_faults faults;
    amm_manager *m = traced_manager("sample_every=3,quarantine_blocks=1", tf.dest, &faults);
    ASSERT_NOT_NULL(m);
    wants ws = {0};
    moves mv = {0};
    amm_set_move_callback(m, on_move, &mv);
    want_add(&ws, (want){AMM_TOP_MANAGER_CREATE, U(m), 1u << 20, 16, -1, 0, 0, 0, 0});

    amm_pool *pool = amm_pool_create(m, 32, 8, 16);
    ASSERT_NOT_NULL(pool);
    amm_pool_info pi;
    ASSERT_EQ(amm_pool_info_get(m, pool, &pi), 0);
    want_add(&ws, (want){AMM_TOP_POOL_CREATE, U(pi.base), 32, 8, -1, 0, pi.stride, -1, 1});

    int line_a = __LINE__ + 1;
    void *a = amm_alloc(m, 24, 16);
    want_add(&ws, (want){AMM_TOP_ALLOC, U(a), 24, -1, AMM_ORIGIN_POOL, line_a, 0, 0, 0});
    int line_b = __LINE__ + 1;
    void *b = amm_alloc_flags(m, 100, 64, AMM_ALLOC_NO_POOL);
    want_add(&ws, (want){AMM_TOP_ALLOC, U(b), 100, -1, AMM_ORIGIN_HEAP, line_b, 0, 0, 0});
    void *big = amm_alloc(m, 300000, 0);
    want_add(&ws, (want){AMM_TOP_ALLOC, U(big), 300000, -1, AMM_ORIGIN_LARGE, 0, 0, 0, 0});
    ASSERT_TRUE(a && b && big);

    void *b2 = amm_realloc(m, b, 5000, 0);
    ASSERT_NOT_NULL(b2);
    want_add(&ws, (want){AMM_TOP_REALLOC, U(b2), 5000, -1, AMM_ORIGIN_HEAP, line_b, U(b), 100, 1});
    int line_d = __LINE__ + 1;
    void *d = amm_copy(m, b2, 50);
    ASSERT_NOT_NULL(d);
    want_add(&ws, (want){AMM_TOP_COPY, U(d), 50, -1, -1, line_d, U(b2), -1, 1});
    EXPECT_EQ(amm_retain(m, d), 2u);
    want_add(&ws, (want){AMM_TOP_RETAIN, U(d), 50, 2, -1, 0, 0, 0, 0});
    EXPECT_EQ(amm_release(m, d), 1u);
    want_add(&ws, (want){AMM_TOP_RELEASE, U(d), 50, 1, -1, 0, 0, 0, 0});

    EXPECT_EQ(amm_free(m, a), 0);
    want_add(&ws, (want){AMM_TOP_FREE, U(a), 24, 1, -1, 0, 0, 0, 0});
    EXPECT_EQ(amm_free(m, a), -1);
    want_add(&ws, (want){AMM_TOP_FAULT, U(a), 0, AMM_ERR_DOUBLE_FREE, -1, 0, 0, -1, 1});
    int local = 0;
    EXPECT_EQ(amm_free(m, &local), -1);
    want_add(&ws, (want){AMM_TOP_FAULT, U(&local), 0, AMM_ERR_INVALID_POINTER, -1, 0, 0, -1, 1});
    EXPECT_EQ(amm_free(m, big), 0);
    want_add(&ws, (want){AMM_TOP_FREE, U(big), 300000, -1, -1, 0, 0, 0, 0});

    /* a hole below a movable block: compaction slides it down */
    void *hole = amm_alloc_flags(m, 64, 0, AMM_ALLOC_NO_POOL);
    void *mover = amm_alloc_flags(m, 64, 0, AMM_ALLOC_NO_POOL | AMM_ALLOC_MOVABLE);
    ASSERT_TRUE(hole && mover);
    want_add(&ws, (want){AMM_TOP_ALLOC, U(hole), 64, -1, AMM_ORIGIN_HEAP, 0, 0, 0, 0});
    want_add(&ws, (want){AMM_TOP_ALLOC, U(mover), 64, -1, AMM_ORIGIN_HEAP, 0, 0, 0, 0});
    EXPECT_EQ(amm_free(m, hole), 0);
    want_add(&ws, (want){AMM_TOP_FREE, U(hole), 64, -1, -1, 0, 0, 0, 0});
    size_t before_defrag = ws.n;
    want_add(&ws, (want){AMM_TOP_DEFRAG_BEGIN, 0, 0, AMM_DEFRAG_ALL, -1, 0, 0, -1, 1});
    amm_defrag_report rep;
    amm_defragment(m, AMM_DEFRAG_ALL, &rep);
    for (size_t i = 0; i < mv.n; i++)
        want_add(&ws, (want){AMM_TOP_MOVE, U(mv.new_ptr[i]), mv.size[i], -1, -1, 0, U(mv.old_ptr[i]), -1, 1});
    want_add(&ws, (want){AMM_TOP_DEFRAG_END, 0, 0, AMM_DEFRAG_ALL, -1, 0, 0, -1, 1});
    EXPECT_EQ(amm_check(m), 0u);
    want_add(&ws, (want){AMM_TOP_CHECK, 0, 0, 0, -1, 0, 0, 0, 0});
    amm_stats st;
    amm_get_stats(m, &st);
    uintptr_t mid = U(m);
    amm_destroy(m);
    want_add(&ws, (want){AMM_TOP_MANAGER_DESTROY, mid, st.live_bytes, (long long)st.live_blocks, -1, 0, 0, 0, 0});

    events e = read_events(tf.path);
    ASSERT_EQ(e.bad, 0);
    EXPECT_STREQ(e.err, "");
    size_t k = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (!is_checked(e.ev[i].rec.op)) continue;
        if (e.ev[i].rec.op == AMM_TOP_DEFRAG_BEGIN || e.ev[i].rec.op == AMM_TOP_DEFRAG_END) {
            /* reserved/free come from the manager's stats: compare what the test knows */
            e.ev[i].rec.addr = 0;
            e.ev[i].rec.size = 0;
            e.ev[i].args.addr = 0;
        }
        if (e.ev[i].rec.op == AMM_TOP_FAULT) e.ev[i].rec.size = 0, e.ev[i].args.addr = 0;
        if (k < ws.n) check_one(&e, i, &ws.w[k], k);
        k++;
    }
    EXPECT_EQ(k, ws.n);
    EXPECT_GE(ws.n, before_defrag + 2);
    EXPECT_EQ(rep.blocks_moved, mv.n);
    EXPECT_GE(mv.n, 1u);

    /* the rest of the record types, and the stream's own invariants */
    EXPECT_EQ(e.ev[0].rec.op, AMM_TOP_THREAD_NAME);
    EXPECT_EQ(e.ev[1].rec.op, AMM_TOP_MANAGER_CREATE);
    EXPECT_GE(count_op(&e, AMM_TOP_SNAPSHOT_BEGIN), 1u);
    EXPECT_EQ(count_op(&e, AMM_TOP_SNAPSHOT_BEGIN), count_op(&e, AMM_TOP_SNAPSHOT_END));
    EXPECT_GE(count_op(&e, AMM_TOP_REGION_MAP), 3u);   /* heap region, pool slab, large mapping */
    EXPECT_GE(count_op(&e, AMM_TOP_REGION_UNMAP), 1u);
    EXPECT_GE(count_op(&e, AMM_TOP_SAMPLE), 3u);
    EXPECT_GE(count_op(&e, AMM_TOP_QUARANTINE_RELEASE), 1u);
    EXPECT_GE(count_op(&e, AMM_TOP_SITE), 2u);
    EXPECT_EQ(count_op(&e, AMM_TOP_ARGS) + count_op(&e, AMM_TOP_STRING) + count_op(&e, AMM_TOP_NOP), 0u);
    for (size_t i = 1; i < e.n; i++) {
        EXPECT_GT(e.ev[i].seq, e.ev[i - 1].seq);
        EXPECT_GE(e.ev[i].time_ns, e.ev[i - 1].time_ns);
    }
    for (size_t i = 0; i < e.n; i++) {
        if (e.ev[i].rec.op != AMM_TOP_SAMPLE) continue;
        EXPECT_TRUE(e.ev[i].has_args);
        EXPECT_LE(e.ev[i].rec.addr, e.ev[i].rec.size); /* live <= reserved */
        EXPECT_LE(e.ev[i].rec.aux_a, 1000000u);
    }
    free(e.ev);
    unlink(tf.path);
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                */
/* ------------------------------------------------------------------------ */

typedef struct walk_set {
    uintptr_t user[8192];
    size_t size[8192];
    unsigned refcount[8192], state[8192];
    size_t n;
} walk_set;

static int collect(const amm_block_info *b, void *user) {
    walk_set *s = user;
    if (b->state == AMM_BLOCK_FREE || s->n >= 8192) return 0;
    s->user[s->n] = U(b->user);
    s->size[s->n] = b->size;
    s->refcount[s->n] = b->refcount;
    s->state[s->n] = b->state;
    s->n++;
    return 0;
}

TEST(late_start_writes_a_snapshot) {
    h_faults faults;
    amm_manager *m = h_new_manager("quarantine_blocks=8", &faults);
    amm_pool *pool = amm_pool_create(m, 48, 4, 0);
    ASSERT_NOT_NULL(pool);
    void *p[6];
    for (int i = 0; i < 6; i++) p[i] = amm_alloc(m, (size_t)(i * 40 + 8), 0);
    void *large = amm_alloc(m, 400000, 0);
    ASSERT_NOT_NULL(large);
    amm_retain(m, p[2]);
    amm_free(m, p[4]); /* quarantined */
    static walk_set want;
    want.n = 0;
    amm_walk(m, collect, &want);

    trace_file tf;
    trace_file_make(&tf);
    ASSERT_EQ(amm_trace_start(m, tf.dest), 0);
    amm_trace_stop(m);
    amm_destroy(m);
    EXPECT_FAULTS(&faults, 0);

    events e = read_events(tf.path);
    ASSERT_EQ(e.bad, 0);
    size_t begin = e.n, end = e.n;
    for (size_t i = 0; i < e.n; i++) {
        if (e.ev[i].rec.op == AMM_TOP_SNAPSHOT_BEGIN && begin == e.n) begin = i;
        if (e.ev[i].rec.op == AMM_TOP_SNAPSHOT_END && end == e.n) end = i;
    }
    ASSERT_LT(begin, end);
    ASSERT_LT(end, e.n);
    EXPECT_EQ(e.ev[begin].rec.aux_a, 6u); /* live blocks: 5 small + 1 large */
    size_t lives = 0, maps = 0, pools = 0;
    for (size_t i = begin; i <= end; i++) {
        const amm_trace_event *ev = &e.ev[i];
        EXPECT_EQ(ev->in_snapshot, 1);
        maps += ev->rec.op == AMM_TOP_REGION_MAP;
        pools += ev->rec.op == AMM_TOP_POOL_CREATE;
        if (ev->rec.op != AMM_TOP_LIVE) continue;
        lives++;
        size_t j = 0;
        while (j < want.n && want.user[j] != ev->rec.addr) j++;
        ASSERT_LT(j, want.n);
        EXPECT_EQ(ev->rec.size, (uint64_t)want.size[j]);
        EXPECT_TRUE(ev->has_args);
        EXPECT_EQ(ev->args.aux_a, want.refcount[j]);
        EXPECT_EQ(ev->args.aux_b, want.state[j]);
        const amm_trace_event *s = find_site(&e, ev->rec.aux_b & 0xFFFFFFu, i);
        ASSERT_NOT_NULL(s);
        EXPECT_STREQ(s->text, __FILE__);
    }
    EXPECT_EQ(lives, want.n);
    EXPECT_EQ(pools, 1u);
    EXPECT_GE(maps, 3u); /* a heap region, the pool slab, the large mapping */
    free(e.ev);
    unlink(tf.path);
}

/* Live set kept from a trace: what a viewer joining at a snapshot rebuilds. */
typedef struct live_model {
    uint64_t addr[4096], size[4096];
    size_t n;
} live_model;

static void model_del(live_model *lm, uint64_t addr) {
    for (size_t i = 0; i < lm->n; i++)
        if (lm->addr[i] == addr) {
            lm->addr[i] = lm->addr[--lm->n];
            lm->size[i] = lm->size[lm->n];
            return;
        }
}

static void model_add(live_model *lm, uint64_t addr, uint64_t size) {
    model_del(lm, addr);
    if (lm->n < 4096) {
        lm->addr[lm->n] = addr;
        lm->size[lm->n++] = size;
    }
}

static void model_apply(live_model *lm, const amm_trace_event *ev) {
    switch (ev->rec.op) {
    case AMM_TOP_LIVE:
        if (ev->args.aux_b == AMM_BLOCK_LIVE) model_add(lm, ev->rec.addr, ev->rec.size);
        break;
    case AMM_TOP_ALLOC: case AMM_TOP_COPY:
        model_add(lm, ev->rec.addr, ev->rec.size);
        break;
    case AMM_TOP_REALLOC: case AMM_TOP_MOVE:
        model_del(lm, ev->args.addr);
        model_add(lm, ev->rec.addr, ev->rec.size);
        break;
    case AMM_TOP_FREE:
        model_del(lm, ev->rec.addr);
        break;
    default:
        break;
    }
}

/* Joins the stream at the last chunk flagged as holding a snapshot. */
TEST(late_joiner_rebuilds_the_live_set) {
    uint64_t seed = h_seed();
    printf("late_joiner_rebuilds_the_live_set: seed %llu\n", (unsigned long long)seed);
    h_rng rng = h_rng_make(seed);
    trace_file tf;
    trace_file_make(&tf);
    h_faults faults;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    amm_manager *m = traced_manager("sample_every=1", tf.dest, &faults);
    ASSERT_NOT_NULL(m);
    void *slots[512] = {0};
    for (int op = 0; op < 150000; op++) {
        size_t i = (size_t)(h_rand(&rng) % 512);
        if (slots[i] == NULL) slots[i] = amm_alloc(m, (size_t)h_rand_range(&rng, 1, 700), 0);
        else if (h_rand(&rng) % 4 == 0) slots[i] = amm_realloc(m, slots[i], (size_t)h_rand_range(&rng, 1, 900), 0);
        else (void)amm_free(m, slots[i]), slots[i] = NULL;
    }
    static walk_set final;
    final.n = 0;
    amm_trace_flush(m);
    amm_walk(m, collect, &final);
    EXPECT_EQ(amm_trace_drop_count(m), 0u);
    amm_trace_stop(m);
    amm_destroy(m);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    EXPECT_FAULTS(&faults, 0);
    uint64_t elapsed_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;

    /* record times stay inside the run (the writer may derive them from the TSC) */
    events every = read_events(tf.path);
    ASSERT_GT(every.n, 0u);
    EXPECT_LE(every.ev[every.n - 1].time_ns, elapsed_ns);
    free(every.ev);

    /* find the last chunk flagged as holding a snapshot, by walking the chunk headers */
    FILE *f = fopen(tf.path, "rb");
    ASSERT_NOT_NULL(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *all = malloc(len);
    ASSERT_EQ(fread(all, 1, len, f), len);
    fclose(f);
    size_t last_snap = 0, snaps = 0;
    for (size_t off = 64; off + 32 <= len; off += 32 + 32 * (size_t)tb_get(all + off + 4, 2)) {
        ASSERT_EQ(memcmp(all + off, "AMMC", 4), 0);
        if (tb_get(all + off + 6, 2) & 1u) last_snap = off, snaps++;
    }
    EXPECT_GE(snaps, 2u); /* the one at start and at least one periodic */
    ASSERT_GT(last_snap, 64u);

    /* a late joiner: the header, then the stream from that chunk on */
    size_t tail = len - last_snap;
    uint8_t *late = malloc(64 + tail);
    memcpy(late, all, 64);
    memcpy(late + 64, all + last_snap, tail);
    char err[256];
    amm_trace_reader *r = amm_trace_open_mem(late, 64 + tail, err, sizeof err);
    ASSERT_NOT_NULL(r);
    events e = read_events_from(r);
    amm_trace_close(r);
    EXPECT_EQ(e.bad, 0);
    static live_model lm;
    lm.n = 0;
    int started = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (e.ev[i].rec.op == AMM_TOP_SNAPSHOT_BEGIN) started = 1;
        if (started) model_apply(&lm, &e.ev[i]);
    }
    EXPECT_EQ(started, 1);
    size_t final_live = 0;
    for (size_t j = 0; j < final.n; j++) final_live += final.state[j] == AMM_BLOCK_LIVE;
    EXPECT_EQ(lm.n, final_live);
    for (size_t j = 0; j < final.n; j++) {
        if (final.state[j] != AMM_BLOCK_LIVE) continue;
        size_t i = 0;
        while (i < lm.n && lm.addr[i] != final.user[j]) i++;
        if (i == lm.n) {
            h_fail(__FILE__, __LINE__, "live block 0x%llx missing from the rebuilt set",
                   (unsigned long long)final.user[j]);
            break;
        }
        EXPECT_EQ(lm.size[i], (uint64_t)final.size[j]);
    }
    free(e.ev);
    free(late);
    free(all);
    unlink(tf.path);
}

/* ------------------------------------------------------------------------ */
/* Starting                                                                 */
/* ------------------------------------------------------------------------ */

TEST(amm_options_traces_any_program) {
    trace_file tf;
    trace_file_make(&tf);
    char opts[128];
    snprintf(opts, sizeof opts, "trace=%s", tf.dest);
    setenv("AMM_OPTIONS", opts, 1);
    amm_manager *m = amm_create(NULL);
    unsetenv("AMM_OPTIONS");
    ASSERT_NOT_NULL(m);
    void *p = amm_alloc(m, 10, 0);
    amm_free(m, p);
    amm_destroy(m);
    events e = read_events(tf.path);
    EXPECT_EQ(e.bad, 0);
    EXPECT_EQ(count_op(&e, AMM_TOP_MANAGER_CREATE), 1u);
    EXPECT_EQ(count_op(&e, AMM_TOP_ALLOC), 1u);
    EXPECT_EQ(count_op(&e, AMM_TOP_FREE), 1u);
    EXPECT_EQ(count_op(&e, AMM_TOP_MANAGER_DESTROY), 1u);
    free(e.ev);
    unlink(tf.path);
}

/* A moving realloc says where the old block went: quarantine (a small block) or
 * straight back (one larger than the quarantine); an in-place one says nothing. */
TEST(moving_realloc_says_where_the_old_block_went) {
    trace_file tf;
    trace_file_make(&tf);
    h_faults f;
    amm_manager *m = traced_manager("quarantine=4K", tf.dest, &f);
    ASSERT_NOT_NULL(m);
    void *keep = amm_alloc(m, 64, 0);
    void *small = amm_alloc(m, 64, 0);
    void *fence = amm_alloc(m, 64, 0); /* keeps small from growing in place */
    void *big = amm_alloc(m, 8000, 0);
    void *fence2 = amm_alloc(m, 64, 0);
    void *small2 = amm_realloc(m, small, 2000, 0);
    void *big2 = amm_realloc(m, big, 20000, 0);
    void *same = amm_realloc(m, small2, 1000, 0); /* shrinks in place */
    ASSERT_TRUE(small2 && big2 && same == small2 && small2 != small && big2 != big);
    amm_destroy(m);
    EXPECT_FAULTS(&f, 0);
    (void)keep, (void)fence, (void)fence2;
    events e = read_events(tf.path);
    int seen = 0;
    for (size_t i = 0; i < e.n; i++) {
        const amm_trace_event *ev = &e.ev[i];
        if (ev->rec.op != AMM_TOP_REALLOC || !ev->has_args) continue;
        seen++;
        if (ev->args.addr == U(small)) EXPECT_EQ(ev->args.aux_a, AMM_TRACE_REALLOC_OLD_KNOWN | AMM_TRACE_REALLOC_OLD_QUARANTINED);
        else if (ev->args.addr == U(big)) EXPECT_EQ(ev->args.aux_a, AMM_TRACE_REALLOC_OLD_KNOWN);
        else EXPECT_EQ(ev->args.aux_a, 0u); /* in place */
    }
    EXPECT_EQ(seen, 3);
    free(e.ev);
    unlink(tf.path);
}

TEST(bad_destinations_refused) {
    static const char *const bad[] = {"", "bogus", "file:", "file:/nonexistent-dir/x.amt", "fd:", "fd:abc",
                                      "fd:-1", "fd:99999", "unix:", "unix:/nonexistent-dir/sock"};
    h_faults faults;
    amm_manager *m = h_new_manager(NULL, &faults);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_faults_clear(&faults);
        EXPECT_EQ(amm_trace_start(m, bad[i]), -1);
        EXPECT_EQ(faults.count, 1u);
        EXPECT_EQ(faults.last.kind, AMM_ERR_BAD_OPTION);
        EXPECT_NOT_NULL(faults.last.detail);
    }
    EXPECT_EQ(amm_trace_start(m, NULL), -1);
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/tmp/amm_trace_fifo_%d", (int)getpid());
    ASSERT_EQ(mkfifo(fifo, 0600), 0);
    char fifo_dest[80];
    snprintf(fifo_dest, sizeof fifo_dest, "file:%s", fifo);
    h_faults_clear(&faults);
    EXPECT_EQ(amm_trace_start(m, fifo_dest), -1); /* nobody reads it: refused, not blocked on */
    EXPECT_EQ(faults.last.kind, AMM_ERR_BAD_OPTION);
    unlink(fifo);
    trace_file tf;
    trace_file_make(&tf);
    EXPECT_EQ(amm_trace_start(m, tf.dest), 0);
    h_faults_clear(&faults);
    EXPECT_EQ(amm_trace_start(m, tf.dest), -1); /* already on */
    EXPECT_EQ(faults.last.kind, AMM_ERR_BAD_OPTION);
    amm_trace_stop(m);
    amm_trace_stop(m); /* twice is harmless */
    amm_trace_flush(m);
    EXPECT_EQ(amm_trace_drop_count(m), 0u);
    amm_destroy(m);
    events e = read_events(tf.path);
    EXPECT_EQ(e.bad, 0);
    EXPECT_GE(count_op(&e, AMM_TOP_SNAPSHOT_BEGIN), 1u);
    free(e.ev);
    unlink(tf.path);
}
