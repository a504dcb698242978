/*
 * test_viz_render.c - headless screenshots of a fixed trace: the renderer
 * draws into an offscreen surface and the test reads pixels back at the
 * places where known blocks must be (via vr_map_pos_of), checks panel
 * colours, and round-trips the PNG writer.  Set AMM_VIZ_SHOTS=DIR to keep
 * the PNGs for a look.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <SDL.h>

#include "png.h"
#include "render.h"
#include "viz_events.h"

#define W 1280
#define H 800
#define HEAP 0x100000u
#define POOL 0x200000u

typedef struct tr_ctx {
    SDL_Surface *surface;
    SDL_Renderer *ren;
    vr_ctx rc;
    vm_model model;
    vr_view view;
    vr_status st;
} tr_ctx;

/* The fixed trace: a 64 KiB heap region and a 32-slot pool; see each line. */
static void tr_trace(vm_model *m)
{
    ve_stream s = {m, 0};
    ve_manager(&s, 16);
    ve_region(&s, HEAP, 65536, 0);
    ve_pool(&s, POOL, 200, 32, 1, 256, 16);
    ve_site(&s, 1, 10, "app.c");
    ve_alloc_o(&s, HEAP + 16, 4096, 16, 1, AMM_ORIGIN_HEAP);          /* A: live */
    ve_alloc(&s, HEAP + 0x2000 + 16, 4096, 16);                          /* B: quarantined below */
    ve_free(&s, HEAP + 0x2000 + 16, 4096, 1);
    ve_alloc(&s, HEAP + 0x4000 + 16, 8192, 16);                          /* C: refcount 8 */
    for (uint32_t rc = 2; rc <= 8; rc++) ve_simple(&s, AMM_TOP_RETAIN, HEAP + 0x4000 + 16, 0, rc);
    ve_alloc_o(&s, POOL + 3 * 256 + 16, 200, 16, 0, AMM_ORIGIN_POOL);   /* pool slot 3 */
    ve_sample(&s, 16384, 65536 + 8192, 250000, 3);
    ve_defrag(&s, AMM_TOP_DEFRAG_BEGIN, 65536 + 8192, 40000, 300000);
    ve_defrag(&s, AMM_TOP_DEFRAG_END, 65536 + 8192, 40000, 100000);
    ve_sample(&s, 16384, 65536 + 8192, 100000, 3);
    ve_fault(&s, AMM_ERR_OVERFLOW, HEAP + 0x4000 + 16, HEAP + 0x4000 + 16, 8192, 8192, 4); /* past C's end */
}

static int tr_open(tr_ctx *t)
{
    memset(t, 0, sizeof *t);
    if (SDL_Init(0) != 0) return -1;
    t->surface = SDL_CreateRGBSurfaceWithFormat(0, W, H, 32, SDL_PIXELFORMAT_ARGB8888);
    if (!t->surface) return -1;
    t->ren = SDL_CreateSoftwareRenderer(t->surface);
    if (!t->ren) return -1;
    vr_init(&t->rc, t->ren, NULL);
    if (vm_model_init(&t->model, NULL) != 0) return -1;
    tr_trace(&t->model);
    t->view.zoom = 1;
    t->view.frame = 0; /* a frame where recent faults are drawn red (they flash white on others) */
    t->st.source = "fixed trace";
    t->st.mode = "PAUSED";
    t->st.total = t->st.cursor = t->model.events;
    return 0;
}

static void tr_close(tr_ctx *t)
{
    vm_model_free(&t->model);
    vr_free(&t->rc);
    if (t->ren) SDL_DestroyRenderer(t->ren);
    if (t->surface) SDL_FreeSurface(t->surface);
    TTF_Quit();
    SDL_Quit();
}

static void tr_draw(tr_ctx *t, const char *name)
{
    vr_render(&t->rc, &t->model, &t->view, &t->st);
    SDL_RenderPresent(t->ren);
    const char *dir = getenv("AMM_VIZ_SHOTS");
    if (dir && *dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.png", dir, name);
        SDL_Surface *rgb = SDL_ConvertSurfaceFormat(t->surface, SDL_PIXELFORMAT_RGB24, 0);
        if (rgb) {
            vpng_save(path, rgb->pixels, rgb->w, rgb->h, (size_t)rgb->pitch, 3);
            SDL_FreeSurface(rgb);
        }
    }
}

static uint32_t tr_pixel(const tr_ctx *t, int x, int y)
{
    if (x < 0 || y < 0 || x >= W || y >= H) return 0xFFFFFFFFu;
    const uint8_t *row = (const uint8_t *)t->surface->pixels + (size_t)y * (size_t)t->surface->pitch;
    uint32_t v;
    memcpy(&v, row + (size_t)x * 4, 4);
    return v & 0xFFFFFFu;
}

static int tr_close_to(uint32_t got, uint32_t want, int tol)
{
    for (int sh = 0; sh <= 16; sh += 8) {
        int a = (int)((got >> sh) & 0xFF), b = (int)((want >> sh) & 0xFF);
        if (a - b > tol || b - a > tol) return 0;
    }
    return 1;
}

/* The pixel drawn for address addr on the heap map has colour want (within tol). */
#define EXPECT_MAP_COLOUR(t, addr, want, tol)                                                   \
    do {                                                                                        \
        int x_, y_;                                                                             \
        ASSERT_TRUE(vr_map_pos_of(&(t)->rc, &(t)->model, (addr), &x_, &y_));                    \
        uint32_t got_ = tr_pixel((t), x_, y_);                                                  \
        if (!tr_close_to(got_, (want), (tol)))                                                  \
            h_fail(__FILE__, __LINE__, "map pixel for 0x%llx at (%d,%d) is %06x, want %06x",   \
                   (unsigned long long)(addr), x_, y_, (unsigned)got_, (unsigned)(want));       \
    } while (0)

/* How many pixels of rect r have colour want. */
static size_t tr_count(const tr_ctx *t, SDL_Rect r, uint32_t want, int tol)
{
    size_t n = 0;
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) n += tr_close_to(tr_pixel(t, x, y), want, tol);
    return n;
}

TEST(heap_map_colours_at_known_blocks)
{
    tr_ctx t;
    ASSERT_EQ(tr_open(&t), 0);
    tr_draw(&t, "state");
    EXPECT_MAP_COLOUR(&t, HEAP + 16 + 2048, VR_RGB_USED, 10);              /* A */
    EXPECT_MAP_COLOUR(&t, HEAP + 0x2000 + 16 + 2048, VR_RGB_QUARANTINE, 10); /* B */
    EXPECT_MAP_COLOUR(&t, HEAP + 0xC000, VR_RGB_HEAP_FREE, 10);            /* nothing there */
    EXPECT_MAP_COLOUR(&t, POOL + 3 * 256 + 16 + 100, VR_RGB_POOL_USED, 10); /* slot 3 */
    EXPECT_MAP_COLOUR(&t, POOL + 10 * 256 + 128, VR_RGB_POOL_FREE, 10);    /* slot 10: free */
    tr_close(&t);
}

TEST(refcount_colour_mode_heats_shared_blocks)
{
    tr_ctx t;
    ASSERT_EQ(tr_open(&t), 0);
    t.view.color_mode = VR_COLOR_REFCOUNT;
    tr_draw(&t, "refcount");
    EXPECT_MAP_COLOUR(&t, HEAP + 0x4000 + 16 + 4096, 0xf03c28, 12); /* C: 8 references, hot */
    EXPECT_MAP_COLOUR(&t, HEAP + 16 + 2048, 0x3c78dc, 12);          /* A: 1 reference, cool */
    tr_close(&t);
}

TEST(fault_is_marked_and_logged)
{
    tr_ctx t;
    ASSERT_EQ(tr_open(&t), 0);
    tr_draw(&t, "fault");
    /* the 4 bytes past C's end are red on the map, with a marker box around them */
    int x, y;
    ASSERT_TRUE(vr_map_pos_of(&t.rc, &t.model, HEAP + 0x4000 + 16 + 8192, &x, &y));
    SDL_Rect around = {x - 6, y - 10, 13, 21};
    EXPECT_GT(tr_count(&t, around, VR_RGB_FAULT, 20), 10);
    /* the event log shows the fault on a red bar */
    EXPECT_GT(tr_count(&t, t.rc.lay.log, 0x8a1c1c, 4), 100);
    tr_close(&t);
}

TEST(panels_are_present)
{
    tr_ctx t;
    ASSERT_EQ(tr_open(&t), 0);
    tr_draw(&t, "panels");
    const vr_layout *l = &t.rc.lay;
    EXPECT_GT(l->map.w, W / 2);
    EXPECT_GT(tr_count(&t, l->pools, VR_RGB_POOL_USED, 6), 20);      /* an occupancy bar */
    EXPECT_GT(tr_count(&t, l->chart, 0x8a8f99, 6), 20);              /* the reserved line */
    EXPECT_GT(tr_count(&t, l->chart, 0xff5a4a, 6), 20);              /* the fragmentation line */
    EXPECT_GT(tr_count(&t, l->chart, 0xc05ad0, 6), 20);              /* the defrag marker */
    EXPECT_GT(tr_count(&t, l->details, 0x1b1f27, 0), l->details.w * l->details.h / 3);
    EXPECT_GT(tr_count(&t, l->status, 0x0f1216, 0), l->status.w * l->status.h / 3);
    EXPECT_GT(tr_count(&t, l->controls, 0x2a313d, 0), 6 * 100);      /* the buttons */
    tr_close(&t);
}

TEST(hovered_block_is_outlined_and_help_overlays)
{
    tr_ctx t;
    ASSERT_EQ(tr_open(&t), 0);
    const vm_block *a = vm_model_find(&t.model, HEAP + 16);
    ASSERT_NOT_NULL(a);
    t.view.block = *a;
    t.view.have_block = 1;
    t.view.help = 1;
    tr_draw(&t, "hover_help");
    int x, y;
    ASSERT_TRUE(vr_map_pos_of(&t.rc, &t.model, HEAP + 16 + 1024, &x, &y));
    SDL_Rect column = {x, y - t.rc.row_h, 1, 2 * t.rc.row_h};
    EXPECT_GT(tr_count(&t, column, 0xffffff, 0), 0);                 /* the outline crosses it */
    SDL_Rect centre = {W / 2 - 100, H / 2 - 60, 200, 120};
    EXPECT_GT(tr_count(&t, centre, 0x0b0d10, 12), 2000);             /* the help box */
    tr_close(&t);
}

TEST(map_address_round_trip)
{
    tr_ctx t;
    ASSERT_EQ(tr_open(&t), 0);
    tr_draw(&t, "roundtrip");
    uint64_t addrs[] = {HEAP + 100, HEAP + 0x4000 + 16, POOL + 5 * 256};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        int x, y;
        uint64_t lo, hi;
        ASSERT_TRUE(vr_map_pos_of(&t.rc, &t.model, addrs[i], &x, &y));
        ASSERT_TRUE(vr_map_addr_at(&t.rc, &t.model, x, y, &lo, &hi));
        EXPECT_LE(lo, addrs[i]);
        EXPECT_GT(hi, addrs[i]);
    }
    uint64_t lo, hi;
    EXPECT_TRUE(!vr_map_addr_at(&t.rc, &t.model, 2, 2, &lo, &hi)); /* the status bar is not the map */
    tr_close(&t);
}

/* ---- the PNG writer, read back by a tiny stored-deflate reader -------------------------- */

static uint32_t be32_at(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

TEST(png_round_trip)
{
    enum { PW = 301, PH = 7 };
    uint8_t img[PH][PW * 3];
    h_rng rng = h_rng_make(h_seed());
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW * 3; x++) img[y][x] = (uint8_t)h_rand(&rng);
    FILE *f = tmpfile();
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(vpng_write(f, &img[0][0], PW, PH, PW * 3, 3), 0);
    long len = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)len);
    ASSERT_NOT_NULL(buf);
    ASSERT_EQ(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    EXPECT_EQ(memcmp(buf, sig, 8), 0);
    /* walk the chunks, checking every CRC; collect IDAT */
    size_t at = 8, idat_at = 0, idat_len = 0;
    int chunks = 0;
    while (at + 12 <= (size_t)len) {
        uint32_t clen = be32_at(buf + at);
        ASSERT_LE(at + 12 + clen, (size_t)len);
        EXPECT_EQ(vpng_crc32(0, buf + at + 4, clen + 4), be32_at(buf + at + 8 + clen));
        if (memcmp(buf + at + 4, "IHDR", 4) == 0) {
            EXPECT_EQ(be32_at(buf + at + 8), PW);
            EXPECT_EQ(be32_at(buf + at + 12), PH);
        }
        if (memcmp(buf + at + 4, "IDAT", 4) == 0) {
            idat_at = at + 8;
            idat_len = clen;
        }
        chunks++;
        at += 12 + clen;
    }
    EXPECT_EQ(chunks, 3);
    EXPECT_EQ(at, (size_t)len);
    ASSERT_GT(idat_len, 6);
    /* zlib: header, stored blocks, Adler-32 */
    const uint8_t *z = buf + idat_at;
    EXPECT_EQ((z[0] * 256 + z[1]) % 31, 0);
    size_t zp = 2, out = 0;
    uint8_t *raw = malloc((size_t)PH * (PW * 3 + 1));
    ASSERT_NOT_NULL(raw);
    int last = 0;
    while (!last && zp + 5 <= idat_len) {
        last = z[zp] & 1;
        EXPECT_EQ(z[zp] >> 1, 0); /* stored */
        unsigned blen = z[zp + 1] | z[zp + 2] << 8, nlen = z[zp + 3] | z[zp + 4] << 8;
        EXPECT_EQ(blen ^ 0xFFFFu, nlen);
        ASSERT_LE(out + blen, (size_t)PH * (PW * 3 + 1));
        memcpy(raw + out, z + zp + 5, blen);
        out += blen;
        zp += 5 + blen;
    }
    EXPECT_TRUE(last);
    EXPECT_EQ(out, (size_t)PH * (PW * 3 + 1));
    EXPECT_EQ(vpng_adler32(1, raw, out), be32_at(z + zp));
    for (int y = 0; y < PH; y++) {
        EXPECT_EQ(raw[(size_t)y * (PW * 3 + 1)], 0); /* filter none */
        EXPECT_EQ(memcmp(raw + (size_t)y * (PW * 3 + 1) + 1, img[y], PW * 3), 0);
    }
    EXPECT_EQ(vpng_write(stdout, &img[0][0], 0, PH, PW * 3, 3), -1); /* bad size refused */
    free(raw);
    free(buf);
}

/* ---- random models: the renderer must draw anything the model can hold ------------------ */

static uint64_t rnd_addr(h_rng *r)
{
    switch (h_rand(r) % 4) {
    case 0: return h_rand(r);
    case 1: return 0x100000u + h_rand_range(r, 0, 255) * 16u;
    case 2: return UINT64_MAX - h_rand_range(r, 0, 4095);
    default: return h_rand_range(r, 0, 65535);
    }
}

TEST(random_models_render_and_map_round_trips)
{
    ASSERT_EQ(SDL_Init(0), 0);
    SDL_Surface *s = SDL_CreateRGBSurfaceWithFormat(0, 800, 600, 32, SDL_PIXELFORMAT_ARGB8888);
    ASSERT_NOT_NULL(s);
    SDL_Renderer *ren = SDL_CreateSoftwareRenderer(s);
    ASSERT_NOT_NULL(ren);
    vr_ctx rc;
    vr_init(&rc, ren, NULL);
    h_rng rng = h_rng_make(h_seed());
    size_t checked = 0;
    for (int it = 0; it < 60; it++) {
        vm_limits lim;
        vm_limits_default(&lim);
        lim.max_blocks = 2000;
        lim.max_regions = 64;
        vm_model m;
        ASSERT_EQ(vm_model_init(&m, &lim), 0);
        int n = (int)h_rand_range(&rng, 0, 3000);
        for (int i = 0; i < n; i++) {
            amm_trace_event ev;
            memset(&ev, 0, sizeof ev);
            ev.seq = (uint64_t)i + 1;
            ev.rec.op = (uint8_t)(h_rand(&rng) % AMM_TOP_COUNT);
            if (h_rand(&rng) % 3 == 0) ev.rec.op = h_rand(&rng) % 2 ? AMM_TOP_ALLOC : AMM_TOP_REGION_MAP;
            ev.rec.addr = rnd_addr(&rng);
            ev.rec.size = h_rand(&rng) % 5 == 0 ? h_rand(&rng) : h_rand_range(&rng, 0, 100000);
            ev.rec.aux_a = (uint32_t)(h_rand(&rng) % 7 == 0 ? h_rand(&rng) : h_rand_range(&rng, 0, 63));
            ev.rec.aux_b = (uint32_t)h_rand(&rng);
            ev.rec.align_log2 = (uint8_t)h_rand(&rng);
            if (h_rand(&rng) % 2) {
                ev.has_args = 1;
                ev.args.op = AMM_TOP_ARGS;
                ev.args.addr = rnd_addr(&rng);
                ev.args.size = h_rand(&rng) % 3 ? h_rand_range(&rng, 0, 4095) : h_rand(&rng);
                ev.args.aux_a = (uint32_t)h_rand_range(&rng, 0, 19);
                ev.args.aux_b = (uint32_t)h_rand_range(&rng, 0, 2);
            }
            vm_model_apply(&m, &ev);
        }
        vr_view v;
        memset(&v, 0, sizeof v);
        v.zoom = it % 2 ? (double)h_rand_range(&rng, 1, 64) : 1; /* half of them show the whole heap */
        v.color_mode = (int)h_rand_range(&rng, 0, VR_COLOR_COUNT - 1);
        v.scroll_row = it % 2 ? (long)h_rand_range(&rng, 0, 99) : 0;
        v.help = (int)h_rand_range(&rng, 0, 1);
        v.frame = (unsigned)h_rand(&rng);
        if (m.nblocks) {
            v.block = m.blocks[h_rand(&rng) % m.nblocks];
            v.have_block = 1;
        }
        vr_status st;
        memset(&st, 0, sizeof st);
        st.mode = "LIVE";
        st.total = h_rand_range(&rng, 0, 99);
        st.cursor = h_rand_range(&rng, 0, 199);
        vr_render(&rc, &m, &v, &st);
        /* every visible block start maps back to a range holding it */
        for (size_t i = 0; i < m.nblocks; i++) {
            int x, y;
            uint64_t lo, hi, a = m.blocks[i].user;
            if (!vr_map_pos_of(&rc, &m, a, &x, &y)) continue;
            if (!vr_map_addr_at(&rc, &m, x, y, &lo, &hi) || lo > a || a > hi) { /* hi: one byte of rounding */
                h_fail(__FILE__, __LINE__, "model %d: block 0x%llx drawn at (%d,%d) maps back to [0x%llx, 0x%llx)", it,
                       (unsigned long long)a, x, y, (unsigned long long)lo, (unsigned long long)hi);
                break;
            }
            checked++;
        }
        vm_model_free(&m);
    }
    EXPECT_GT(checked, 10); /* the round trip was really exercised */
    vr_free(&rc);
    SDL_DestroyRenderer(ren);
    SDL_FreeSurface(s);
    TTF_Quit();
    SDL_Quit();
}
