/*
 * bench.c - amm-viz --bench N (see bench.h).
 *
 * 1. Frame rate: a model with N live blocks (synthetic ALLOC records packed
 *    into 1 MiB heap regions, one chunk in five left free) is drawn F times
 *    while 64 blocks change per frame (so every frame rasterises the whole
 *    heap), then F times unchanged (the raster cache path).
 * 2. Ingest: a real trace is recorded with libamm (alloc/free churn over up
 *    to 100k live blocks), then read by the ingest thread and applied by the
 *    player while frames are drawn, as in live mode; the rate is records
 *    applied per second of wall time.  The reader alone (no model, no
 *    rendering) is measured on the same file for comparison.
 * Figures are wall-clock and machine dependent: this is a benchmark, not a test.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <SDL.h>
#include <SDL_ttf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "amm/amm.h"
#include "amm/trace.h"
#include "ingest.h"
#include "player.h"
#include "render.h"

#define VB_FRAMES 60
#define VB_TRACE_OPS 3000000u

static double vb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t vb_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct vb_target {
    SDL_Window *win;
    SDL_Renderer *ren;
    SDL_Surface *surface;
} vb_target;

static int vb_open(vb_target *t, int w, int h, int headless)
{
    memset(t, 0, sizeof *t);
    if (!headless && SDL_Init(SDL_INIT_VIDEO) == 0) {
        t->win = SDL_CreateWindow("amm-viz bench", SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED, w, h, 0);
        if (t->win) t->ren = SDL_CreateRenderer(t->win, -1, 0);
        if (t->ren) return 0;
        fprintf(stderr, "amm-viz: bench: no window (%s); measuring offscreen\n", SDL_GetError());
    } else if (SDL_Init(0) != 0) {
        return -1;
    }
    t->surface = SDL_CreateRGBSurfaceWithFormat(0, w, h, 32, SDL_PIXELFORMAT_ARGB8888);
    t->ren = t->surface ? SDL_CreateSoftwareRenderer(t->surface) : NULL;
    return t->ren ? 0 : -1;
}

static void vb_close(vb_target *t)
{
    if (t->ren) SDL_DestroyRenderer(t->ren);
    if (t->surface) SDL_FreeSurface(t->surface);
    if (t->win) SDL_DestroyWindow(t->win);
}

static void vb_frame(vb_target *t, vr_ctx *rc, const vm_model *m, vr_view *v, const vr_status *st)
{
    vr_render(rc, m, v, st);
    if (t->win) SDL_RenderPresent(t->ren);
    v->frame++;
}

static void vb_view_init(vr_view *v, vr_status *st)
{
    memset(v, 0, sizeof *v);
    v->zoom = 1;
    memset(st, 0, sizeof *st);
    st->source = "bench";
    st->mode = "LIVE";
}

static void vb_apply(vm_model *m, uint64_t *seq, unsigned op, uint64_t addr, uint64_t size, uint32_t a, uint32_t b)
{
    amm_trace_event ev;
    memset(&ev, 0, sizeof ev);
    ev.seq = ++*seq;
    ev.rec.op = (uint8_t)op;
    ev.rec.addr = addr;
    ev.rec.size = size;
    ev.rec.aux_a = a;
    ev.rec.aux_b = b;
    ev.rec.align_log2 = 4;
    vm_model_apply(m, &ev);
}

/* Fills m with n live blocks; returns the user pointers (caller frees). */
static uint64_t *vb_populate(vm_model *m, long n, uint64_t *seq)
{
    uint64_t *users = malloc((size_t)n * sizeof *users);
    if (!users) return NULL;
    uint64_t rng = 42, region = 0, base = 0, at = 0, end = 0;
    const uint64_t rsize = 1u << 20;
    vb_apply(m, seq, AMM_TOP_MANAGER_CREATE, 1, 0, 16, 0);
    for (long i = 0; i < n;) {
        uint64_t size = 16 + vb_rand(&rng) % 225;
        uint64_t chunk = (16 + size + 16 + 15) & ~(uint64_t)15;
        if (at + chunk > end) {
            base = 0x10000000000ull + region * (rsize + 65536);
            vb_apply(m, seq, AMM_TOP_REGION_MAP, base, rsize, AMM_ORIGIN_HEAP, (uint32_t)region);
            region++;
            at = base;
            end = base + rsize;
        }
        if (vb_rand(&rng) % 5 != 0) {
            vb_apply(m, seq, AMM_TOP_ALLOC, at + 16, size, 16, (uint32_t)(1 + i % 50));
            users[i++] = at + 16;
        }
        at += chunk;
    }
    return users;
}

static void vb_fps(vb_target *t, vr_ctx *rc, long n)
{
    vm_limits lim;
    vm_limits_default(&lim);
    if ((size_t)n + 1024 > lim.max_blocks) lim.max_blocks = (size_t)n + 1024;
    vm_model m;
    if (vm_model_init(&m, &lim) != 0) return;
    uint64_t seq = 0;
    double t0 = vb_now();
    uint64_t *users = vb_populate(&m, n, &seq);
    double t_fill = vb_now() - t0;
    if (!users) {
        vm_model_free(&m);
        return;
    }
    vr_view v;
    vr_status st;
    vb_view_init(&v, &st);
    vb_frame(t, rc, &m, &v, &st); /* warm up: textures, geometry */
    uint64_t rng = 7;
    t0 = vb_now();
    for (int f = 0; f < VB_FRAMES; f++) {
        for (int k = 0; k < 64; k++) { /* free and re-allocate 64 blocks: the raster must be redone */
            uint64_t u = users[vb_rand(&rng) % (uint64_t)n];
            const vm_block *b = vm_model_find(&m, u);
            uint64_t size = b ? b->size : 16;
            vb_apply(&m, &seq, AMM_TOP_FREE, u, size, 0, 0);
            vb_apply(&m, &seq, AMM_TOP_ALLOC, u, size, 16, 1);
        }
        vb_frame(t, rc, &m, &v, &st);
    }
    double t_change = vb_now() - t0;
    t0 = vb_now();
    for (int f = 0; f < VB_FRAMES; f++) vb_frame(t, rc, &m, &v, &st);
    double t_static = vb_now() - t0;
    printf("bench: %ld live blocks in %zu regions (model built in %.2f s, %.1f M records/s)\n", n, m.nregions, t_fill,
           (double)seq / t_fill / 1e6);
    SDL_RendererInfo info;
    const char *rname = SDL_GetRendererInfo(t->ren, &info) == 0 ? info.name : "?";
    printf("bench:   %.1f fps with the heap changing every frame (full raster), %.1f fps unchanged (cached raster), "
           "%dx%d %s, %s renderer\n",
           VB_FRAMES / t_change, VB_FRAMES / t_static, rc->lay.w, rc->lay.h, t->win ? "window" : "offscreen", rname);
    free(users);
    vm_model_free(&m);
}

/* Records a churn trace with libamm into path.  Returns the ops done or 0. */
static uint64_t vb_record(const char *path)
{
    amm_config cfg;
    amm_config_defaults(&cfg);
    char opts[600];
    snprintf(opts, sizeof opts, "trace=file:%s,sample_every=4096,quarantine=0,fill=0", path);
    char err[256];
    if (amm_config_parse(&cfg, opts, err, sizeof err) != 0) {
        fprintf(stderr, "amm-viz: bench: %s\n", err);
        return 0;
    }
    amm_manager *m = amm_create(&cfg);
    if (!m) return 0;
    enum { LIVE = 100000 };
    void **live = calloc(LIVE, sizeof *live);
    if (!live) {
        amm_destroy(m);
        return 0;
    }
    uint64_t rng = 99, ops = 0;
    for (uint64_t i = 0; i < VB_TRACE_OPS / 2; i++) {
        size_t k = (size_t)(vb_rand(&rng) % LIVE);
        if (live[k]) {
            amm_free(m, live[k]);
            ops++;
        }
        live[k] = amm_alloc(m, 16 + vb_rand(&rng) % 200, 0);
        ops++;
    }
    for (size_t k = 0; k < LIVE; k++)
        if (live[k]) amm_free(m, live[k]);
    free(live);
    amm_destroy(m);
    return ops;
}

static void vb_ingest(vb_target *t, vr_ctx *rc)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/amm-viz-bench-%ld.trace", (long)getpid());
    double t0 = vb_now();
    uint64_t ops = vb_record(path);
    double t_rec = vb_now() - t0;
    if (!ops) {
        fprintf(stderr, "amm-viz: bench: could not record a trace\n");
        return;
    }
    /* the reader alone */
    char err[256] = "";
    amm_trace_reader *r = amm_trace_open_file(path, 0, err, sizeof err);
    uint64_t records = 0;
    t0 = vb_now();
    if (r) {
        amm_trace_event ev;
        while (amm_trace_next(r, &ev) == AMM_TRACE_OK) records++;
        amm_trace_close(r);
    }
    double t_read = vb_now() - t0;
    /* ingest thread + player + rendering, as live mode runs */
    vz_ingest *g = vz_ingest_new(VZ_SRC_FILE, path, 0, 0, err, sizeof err);
    vp_player pl;
    if (!g || vp_init(&pl, g, NULL) != 0) {
        fprintf(stderr, "amm-viz: bench: %s\n", err);
        vz_ingest_free(g);
        unlink(path);
        return;
    }
    vr_view v;
    vr_status st;
    vb_view_init(&v, &st);
    unsigned frames = 0;
    t0 = vb_now();
    vz_ingest_start(g, err, sizeof err);
    for (;;) {
        vz_stat s;
        double until = vb_now() + 0.025; /* as amm-viz's live mode: 25 ms of records per frame */
        size_t n = 0, k;
        do {
            k = vp_advance(&pl, 16384, 0, UINT64_MAX);
            n += k;
        } while (k == 16384 && vb_now() < until);
        vz_get_stat(g, &s);
        st.cursor = pl.cursor;
        st.total = s.count;
        vb_frame(t, rc, &pl.model, &v, &st);
        frames++;
        if (n == 0 && s.finished && pl.cursor >= s.count) break;
    }
    double t_ing = vb_now() - t0;
    printf("bench: trace of %" PRIu64 " ops recorded in %.2f s: %" PRIu64 " records\n", ops, t_rec, records);
    printf("bench:   reader alone %.2f M records/s; ingest + model + rendering %.2f M records/s (%" PRIu64
           " records in %.2f s, %u frames, %.1f fps)\n",
           (double)records / t_read / 1e6, (double)pl.cursor / t_ing / 1e6, pl.cursor, t_ing, frames,
           frames / t_ing);
    vp_free(&pl);
    vz_ingest_free(g);
    unlink(path);
}

int vb_run(long nblocks, int w, int h, int headless, const char *font)
{
    vb_target t;
    if (vb_open(&t, w, h, headless) != 0) {
        fprintf(stderr, "amm-viz: bench: cannot create a renderer: %s\n", SDL_GetError());
        SDL_Quit();
        return 1;
    }
    vr_ctx rc;
    vr_init(&rc, t.ren, font);
    vb_fps(&t, &rc, nblocks);
    vb_ingest(&t, &rc);
    vr_free(&rc);
    vb_close(&t);
    if (TTF_WasInit()) TTF_Quit();
    SDL_Quit();
    return 0;
}
