/*
 * render.c - draws amm-viz's frame (see render.h).
 *
 * Heap map algorithm.  Regions are laid end to end as rows of the map's cell
 * area, every region starting on a new row, at one scale for all of them
 * (bpp bytes per pixel; "fit" picks the smallest bpp whose rows fit the
 * panel, zoom divides it).  A frame rasterises only the visible rows: every
 * block adds its extents (padding, front canary, user bytes, back canary,
 * slack) to the cells they cover, weighted by the fraction of each cell they
 * cover, so a pixel holding many blocks shows how full it is.  The cells
 * then become one streaming texture, one texel row per map row, stretched
 * to the row height.  Cost: O(blocks + visible cells) per raster, and the
 * raster is cached while neither the model nor the view changes.
 *
 * Text uses a glyph atlas built once from a monospace TTF font (printable
 * ASCII), tinted per string, so a frame costs one copy per character and no
 * font rendering.
 */
#define _GNU_SOURCE
#include "render.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VR_FONT_PT 13
#define VR_MAX_MOVE_LINES 40
#define VR_MOVE_LINE_RECENT 200u /* records after a move during which its line is drawn */
#define VR_MOVE_RECENT 4096u

static const char *const vr_font_paths[] = {
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/liberation-mono/LiberationMono-Regular.ttf",
    NULL,
};

const char *vr_color_mode_name(int mode)
{
    static const char *const names[] = {"state", "refcount", "size class", "age", "site"};
    return mode >= 0 && mode < VR_COLOR_COUNT ? names[mode] : "?";
}

/* ---- colours --------------------------------------------------------------- */

typedef struct vr_rgb {
    float r, g, b;
} vr_rgb;

static vr_rgb rgb_of(uint32_t hex)
{
    vr_rgb c = {(float)((hex >> 16) & 0xFF), (float)((hex >> 8) & 0xFF), (float)(hex & 0xFF)};
    return c;
}

static vr_rgb mix(vr_rgb a, vr_rgb b, float t)
{
    vr_rgb c = {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
    return c;
}

static vr_rgb hsv(float h, float s, float v)
{
    h = fmodf(h, 360.0f);
    if (h < 0) h += 360.0f;
    float c = v * s, x = c * (1.0f - fabsf(fmodf(h / 60.0f, 2.0f) - 1.0f)), mm = v - c;
    float r = 0, g = 0, b = 0;
    if (h < 60) r = c, g = x;
    else if (h < 120) r = x, g = c;
    else if (h < 180) g = c, b = x;
    else if (h < 240) g = x, b = c;
    else if (h < 300) r = x, b = c;
    else r = c, b = x;
    vr_rgb o = {(r + mm) * 255.0f, (g + mm) * 255.0f, (b + mm) * 255.0f};
    return o;
}

static vr_rgb heat(float t)
{
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    vr_rgb cool = rgb_of(0x3c78dc), mid = rgb_of(0xf0c83c), hot = rgb_of(0xf03c28);
    return t < 0.5f ? mix(cool, mid, t * 2) : mix(mid, hot, (t - 0.5f) * 2);
}

static int ilog2_64(uint64_t v)
{
    int n = 0;
    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

/* Colour of a block's user bytes in the chosen mode. */
static vr_rgb block_colour(const vm_model *m, const vm_block *b, int mode)
{
    if (b->state == AMM_BLOCK_QUARANTINED) return rgb_of(VR_RGB_QUARANTINE);
    switch (mode) {
    case VR_COLOR_REFCOUNT: return heat((float)(b->refcount > 0 ? b->refcount - 1 : 0) / 7.0f);
    case VR_COLOR_SIZE: return hsv((float)ilog2_64(b->size + 1) * 15.0f, 0.65f, 0.92f);
    case VR_COLOR_AGE: {
        uint64_t age = m->last_seq > b->born_seq ? m->last_seq - b->born_seq : 0;
        float t = (float)(log2((double)age + 1.0) / log2((double)m->last_seq + 2.0));
        return mix(rgb_of(0xfff09a), rgb_of(0x28407a), t);
    }
    case VR_COLOR_SITE:
        if (b->site == 0) return rgb_of(0x8a8f99);
        return hsv((float)((b->site * 2654435761u) % 360u), 0.6f, 0.92f);
    default: break;
    }
    uint32_t hex = b->origin == AMM_ORIGIN_POOL ? VR_RGB_POOL_USED : b->origin == AMM_ORIGIN_LARGE ? VR_RGB_LARGE_USED : VR_RGB_USED;
    vr_rgb c = rgb_of(hex);
    if (b->moved_from && m->last_seq - b->moved_seq < VR_MOVE_RECENT) c = mix(c, rgb_of(VR_RGB_MOVED), 0.55f);
    return c;
}

static uint32_t region_bg(unsigned kind)
{
    return kind == VM_REGION_POOL ? VR_RGB_POOL_FREE : kind == VM_REGION_LARGE ? VR_RGB_LARGE_FREE : VR_RGB_HEAP_FREE;
}

/* ---- drawing primitives -------------------------------------------------------- */

static void set_rgb(vr_ctx *c, uint32_t hex, uint8_t a)
{
    SDL_SetRenderDrawColor(c->ren, (uint8_t)(hex >> 16), (uint8_t)(hex >> 8), (uint8_t)hex, a);
}

static void fill(vr_ctx *c, SDL_Rect r, uint32_t hex)
{
    set_rgb(c, hex, 255);
    SDL_RenderFillRect(c->ren, &r);
}

static void fill_a(vr_ctx *c, SDL_Rect r, uint32_t hex, uint8_t a)
{
    SDL_SetRenderDrawBlendMode(c->ren, SDL_BLENDMODE_BLEND);
    set_rgb(c, hex, a);
    SDL_RenderFillRect(c->ren, &r);
    SDL_SetRenderDrawBlendMode(c->ren, SDL_BLENDMODE_NONE);
}

static void frame(vr_ctx *c, SDL_Rect r, uint32_t hex)
{
    set_rgb(c, hex, 255);
    SDL_RenderDrawRect(c->ren, &r);
}

/* Draws ASCII text at (x, y), clipped to max_chars (<0: no limit).  Returns the x after it. */
static int text_n(vr_ctx *c, int x, int y, uint32_t hex, const char *s, int max_chars)
{
    if (!c->glyphs) return x + (int)strlen(s) * c->gw;
    SDL_SetTextureColorMod(c->glyphs, (uint8_t)(hex >> 16), (uint8_t)(hex >> 8), (uint8_t)hex);
    for (int i = 0; s[i] && (max_chars < 0 || i < max_chars); i++) {
        unsigned ch = (unsigned char)s[i];
        if (ch < 32 || ch > 126) ch = '?';
        if (ch != ' ') {
            SDL_Rect src = {(int)(ch - 32) * c->gw, 0, c->gw, c->gh};
            SDL_Rect dst = {x, y, c->gw, c->gh};
            SDL_RenderCopy(c->ren, c->glyphs, &src, &dst);
        }
        x += c->gw;
    }
    return x;
}

static int text(vr_ctx *c, int x, int y, uint32_t hex, const char *s) { return text_n(c, x, y, hex, s, -1); }

static int textf(vr_ctx *c, int x, int y, uint32_t hex, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int textf(vr_ctx *c, int x, int y, uint32_t hex, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return text(c, x, y, hex, buf);
}

/* Human bytes: "123 B", "4.0 KiB", "1.2 MiB". */
static const char *hbytes(char *buf, size_t len, uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1024.0 && u < 4) {
        d /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", v);
    else
        snprintf(buf, len, "%.1f %s", d, units[u]);
    return buf;
}

static void panel(vr_ctx *c, SDL_Rect r, const char *title)
{
    fill(c, r, 0x1b1f27);
    SDL_Rect edge = {r.x, r.y, r.w, 1};
    fill(c, edge, 0x323846);
    SDL_Rect left = {r.x, r.y, 1, r.h};
    fill(c, left, 0x323846);
    if (title) text(c, r.x + 8, r.y + 4, 0x9fb3c8, title);
}

/* ---- init ----------------------------------------------------------------------- */

static int build_atlas(vr_ctx *c)
{
    int adv = 0;
    if (TTF_GlyphMetrics(c->font, 'M', NULL, NULL, NULL, NULL, &adv) != 0 || adv <= 0) return -1;
    c->gw = adv;
    c->gh = TTF_FontHeight(c->font);
    SDL_Surface *atlas = SDL_CreateRGBSurfaceWithFormat(0, c->gw * 95, c->gh, 32, SDL_PIXELFORMAT_ARGB8888);
    if (!atlas) return -1;
    SDL_FillRect(atlas, NULL, 0);
    SDL_Color white = {255, 255, 255, 255};
    for (int ch = 33; ch <= 126; ch++) {
        SDL_Surface *g = TTF_RenderGlyph_Blended(c->font, (Uint16)ch, white);
        if (!g) continue;
        SDL_SetSurfaceBlendMode(g, SDL_BLENDMODE_NONE);
        SDL_Rect dst = {(ch - 32) * c->gw, 0, c->gw, c->gh};
        SDL_BlitSurface(g, NULL, atlas, &dst);
        SDL_FreeSurface(g);
    }
    c->glyphs = SDL_CreateTextureFromSurface(c->ren, atlas);
    SDL_FreeSurface(atlas);
    if (!c->glyphs) return -1;
    SDL_SetTextureBlendMode(c->glyphs, SDL_BLENDMODE_BLEND);
    return 0;
}

int vr_init(vr_ctx *c, SDL_Renderer *ren, const char *font_path)
{
    memset(c, 0, sizeof *c);
    c->ren = ren;
    c->gw = 8;
    c->gh = 15;
    if (!TTF_WasInit() && TTF_Init() != 0) {
        fprintf(stderr, "amm-viz: warning: SDL_ttf unavailable (%s); drawing without text\n", TTF_GetError());
        return 0;
    }
    if (font_path) {
        c->font = TTF_OpenFont(font_path, VR_FONT_PT);
        if (!c->font) fprintf(stderr, "amm-viz: warning: cannot open font %s: %s\n", font_path, TTF_GetError());
    }
    for (int i = 0; !c->font && vr_font_paths[i]; i++) c->font = TTF_OpenFont(vr_font_paths[i], VR_FONT_PT);
    if (!c->font) {
        fprintf(stderr, "amm-viz: warning: no monospace font found (install fonts-dejavu-core); drawing without text\n");
        return 0;
    }
    if (build_atlas(c) != 0) {
        fprintf(stderr, "amm-viz: warning: cannot build the glyph atlas (%s); drawing without text\n", SDL_GetError());
        c->gw = 8;
        c->gh = 15;
    }
    return 0;
}

void vr_free(vr_ctx *c)
{
    if (c->glyphs) SDL_DestroyTexture(c->glyphs);
    if (c->map_tex) SDL_DestroyTexture(c->map_tex);
    if (c->font) TTF_CloseFont(c->font);
    free(c->cells);
    free(c->pixels);
    free(c->row0);
    memset(c, 0, sizeof *c);
}

/* ---- layout ----------------------------------------------------------------------- */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void vr_layout_compute(vr_layout *l, int w, int h)
{
    memset(l, 0, sizeof *l);
    l->w = w;
    l->h = h;
    int sh = 24, ch = 32;
    int right = clampi(w * 30 / 100, 260, 440);
    if (right > w / 2) right = w / 2;
    int bottom = clampi(h * 30 / 100, 120, 280);
    int mid = h - sh - ch - bottom;
    if (mid < 80) {
        bottom = h - sh - ch - 80 > 0 ? h - sh - ch - 80 : 0;
        mid = h - sh - ch - bottom;
    }
    l->status = (SDL_Rect){0, 0, w, sh};
    l->map = (SDL_Rect){0, sh, w - right, mid};
    int pools_h = mid * 42 / 100;
    l->pools = (SDL_Rect){w - right, sh, right, pools_h};
    l->details = (SDL_Rect){w - right, sh + pools_h, right, mid - pools_h};
    int chart_w = w * 40 / 100;
    l->chart = (SDL_Rect){0, sh + mid, chart_w, bottom};
    l->log = (SDL_Rect){chart_w, sh + mid, w - chart_w, bottom};
    l->controls = (SDL_Rect){0, h - ch, w, ch};
    for (int i = 0; i < VR_BTN_COUNT; i++) l->buttons[i] = (SDL_Rect){8 + i * 36, h - ch + 5, 32, ch - 10};
    int sx = 8 + VR_BTN_COUNT * 36 + 10;
    int sw = w - sx - 330;
    if (sw < 40) sw = 40;
    l->scrubber = (SDL_Rect){sx, h - ch + 11, sw, ch - 22};
}

/* ---- map geometry ------------------------------------------------------------------- */

static long rows_for(uint64_t size, double bytes_per_row)
{
    double r = ceil((double)size / bytes_per_row);
    return r < 1 ? 1 : r > 1e9 ? 1000000000L : (long)r;
}

static long total_rows(const vm_model *m, double bytes_per_row)
{
    long t = 0;
    for (size_t i = 0; i < m->nregions && t < 2000000000L; i++) t += rows_for(m->regions[i].size, bytes_per_row);
    return t;
}

void vr_map_geometry(vr_ctx *c, const vm_model *m, const vr_view *v)
{
    vr_layout_compute(&c->lay, c->lay.w, c->lay.h);
    SDL_Rect a = c->lay.map;
    c->gutter = c->gw * 11;
    c->pitch = c->gh > 12 ? c->gh : 12;
    c->row_h = c->pitch - 3;
    int top = c->gh + 10, bottom = c->gh + 10;
    c->cell_area = (SDL_Rect){a.x + 8 + c->gutter, a.y + top, a.w - 16 - c->gutter, a.h - top - bottom};
    if (c->cell_area.w < 1) c->cell_area.w = 1;
    if (c->cell_area.h < c->pitch) c->cell_area.h = c->pitch;
    c->vis_rows = c->cell_area.h / c->pitch;
    double wc = (double)c->cell_area.w;
    /* fit: the smallest bpp whose rows fit */
    double hi = 1.0 / 16.0;
    while (hi < 1e15 && total_rows(m, wc * hi) > c->vis_rows) hi *= 2;
    double lo = hi / 2;
    if (hi > 1.0 / 16.0)
        for (int i = 0; i < 40; i++) {
            double mid = (lo + hi) / 2;
            if (total_rows(m, wc * mid) > c->vis_rows)
                lo = mid;
            else
                hi = mid;
        }
    double zoom = v->zoom >= 1.0 ? v->zoom : 1.0;
    c->bpp = hi / zoom;
    if (c->bpp < 1.0 / 16.0) c->bpp = 1.0 / 16.0;
    if (m->nregions > c->row0_cap) {
        long *n = realloc(c->row0, m->nregions * sizeof *n);
        if (n) {
            c->row0 = n;
            c->row0_cap = m->nregions;
        }
    }
    long row = 0;
    size_t nr = m->nregions < c->row0_cap ? m->nregions : c->row0_cap;
    for (size_t i = 0; i < nr; i++) {
        c->row0[i] = row;
        row += rows_for(m->regions[i].size, wc * c->bpp);
    }
    c->total_rows = row;
}

static long scroll_of(const vr_ctx *c, const vr_view *v)
{
    long max = c->total_rows - c->vis_rows;
    if (max < 0) max = 0;
    return v->scroll_row < 0 ? 0 : v->scroll_row > max ? max : v->scroll_row;
}

/* ---- map raster ------------------------------------------------------------------------ */

typedef struct vr_raster {
    vr_ctx *c;
    const vm_model *m;
    long scroll;
    int wc, rows;
} vr_raster;

/* Adds colour over [a, b) of region ri, clipped to the visible rows. */
static void add_span(vr_raster *rs, size_t ri, uint64_t a, uint64_t b, vr_rgb col)
{
    const vm_region *r = &rs->m->regions[ri];
    uint64_t rend = r->base + r->size < r->base ? UINT64_MAX : r->base + r->size;
    if (a < r->base) a = r->base;
    if (b > rend) b = rend;
    if (b <= a) return;
    double bpp = rs->c->bpp;
    long row0 = rs->c->row0[ri];
    long rows_r = rows_for(r->size, (double)rs->wc * bpp);
    long vr0 = row0 > rs->scroll ? row0 : rs->scroll;
    long vr1 = row0 + rows_r < rs->scroll + rs->rows ? row0 + rows_r : rs->scroll + rs->rows;
    if (vr1 <= vr0) return;
    double v0 = (double)(vr0 - row0) * rs->wc, v1 = (double)(vr1 - row0) * rs->wc;
    double p0 = (double)(a - r->base) / bpp, p1 = (double)(b - r->base) / bpp;
    if (p0 < v0) p0 = v0;
    if (p1 > v1) p1 = v1;
    if (p1 <= p0) return;
    long k0 = (long)floor(p0), k1 = (long)ceil(p1);
    for (long k = k0; k < k1; k++) {
        double lo = p0 > (double)k ? p0 : (double)k, hi = p1 < (double)(k + 1) ? p1 : (double)(k + 1);
        float cov = (float)(hi - lo);
        long rrow = row0 + k / rs->wc - rs->scroll;
        vr_cell *cell = &rs->c->cells[(size_t)rrow * (size_t)rs->wc + (size_t)(k % rs->wc)];
        cell->r += col.r * cov;
        cell->g += col.g * cov;
        cell->b += col.b * cov;
        cell->cov += cov;
    }
}

/* Marks cells over [a, b) of region ri with a flag (fault or slot edge). */
static void mark_span(vr_raster *rs, size_t ri, uint64_t a, uint64_t b, int fault)
{
    const vm_region *r = &rs->m->regions[ri];
    double bpp = rs->c->bpp;
    long row0 = rs->c->row0[ri];
    if (a < r->base) a = r->base;
    if (b <= a) b = a + 1;
    double p0 = (double)(a - r->base) / bpp, p1 = (double)(b - r->base) / bpp;
    long k0 = (long)floor(p0), k1 = (long)ceil(p1);
    if (k1 <= k0) k1 = k0 + 1;
    long rows_r = rows_for(r->size, (double)rs->wc * bpp);
    for (long k = k0; k < k1; k++) {
        long rr = k / rs->wc;
        if (rr >= rows_r) break;
        long rrow = row0 + rr - rs->scroll;
        if (rrow < 0) {
            k = (rr + 1) * rs->wc - 1; /* skip to the next row */
            continue;
        }
        if (rrow >= rs->rows) break;
        vr_cell *cell = &rs->c->cells[(size_t)rrow * (size_t)rs->wc + (size_t)(k % rs->wc)];
        if (fault)
            cell->fault = 1;
        else
            cell->edge = 1;
    }
}

static void raster_block(vr_raster *rs, const vm_block *b, int mode)
{
    uint64_t raw = vm_block_raw(b), end = vm_block_raw_end(b);
    long ri = vm_model_region_of(rs->m, raw);
    if (ri < 0 || (size_t)ri >= rs->c->row0_cap) return;
    const vm_region *r = &rs->m->regions[ri];
    /* cheap visibility test on rows */
    double bpr = (double)rs->wc * rs->c->bpp;
    long first = rs->c->row0[ri] + (long)((double)(raw - r->base) / bpr);
    long last = rs->c->row0[ri] + (long)((double)(end - r->base) / bpr);
    if (last < rs->scroll || first >= rs->scroll + rs->rows) return;
    uint64_t canary = rs->m->canary;
    uint64_t uend = b->user + b->size;
    uint64_t fc = b->user - raw > canary ? b->user - canary : raw;     /* front canary start */
    uint64_t bc = end - uend > canary ? uend + canary : end;           /* back canary end */
    /* in the attribute modes guards are drawn dim, so the attribute colours stand out */
    vr_rgb pad = rgb_of(mode == VR_COLOR_STATE ? VR_RGB_PADDING : 0x3a3f48u);
    vr_rgb can = rgb_of(mode == VR_COLOR_STATE ? VR_RGB_CANARY : 0x4a505au);
    if (fc > raw) add_span(rs, (size_t)ri, raw, fc, pad);
    add_span(rs, (size_t)ri, fc, b->user, can);
    add_span(rs, (size_t)ri, b->user, uend, block_colour(rs->m, b, mode));
    add_span(rs, (size_t)ri, uend, bc, can);
    if (end > bc) add_span(rs, (size_t)ri, bc, end, pad);
}

static uint32_t cell_pixel(const vr_cell *cell, uint32_t bg_hex, int flash)
{
    vr_rgb bg = rgb_of(bg_hex), o;
    if (cell->cov >= 1.0f) {
        o.r = cell->r / cell->cov;
        o.g = cell->g / cell->cov;
        o.b = cell->b / cell->cov;
    } else {
        float k = 1.0f - cell->cov;
        o.r = cell->r + bg.r * k;
        o.g = cell->g + bg.g * k;
        o.b = cell->b + bg.b * k;
    }
    if (cell->edge) o = mix(o, rgb_of(0x0b0d10), 0.45f);
    if (cell->fault) o = flash ? rgb_of(VR_RGB_FAULT) : mix(o, rgb_of(VR_RGB_FAULT), 0.75f);
    uint32_t R = (uint32_t)(o.r > 255 ? 255 : o.r), G = (uint32_t)(o.g > 255 ? 255 : o.g),
             B = (uint32_t)(o.b > 255 ? 255 : o.b);
    return 0xFF000000u | R << 16 | G << 8 | B;
}

static int ensure_raster(vr_ctx *c, int wc, int rows)
{
    size_t n = (size_t)wc * (size_t)rows;
    if (n > c->cells_cap) {
        vr_cell *cells = realloc(c->cells, n * sizeof *cells);
        if (!cells) return -1;
        c->cells = cells;
        uint32_t *px = realloc(c->pixels, n * sizeof *px);
        if (!px) return -1;
        c->pixels = px;
        c->cells_cap = n;
    }
    if (!c->map_tex || c->tex_w != wc || c->tex_h != rows) {
        if (c->map_tex) SDL_DestroyTexture(c->map_tex);
        c->map_tex = SDL_CreateTexture(c->ren, SDL_PIXELFORMAT_ARGB8888, SDL_TEXTUREACCESS_STREAMING, wc, rows);
        if (!c->map_tex) return -1;
        c->tex_w = wc;
        c->tex_h = rows;
    }
    return 0;
}

static void raster(vr_ctx *c, const vm_model *m, const vr_view *v, long scroll, int flash)
{
    int wc = c->cell_area.w, rows = c->vis_rows;
    if (rows <= 0 || ensure_raster(c, wc, rows) != 0) return;
    if (c->cache_model == m && c->cache_events == m->events && c->cache_bpp == c->bpp && c->cache_scroll == scroll &&
        c->cache_mode == v->color_mode && c->cache_w == wc && c->cache_h == rows && c->cache_flash == (unsigned)flash)
        return;
    c->cache_model = m;
    c->cache_events = m->events;
    c->cache_bpp = c->bpp;
    c->cache_scroll = scroll;
    c->cache_mode = v->color_mode;
    c->cache_w = wc;
    c->cache_h = rows;
    c->cache_flash = (unsigned)flash;
    memset(c->cells, 0, (size_t)wc * (size_t)rows * sizeof *c->cells);
    vr_raster rs = {c, m, scroll, wc, rows};
    if (m->nregions <= c->row0_cap) {
        for (size_t i = 0; i < m->nblocks; i++) raster_block(&rs, &m->blocks[i], v->color_mode);
        /* pool slot boundaries when a slot is at least 6 px wide */
        for (size_t ri = 0; ri < m->nregions; ri++) {
            const vm_region *r = &m->regions[ri];
            if (r->kind != VM_REGION_POOL || r->stride == 0 || (double)r->stride / c->bpp < 6.0) continue;
            uint64_t bpr = (uint64_t)((double)wc * c->bpp);
            uint64_t from = scroll > c->row0[ri] ? (uint64_t)(scroll - c->row0[ri]) * bpr : 0;
            for (uint64_t off = from / r->stride * r->stride; off < r->size && off <= from + (uint64_t)rows * bpr;
                 off += r->stride)
                mark_span(&rs, ri, r->base + off, r->base + off + 1, 0);
        }
        for (size_t i = 0; i < m->fault_count; i++) {
            const vm_fault *f = vm_model_fault_get(m, i);
            long ri = vm_model_region_of(m, f->lo);
            if (ri >= 0) mark_span(&rs, (size_t)ri, f->lo, f->hi, 1);
        }
    }
    /* backgrounds and pixels, row by row */
    size_t ri = 0;
    double bpr = (double)wc * c->bpp;
    for (int y = 0; y < rows; y++) {
        long row = scroll + y;
        while (ri < m->nregions && ri < c->row0_cap && c->row0[ri] + rows_for(m->regions[ri].size, bpr) <= row) ri++;
        uint32_t *px = &c->pixels[(size_t)y * (size_t)wc];
        const vr_cell *cells = &c->cells[(size_t)y * (size_t)wc];
        if (ri >= m->nregions || ri >= c->row0_cap || c->row0[ri] > row) {
            for (int x = 0; x < wc; x++) px[x] = 0xFF000000u | VR_RGB_BG;
            continue;
        }
        const vm_region *r = &m->regions[ri];
        double left = (double)r->size / c->bpp - (double)(row - c->row0[ri]) * wc;
        int inside = left >= wc ? wc : (int)ceil(left);
        uint32_t bg = region_bg(r->kind);
        for (int x = 0; x < wc; x++) px[x] = x < inside ? cell_pixel(&cells[x], bg, flash) : 0xFF000000u | VR_RGB_BG;
    }
    SDL_UpdateTexture(c->map_tex, NULL, c->pixels, wc * (int)sizeof(uint32_t));
}

/* ---- map geometry queries ------------------------------------------------------------------ */

int vr_map_addr_at(const vr_ctx *c, const vm_model *m, int x, int y, uint64_t *lo, uint64_t *hi)
{
    const SDL_Rect *a = &c->cell_area;
    if (x < a->x || x >= a->x + a->w || y < a->y || c->pitch <= 0) return 0;
    int vy = (y - a->y) / c->pitch;
    if (vy >= c->vis_rows || (y - a->y) % c->pitch >= c->row_h) return 0;
    long row = c->cache_scroll + vy;
    size_t n = m->nregions < c->row0_cap ? m->nregions : c->row0_cap;
    for (size_t i = 0; i < n; i++) {
        const vm_region *r = &m->regions[i];
        long rows = rows_for(r->size, (double)a->w * c->bpp);
        if (row < c->row0[i] || row >= c->row0[i] + rows) continue;
        double off = ((double)(row - c->row0[i]) * a->w + (x - a->x)) * c->bpp;
        if (off >= (double)r->size) return 0;
        double end = off + (c->bpp < 1 ? 1 : c->bpp);
        *lo = r->base + (uint64_t)off; /* off < size <= 2^64 - base: no overflow */
        /* the pixel's end, clipped to the region's (computed in integers near 2^64) */
        *hi = end >= (double)r->size ? r->base + r->size : r->base + (uint64_t)end;
        if (*hi <= *lo) *hi = r->base + r->size > *lo ? *lo + 1 : *lo;
        return 1;
    }
    return 0;
}

int vr_map_pos_of(const vr_ctx *c, const vm_model *m, uint64_t addr, int *x, int *y)
{
    long ri = vm_model_region_of(m, addr);
    if (ri < 0 || (size_t)ri >= c->row0_cap || c->bpp <= 0) return 0;
    double k = (double)(addr - m->regions[ri].base) / c->bpp;
    long row = c->row0[ri] + (long)(k / c->cell_area.w) - c->cache_scroll;
    if (row < 0 || row >= c->vis_rows) return 0;
    *x = c->cell_area.x + (int)fmod(k, (double)c->cell_area.w);
    *y = c->cell_area.y + (int)row * c->pitch + c->row_h / 2;
    return 1;
}

/* ---- panels ------------------------------------------------------------------------------------ */

static void legend_item(vr_ctx *c, int *x, int y, uint32_t hex, const char *label)
{
    if (c->legend_max_x && *x + 14 + (int)strlen(label) * c->gw > c->legend_max_x) return; /* does not fit */
    SDL_Rect sw = {*x, y + c->gh / 2 - 5, 10, 10};
    fill(c, sw, hex);
    *x = text(c, *x + 14, y, 0xb8c2cf, label) + 12;
}

static void draw_legend(vr_ctx *c, const vr_view *v, int x, int y)
{
    if (v->color_mode == VR_COLOR_STATE) {
        legend_item(c, &x, y, VR_RGB_USED, "heap");
        legend_item(c, &x, y, VR_RGB_POOL_USED, "pool");
        legend_item(c, &x, y, VR_RGB_LARGE_USED, "large");
        legend_item(c, &x, y, VR_RGB_CANARY, "canary");
        legend_item(c, &x, y, VR_RGB_PADDING, "pad");
        legend_item(c, &x, y, VR_RGB_QUARANTINE, "quarantine");
        legend_item(c, &x, y, VR_RGB_HEAP_FREE, "free");
        legend_item(c, &x, y, VR_RGB_POOL_FREE, "free slot");
        legend_item(c, &x, y, VR_RGB_FAULT, "fault");
        return;
    }
    const char *lo = "", *hi = "";
    x = text(c, x, y, 0xb8c2cf, vr_color_mode_name(v->color_mode)) + 10;
    switch (v->color_mode) {
    case VR_COLOR_REFCOUNT: lo = "1"; hi = "8+ refs"; break;
    case VR_COLOR_SIZE: lo = "1 B"; hi = "16 MiB"; break;
    case VR_COLOR_AGE: lo = "new"; hi = "old"; break;
    default: lo = "hue = site"; break;
    }
    x = text(c, x, y, 0xb8c2cf, lo) + 6;
    for (int i = 0; i < 120 && v->color_mode != VR_COLOR_SITE; i++) {
        float t = (float)i / 119.0f;
        vr_rgb col = v->color_mode == VR_COLOR_REFCOUNT ? heat(t)
                     : v->color_mode == VR_COLOR_SIZE   ? hsv(t * 24.0f * 15.0f, 0.65f, 0.92f)
                                                        : mix(rgb_of(0xfff09a), rgb_of(0x28407a), t);
        SDL_Rect px = {x + i, y + c->gh / 2 - 5, 1, 10};
        fill(c, px, (uint32_t)col.r << 16 | (uint32_t)col.g << 8 | (uint32_t)col.b);
    }
    if (v->color_mode != VR_COLOR_SITE) text(c, x + 126, y, 0xb8c2cf, hi);
}

static void draw_map(vr_ctx *c, const vm_model *m, const vr_view *v)
{
    SDL_Rect a = c->lay.map;
    panel(c, a, NULL);
    long scroll = scroll_of(c, v);
    int flash = (v->frame / 15) % 2 == 0;
    raster(c, m, v, scroll, flash);
    char b1[32];
    double bpp = c->bpp;
    char scale[64];
    if (m->nregions == 0)
        snprintf(scale, sizeof scale, "1 px = -");
    else if (bpp >= 1)
        snprintf(scale, sizeof scale, "1 px = %s", hbytes(b1, sizeof b1, (uint64_t)(bpp + 0.5)));
    else
        snprintf(scale, sizeof scale, "1 B = %.0f px", 1.0 / bpp);
    textf(c, a.x + 8, a.y + 4, 0x9fb3c8, "HEAP MAP   %zu regions   %s   zoom x%.0f   colour: %s", m->nregions, scale,
          v->zoom < 1 ? 1.0 : v->zoom, vr_color_mode_name(v->color_mode));
    if (c->total_rows > c->vis_rows)
        textf(c, a.x + a.w - 8 - c->gw * 18, a.y + 4, 0x7d8796, "rows %ld-%ld/%ld", scroll + 1,
              scroll + c->vis_rows < c->total_rows ? scroll + c->vis_rows : c->total_rows, c->total_rows);
    if (m->nregions == 0) {
        text(c, c->cell_area.x + 10, c->cell_area.y + 10, 0x7d8796, "no regions yet - waiting for records");
    }
    if (c->map_tex && c->vis_rows > 0) {
        for (int y = 0; y < c->vis_rows && y < c->tex_h; y++) {
            SDL_Rect src = {0, y, c->tex_w, 1};
            SDL_Rect dst = {c->cell_area.x, c->cell_area.y + y * c->pitch, c->tex_w, c->row_h};
            if (scroll + y < c->total_rows) SDL_RenderCopy(c->ren, c->map_tex, &src, &dst);
        }
    }
    /* region labels in the gutter */
    double bpr = (double)c->cell_area.w * c->bpp;
    size_t n = m->nregions < c->row0_cap ? m->nregions : c->row0_cap;
    for (size_t i = 0; i < n; i++) {
        long r = c->row0[i] - scroll;
        long rows = rows_for(m->regions[i].size, bpr);
        if (r + rows <= 0 || r >= c->vis_rows) continue;
        int y = c->cell_area.y + (int)(r < 0 ? 0 : r) * c->pitch + c->row_h / 2 - c->gh / 2;
        const vm_region *reg = &m->regions[i];
        uint32_t col = reg->kind == VM_REGION_POOL ? VR_RGB_POOL_USED : reg->kind == VM_REGION_LARGE ? VR_RGB_LARGE_USED : 0x9fb3c8;
        char lbl[32], sz[24];
        hbytes(sz, sizeof sz, reg->size);
        char *sp = strchr(sz, ' ');
        if (sp) memmove(sp, sp + 1, strlen(sp)); /* "1.0MiB" */
        if (sz[strlen(sz) - 1] == 'B' && strlen(sz) > 3 && sz[strlen(sz) - 2] == 'i') sz[strlen(sz) - 2] = '\0';
        snprintf(lbl, sizeof lbl, "%c%-3" PRIu32 " %s", "HPLI"[reg->kind & 3], reg->id, sz);
        text_n(c, a.x + 8, y, col, lbl, 10);
    }
    /* compaction moves: lines from the old place to the new one */
    int lines = 0;
    for (size_t i = 0; i < m->nblocks && lines < VR_MAX_MOVE_LINES; i++) {
        const vm_block *b = &m->blocks[i];
        if (!b->moved_from || m->last_seq - b->moved_seq >= VR_MOVE_LINE_RECENT) continue;
        int x0, y0, x1, y1;
        if (vr_map_pos_of(c, m, b->moved_from, &x0, &y0) && vr_map_pos_of(c, m, b->user, &x1, &y1)) {
            SDL_SetRenderDrawBlendMode(c->ren, SDL_BLENDMODE_BLEND);
            SDL_SetRenderDrawColor(c->ren, 240, 240, 240, 110);
            SDL_RenderDrawLine(c->ren, x0, y0, x1, y1);
            SDL_SetRenderDrawBlendMode(c->ren, SDL_BLENDMODE_NONE);
            lines++;
        }
    }
    /* faults: a marker box around each damaged range, flashing while recent */
    for (size_t i = 0; i < m->fault_count; i++) {
        const vm_fault *f = vm_model_fault_get(m, i);
        int fx, fy;
        if (!vr_map_pos_of(c, m, f->lo, &fx, &fy)) continue;
        int recent = m->last_seq - f->seq < VR_MOVE_RECENT;
        uint32_t col = recent && !flash ? 0xffffff : VR_RGB_FAULT;
        SDL_Rect box = {fx - 4, fy - c->row_h / 2 - 3, 9, c->row_h + 6};
        frame(c, box, col);
        SDL_Rect inner = {fx - 3, fy - c->row_h / 2 - 2, 7, c->row_h + 4};
        frame(c, inner, col);
    }
    /* the hovered / selected block */
    if (v->have_block) {
        uint64_t lo = vm_block_raw(&v->block), hi = vm_block_raw_end(&v->block);
        long ri = vm_model_region_of(m, lo);
        if (ri >= 0 && (size_t)ri < c->row0_cap) {
            const vm_region *r = &m->regions[ri];
            double k0 = (double)(lo - r->base) / c->bpp, k1 = (double)(hi - r->base) / c->bpp;
            int wc = c->cell_area.w;
            for (long row = (long)(k0 / wc); row <= (long)(k1 / wc) && row - (long)(k0 / wc) < 64; row++) {
                long vr = c->row0[ri] + row - scroll;
                if (vr < 0 || vr >= c->vis_rows) continue;
                double s = k0 > (double)row * wc ? k0 - (double)row * wc : 0;
                double e = k1 < (double)(row + 1) * wc ? k1 - (double)row * wc : wc;
                SDL_Rect box = {c->cell_area.x + (int)s - 1, c->cell_area.y + (int)vr * c->pitch - 1,
                                (int)(e - s) + 2 < 3 ? 3 : (int)(e - s) + 2, c->row_h + 2};
                frame(c, box, 0xffffff);
            }
        }
    }
    draw_legend(c, v, a.x + 8, a.y + a.h - c->gh - 6);
}

static void draw_pools(vr_ctx *c, const vm_model *m)
{
    SDL_Rect a = c->lay.pools;
    size_t npools = 0;
    for (size_t i = 0; i < m->nregions; i++) npools += m->regions[i].kind == VM_REGION_POOL;
    char title[64];
    snprintf(title, sizeof title, "POOLS  %zu", npools);
    panel(c, a, title);
    int y = a.y + c->gh + 10, shown = 0;
    int bar_w = a.w - 24;
    for (size_t i = 0; i < m->nregions; i++) {
        const vm_region *r = &m->regions[i];
        if (r->kind != VM_REGION_POOL) continue;
        if (y + 2 * c->gh + 17 > a.y + a.h) {
            textf(c, a.x + 8, y, 0x7d8796, "+%zu more", npools - (size_t)shown);
            break;
        }
        char b1[24];
        textf(c, a.x + 10, y, 0xd7dee8, "#%-2" PRIu32 " %5" PRIu64 " B slots  x%-5" PRIu32 " %s", r->id, r->block_size,
              r->slots, hbytes(b1, sizeof b1, r->size));
        y += c->gh + 1;
        SDL_Rect track = {a.x + 10, y, bar_w, 8};
        fill(c, track, VR_RGB_POOL_FREE);
        if (r->slots) {
            int uw = (int)((double)bar_w * r->used / r->slots);
            int qw = (int)((double)bar_w * r->quarantined / r->slots);
            int hw = (int)((double)bar_w * r->high_water / r->slots);
            SDL_Rect u = {track.x, y, uw, 8}, q = {track.x + uw, y, qw, 8}, h = {track.x + hw, y - 2, 2, 12};
            fill(c, u, VR_RGB_POOL_USED);
            fill(c, q, VR_RGB_QUARANTINE);
            if (hw > 0) fill(c, h, 0xffffff);
        }
        y += 10;
        uint32_t free_slots = r->slots > r->used + r->quarantined ? r->slots - r->used - r->quarantined : 0;
        textf(c, a.x + 10, y, 0x9aa5b4, "used %" PRIu32 "  quar %" PRIu32 "  free %" PRIu32 "  high %" PRIu32,
              r->used, r->quarantined, free_slots, r->high_water);
        y += c->gh + 6;
        shown++;
    }
    if (npools == 0) text(c, a.x + 10, y, 0x7d8796, "no pools");
}

static void detail_line(vr_ctx *c, int x, int *y, const char *k, const char *v, uint32_t col)
{
    text(c, x, *y, 0x7d8796, k);
    text(c, x + c->gw * 11, *y, col, v);
    *y += c->gh;
}

static void draw_details(vr_ctx *c, const vm_model *m, const vr_view *v)
{
    SDL_Rect a = c->lay.details;
    panel(c, a, v->have_block ? (v->block_pinned ? "BLOCK (pinned, click empty space to release)" : "BLOCK") : "SUMMARY");
    int x = a.x + 10, y = a.y + c->gh + 10;
    char buf[160], b1[32];
    if (!v->have_block) {
        snprintf(buf, sizeof buf, "%zu (%s)", m->live_blocks, hbytes(b1, sizeof b1, m->live_bytes));
        detail_line(c, x, &y, "live", buf, 0xd7dee8);
        snprintf(buf, sizeof buf, "%zu (%s)", m->quar_blocks, hbytes(b1, sizeof b1, m->quar_bytes));
        detail_line(c, x, &y, "quarantine", buf, 0xd7dee8);
        detail_line(c, x, &y, "reserved", hbytes(b1, sizeof b1, m->reserved), 0xd7dee8);
        if (m->have_sample) {
            snprintf(buf, sizeof buf, "%.1f%% external", m->last_sample.ext_frag_ppm / 10000.0);
            detail_line(c, x, &y, "frag", buf, 0xd7dee8);
        }
        snprintf(buf, sizeof buf, "%" PRIu64, m->faults_total);
        detail_line(c, x, &y, "faults", buf, m->faults_total ? VR_RGB_FAULT : 0xd7dee8);
        snprintf(buf, sizeof buf, "%" PRIu64 " (last seq %" PRIu64 ")", m->events, m->last_seq);
        detail_line(c, x, &y, "events", buf, 0xd7dee8);
        snprintf(buf, sizeof buf, "%" PRIu64 " defrag, %" PRIu64 " moves", m->defrags, m->moves);
        detail_line(c, x, &y, "compaction", buf, 0xd7dee8);
        if (m->anomalies || m->untracked) {
            snprintf(buf, sizeof buf, "%" PRIu64 " odd records, %" PRIu64 " untracked", m->anomalies, m->untracked);
            detail_line(c, x, &y, "stream", buf, VR_RGB_QUARANTINE);
        }
        y += 4;
        text_n(c, x, y, 0x7d8796, "hover a block: details   ?: help", (a.w - 20) / c->gw);
        return;
    }
    const vm_block *b = &v->block;
    static const char *const origins[] = {"heap", "pool", "large", "?"};
    snprintf(buf, sizeof buf, "0x%" PRIx64, b->user);
    detail_line(c, x, &y, "address", buf, 0xffffff);
    snprintf(buf, sizeof buf, "0x%" PRIx64 " (front %" PRIu32 " B)", vm_block_raw(b), b->front);
    detail_line(c, x, &y, "raw", buf, 0xd7dee8);
    snprintf(buf, sizeof buf, "%" PRIu64 " B (extent %" PRIu64 " B)", b->size, vm_block_raw_end(b) - vm_block_raw(b));
    detail_line(c, x, &y, "size", buf, 0xd7dee8);
    snprintf(buf, sizeof buf, "%" PRIu64 "  origin %s%s", (uint64_t)1 << (b->align_log2 & 63), origins[b->origin & 3],
             b->flags & AMM_ALLOC_MOVABLE ? "  movable" : "");
    detail_line(c, x, &y, "align", buf, 0xd7dee8);
    snprintf(buf, sizeof buf, "%" PRIu32 "  %s", b->refcount, b->state == AMM_BLOCK_QUARANTINED ? "quarantined" : "live");
    detail_line(c, x, &y, "refcount", buf, b->state == AMM_BLOCK_QUARANTINED ? VR_RGB_QUARANTINE : 0xd7dee8);
    const vm_site *s = vm_model_site(m, b->site);
    if (s) {
        const char *slash = strrchr(s->file, '/');
        if (s->line) snprintf(buf, sizeof buf, "%s:%" PRIu32, slash ? slash + 1 : s->file, s->line);
        else snprintf(buf, sizeof buf, "%s", slash ? slash + 1 : s->file); /* line 0: no line known */
    } else {
        snprintf(buf, sizeof buf, b->site ? "#%" PRIu32 : "unknown", b->site);
    }
    detail_line(c, x, &y, "site", buf, 0xd7dee8);
    snprintf(buf, sizeof buf, "%" PRIu64 " records (born #%" PRIu64 ")", m->last_seq - b->born_seq, b->born_seq);
    detail_line(c, x, &y, "age", buf, 0xd7dee8);
    if (b->moved_from) {
        snprintf(buf, sizeof buf, "from 0x%" PRIx64 " at #%" PRIu64, b->moved_from, b->moved_seq);
        detail_line(c, x, &y, "moved", buf, VR_RGB_MOVED);
    }
    if (b->fault) detail_line(c, x, &y, "fault", "yes: see the red bytes and the log", VR_RGB_FAULT);
    /* history: the latest log events about this block, oldest first */
    y += 4;
    text(c, x, y, 0x9fb3c8, "history");
    y += c->gh;
    int room = (a.y + a.h - y - 4) / c->gh;
    if (room <= 0) return;
    const vm_event *hits[32];
    int nh = 0;
    for (size_t i = 0; i < m->log_count && nh < room && nh < 32; i++) {
        const vm_event *e = vm_model_log_get(m, i);
        int about = e->rec.addr == b->user || (e->args.op == AMM_TOP_ARGS && e->args.addr == b->user) ||
                    (b->moved_from && e->rec.addr == b->moved_from);
        if (about && e->rec.op != AMM_TOP_SAMPLE && e->rec.op != AMM_TOP_DEFRAG_BEGIN && e->rec.op != AMM_TOP_DEFRAG_END)
            hits[nh++] = e;
    }
    int maxc = (a.w - 20) / c->gw;
    for (int i = nh - 1; i >= 0; i--) {
        vm_event_format(m, hits[i], buf, sizeof buf);
        text_n(c, x, y, hits[i]->rec.op == AMM_TOP_FAULT ? VR_RGB_FAULT : 0xb8c2cf, buf, maxc);
        y += c->gh;
    }
}

static void draw_chart(vr_ctx *c, const vm_model *m)
{
    SDL_Rect a = c->lay.chart;
    char title[128], b1[32];
    if (m->have_sample)
        snprintf(title, sizeof title, "FRAGMENTATION  %.1f%%   reserved %s", m->last_sample.ext_frag_ppm / 10000.0,
                 hbytes(b1, sizeof b1, m->last_sample.reserved));
    else
        snprintf(title, sizeof title, "FRAGMENTATION");
    panel(c, a, title);
    SDL_Rect p = {a.x + 10, a.y + c->gh + 12, a.w - 20, a.h - 2 * c->gh - 22};
    if (p.w < 10 || p.h < 10) return;
    fill(c, p, 0x12151b);
    for (int i = 1; i < 4; i++) {
        SDL_Rect gl = {p.x, p.y + p.h * i / 4, p.w, 1};
        fill(c, gl, 0x222833);
    }
    if (m->nsamples == 0) {
        text(c, p.x + 8, p.y + 8, 0x7d8796, "no samples yet");
        return;
    }
    uint64_t s0 = m->samples[0].seq, s1 = m->samples[m->nsamples - 1].seq;
    if (m->last_seq > s1) s1 = m->last_seq;
    if (s1 <= s0) s1 = s0 + 1;
    uint64_t maxb = 1;
    for (size_t i = 0; i < m->nsamples; i++) {
        const vm_sample *s = &m->samples[i];
        uint64_t mb = s->reserved > s->resident ? s->reserved : s->resident;
        if (s->live_bytes > mb) mb = s->live_bytes;
        if (mb > maxb) maxb = mb;
    }
#define VR_X(seq) (p.x + (int)((double)((seq) - s0) / (double)(s1 - s0) * (p.w - 1)))
#define VR_YB(v) (p.y + p.h - 1 - (int)((double)(v) / (double)maxb * (p.h - 2)))
#define VR_YF(ppm) (p.y + p.h - 1 - (int)((double)(ppm) / 1e6 * (p.h - 2)))
    /* markers first, lines over them */
    for (size_t i = 0; i < m->nsamples; i++) {
        const vm_sample *s = &m->samples[i];
        if (!s->marker) continue;
        SDL_Rect mk = {VR_X(s->seq), p.y, 1, p.h};
        fill(c, mk, s->marker == 1 ? 0xc05ad0 : 0x5ad0c8);
    }
    static const uint32_t cols[4] = {0x8a8f99, 0x5fbf6a, VR_RGB_USED, 0xff5a4a};
    for (int series = 0; series < 4; series++) {
        set_rgb(c, cols[series], 255);
        int px = -1, py = -1;
        for (size_t i = 0; i < m->nsamples; i++) {
            const vm_sample *s = &m->samples[i];
            if (series == 1 && s->resident == 0) continue;
            int x = VR_X(s->seq);
            int y = series == 0 ? VR_YB(s->reserved) : series == 1 ? VR_YB(s->resident) : series == 2 ? VR_YB(s->live_bytes) : VR_YF(s->ext_frag_ppm);
            if (px >= 0) {
                SDL_RenderDrawLine(c->ren, px, py, x, py);
                SDL_RenderDrawLine(c->ren, x, py, x, y);
            }
            px = x;
            py = y;
        }
        if (px >= 0) SDL_RenderDrawLine(c->ren, px, py, p.x + p.w - 1, py);
    }
#undef VR_X
#undef VR_YB
#undef VR_YF
    int x = a.x + 10, y = a.y + a.h - c->gh - 4;
    c->legend_max_x = a.x + a.w - 4;
    legend_item(c, &x, y, 0xff5a4a, "frag %");
    legend_item(c, &x, y, 0x8a8f99, "reserved");
    legend_item(c, &x, y, 0x5fbf6a, "resident");
    legend_item(c, &x, y, VR_RGB_USED, "live");
    legend_item(c, &x, y, 0xc05ad0, "defrag");
    c->legend_max_x = 0;
    textf(c, p.x + p.w - c->gw * 10, p.y + 2, 0x7d8796, "%9s", hbytes(b1, sizeof b1, maxb));
}

static uint32_t op_colour(unsigned op)
{
    switch (op) {
    case AMM_TOP_ALLOC:
    case AMM_TOP_COPY:
    case AMM_TOP_REALLOC: return 0xa8d0f0;
    case AMM_TOP_FREE:
    case AMM_TOP_QUARANTINE_RELEASE: return 0x8a93a0;
    case AMM_TOP_RETAIN:
    case AMM_TOP_RELEASE: return 0xf0c87a;
    case AMM_TOP_MOVE:
    case AMM_TOP_DEFRAG_BEGIN:
    case AMM_TOP_DEFRAG_END: return 0xd89ae8;
    case AMM_TOP_FAULT: return 0xffffff;
    case AMM_TOP_POOL_CREATE:
    case AMM_TOP_REGION_MAP:
    case AMM_TOP_REGION_UNMAP: return VR_RGB_POOL_USED;
    default: return 0x7d8796;
    }
}

static int log_rows(const vr_ctx *c) { return (c->lay.log.h - c->gh - 14) / c->gh; }

static void draw_log(vr_ctx *c, const vm_model *m, const vr_view *v)
{
    SDL_Rect a = c->lay.log;
    char title[96];
    snprintf(title, sizeof title, "EVENTS  %" PRIu64 " applied%s", m->events, v->log_scroll ? "  (scrolled)" : "");
    panel(c, a, title);
    int rows = log_rows(c);
    int maxc = (a.w - 20) / c->gw;
    char buf[256];
    for (int i = 0; i < rows; i++) {
        long idx = (long)(rows - 1 - i) + v->log_scroll;
        const vm_event *e = vm_model_log_get(m, (size_t)idx);
        if (!e) continue;
        int y = a.y + c->gh + 10 + i * c->gh;
        if (e->rec.op == AMM_TOP_FAULT) {
            SDL_Rect bar = {a.x + 4, y, a.w - 8, c->gh};
            fill(c, bar, 0x8a1c1c);
        }
        vm_event_format(m, e, buf, sizeof buf);
        text_n(c, a.x + 10, y, op_colour(e->rec.op), buf, maxc);
    }
}

int vr_hit_log(const vr_ctx *c, const vm_model *m, const vr_view *v, int x, int y, uint64_t *seq)
{
    SDL_Rect a = c->lay.log;
    if (x < a.x || x >= a.x + a.w || y < a.y + c->gh + 10) return 0;
    int i = (y - (a.y + c->gh + 10)) / c->gh, rows = log_rows(c);
    if (i >= rows) return 0;
    const vm_event *e = vm_model_log_get(m, (size_t)((long)(rows - 1 - i) + v->log_scroll));
    if (!e) return 0;
    *seq = e->seq;
    return 1;
}

int vr_hit_scrubber(const vr_ctx *c, int x, int y, double *frac)
{
    SDL_Rect s = c->lay.scrubber;
    if (x < s.x - 4 || x > s.x + s.w + 4 || y < s.y - 8 || y > s.y + s.h + 8) return 0;
    double f = (double)(x - s.x) / (double)(s.w > 1 ? s.w : 1);
    *frac = f < 0 ? 0 : f > 1 ? 1 : f;
    return 1;
}

int vr_hit_button(const vr_ctx *c, int x, int y)
{
    for (int i = 0; i < VR_BTN_COUNT; i++) {
        SDL_Rect b = c->lay.buttons[i];
        if (x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h) return i;
    }
    return -1;
}

static void draw_controls(vr_ctx *c, const vm_model *m, const vr_status *st)
{
    SDL_Rect a = c->lay.controls;
    fill(c, a, 0x111419);
    SDL_Rect line = {a.x, a.y, a.w, 1};
    fill(c, line, 0x323846);
    int playing = st->mode && strcmp(st->mode, "PLAYING") == 0;
    const char *labels[VR_BTN_COUNT] = {"|<", "<", playing ? "||" : ">", ">", ">|", "!>"};
    for (int i = 0; i < VR_BTN_COUNT; i++) {
        SDL_Rect b = c->lay.buttons[i];
        fill(c, b, i == VR_BTN_FAULT ? 0x4a2226 : 0x2a313d);
        frame(c, b, 0x3d4656);
        int tw = (int)strlen(labels[i]) * c->gw;
        text(c, b.x + (b.w - tw) / 2, b.y + (b.h - c->gh) / 2, 0xe6edf5, labels[i]);
    }
    SDL_Rect s = c->lay.scrubber;
    fill(c, s, 0x262c36);
    uint64_t span = st->total > st->first ? st->total - st->first : 0;
    if (span) {
        double f = (double)(st->cursor - (st->cursor > st->first ? st->first : st->cursor)) / (double)span;
        if (f > 1) f = 1;
        SDL_Rect done = {s.x, s.y, (int)(f * s.w), s.h};
        fill(c, done, 0x3f6f9f);
        for (size_t i = 0; i < m->fault_count; i++) {
            const vm_fault *flt = vm_model_fault_get(m, i);
            double ff = flt->seq > st->first ? (double)(flt->seq - st->first) / (double)span : 0;
            if (ff > 1) continue;
            SDL_Rect tick = {s.x + (int)(ff * s.w), s.y - 3, 2, s.h + 6};
            fill(c, tick, VR_RGB_FAULT);
        }
        SDL_Rect knob = {s.x + (int)(f * s.w) - 2, s.y - 4, 5, s.h + 8};
        fill(c, knob, 0xe6edf5);
    }
    int x = s.x + s.w + 12;
    textf(c, x, a.y + (a.h - c->gh) / 2, 0xb8c2cf, "%" PRIu64 "/%" PRIu64 "  %s x%.0f/s%s", st->cursor, st->total,
          st->mode ? st->mode : "", st->speed, st->pause_on_fault ? "  stop@fault" : "");
}

static void draw_status(vr_ctx *c, const vm_model *m, const vr_status *st)
{
    SDL_Rect a = c->lay.status;
    fill(c, a, 0x0f1216);
    char b1[32], b2[32];
    int y = a.y + (a.h - c->gh) / 2;
    int x = text(c, 8, y, 0x8fd0ff, "amm-viz");
    x = textf(c, x + 10, y, 0xb8c2cf, "%s", st->source ? st->source : "");
    uint32_t mode_col = st->mode && strcmp(st->mode, "LIVE") == 0 ? 0x6fdc8c : 0xf0c87a;
    x = textf(c, x + 14, y, mode_col, "%s%s", st->mode ? st->mode : "", st->connected ? "" : st->finished ? " (ended)" : " (no writer)");
    x = textf(c, x + 14, y, 0xd7dee8, "live %zu / %s   reserved %s", m->live_blocks, hbytes(b1, sizeof b1, m->live_bytes),
              hbytes(b2, sizeof b2, m->reserved));
    if (m->faults_total) x = textf(c, x + 14, y, VR_RGB_FAULT, "faults %" PRIu64, m->faults_total);
    if (st->lag) x = textf(c, x + 14, y, 0xf0c87a, "behind %" PRIu64, st->lag);
    uint64_t dropped = st->dropped > m->dropped ? st->dropped : m->dropped;
    if (dropped) x = textf(c, x + 14, y, VR_RGB_QUARANTINE, "dropped %" PRIu64, dropped);
    if (st->damaged) x = textf(c, x + 14, y, VR_RGB_FAULT, "damaged %" PRIu64 " @%" PRIu64, st->damaged, st->damage_offset);
    if (st->fps > 0) x = textf(c, x + 14, y, 0x7d8796, "%.0f fps", st->fps);
    if (st->message && *st->message) {
        int room = (a.w - x - 24) / c->gw;
        if (room > 8) text_n(c, x + 16, y, VR_RGB_QUARANTINE, st->message, room);
    }
}

static void draw_help(vr_ctx *c)
{
    static const char *const lines[] = {
        "amm-viz keys",
        "",
        "space        play / pause (recorded traces)",
        "left/right   step one record back / forward",
        "shift+arrow  step 100 records",
        "home / end   first record / latest (live)",
        "+ / -        playback speed",
        "f            jump to the next fault",
        "p            pause on fault (live streams too)",
        "c, 1-5       colour: state refcount size age site",
        "z / x        zoom in / out (also ctrl+wheel; 0: fit)",
        "wheel        scroll the heap map (pgup/pgdn too)",
        "up / down    scroll the event log (wheel over it)",
        "click block  pin its details (click empty to unpin)",
        "click log    jump to that record",
        "drag scrub   seek",
        "?            this help      q / esc  quit",
    };
    int n = (int)(sizeof lines / sizeof lines[0]);
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = strlen(lines[i]) > longest ? strlen(lines[i]) : longest;
    int w = c->gw * ((int)longest + 4), h = c->gh * (n + 2);
    SDL_Rect box = {(c->lay.w - w) / 2, (c->lay.h - h) / 2, w, h};
    fill_a(c, box, 0x0b0d10, 235);
    frame(c, box, 0x8fd0ff);
    for (int i = 0; i < n; i++)
        text(c, box.x + c->gw * 2, box.y + c->gh * (i + 1), i == 0 ? 0x8fd0ff : 0xe6edf5, lines[i]);
}

void vr_render(vr_ctx *c, const vm_model *m, const vr_view *v, const vr_status *st)
{
    int w = 0, h = 0;
    SDL_GetRendererOutputSize(c->ren, &w, &h);
    c->lay.w = w;
    c->lay.h = h;
    vr_map_geometry(c, m, v);
    SDL_SetRenderDrawBlendMode(c->ren, SDL_BLENDMODE_NONE);
    set_rgb(c, VR_RGB_BG, 255);
    SDL_RenderClear(c->ren);
    draw_map(c, m, v);
    draw_pools(c, m);
    draw_details(c, m, v);
    draw_chart(c, m);
    draw_log(c, m, v);
    draw_controls(c, m, st);
    draw_status(c, m, st);
    if (v->help) draw_help(c);
}
