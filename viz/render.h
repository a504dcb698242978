/*
 * render.h - draws the model with an SDL_Renderer: the window and headless
 * screenshots go through the same code.  Render only reads the model and the
 * view; hit-testing helpers map screen points back to addresses, log lines,
 * the scrubber and the buttons.
 *
 * Screen layout (vr_layout): status bar on top; heap map (left) with the pools
 * panel and block details on its right; fragmentation chart and event log
 * below; playback controls at the bottom.
 */
#ifndef AMM_VIZ_RENDER_H
#define AMM_VIZ_RENDER_H

#include <SDL.h>
#include <SDL_ttf.h>

#include "model.h"

typedef enum vr_color_mode {
    VR_COLOR_STATE = 0,    /* used / free / canary / padding / quarantined / pool */
    VR_COLOR_REFCOUNT,     /* heat: 1 cool ... 8+ hot */
    VR_COLOR_SIZE,         /* hue by log2(size) */
    VR_COLOR_AGE,          /* young bright ... old dark */
    VR_COLOR_SITE,         /* hue by allocation site */
    VR_COLOR_COUNT
} vr_color_mode;

const char *vr_color_mode_name(int mode);

/* What the user controls; owned by the app, read by render. */
typedef struct vr_view {
    int color_mode;
    double zoom;            /* 1 = fit the whole heap; 2 = twice the pixels per byte ... */
    long scroll_row;        /* first map row shown */
    int help;               /* the ? overlay */
    int mouse_x, mouse_y;
    int have_block;         /* details panel shows `block` */
    vm_block block;         /* hovered or selected block (a copy) */
    int block_pinned;       /* selected by a click (stays when the mouse moves) */
    unsigned frame;         /* frame counter (fault flashing) */
    long log_scroll;        /* event log rows scrolled back from the newest */
} vr_view;

/* What the app tells the status bar and the controls. */
typedef struct vr_status {
    const char *source;
    const char *mode;       /* "LIVE", "PAUSED", "PLAYING", "END" */
    double speed;           /* playback records per second */
    uint64_t cursor, first, total;   /* store indexes for the scrubber */
    uint64_t lag;           /* records received, not shown yet */
    uint64_t dropped, damaged, damage_offset;
    int connected, finished, pause_on_fault;
    double fps;
    const char *message;
} vr_status;

typedef struct vr_layout {
    int w, h;
    SDL_Rect status, map, pools, details, chart, log, controls;
    SDL_Rect scrubber;
    SDL_Rect buttons[6];
} vr_layout;

enum { VR_BTN_START, VR_BTN_BACK, VR_BTN_PLAY, VR_BTN_FWD, VR_BTN_END, VR_BTN_FAULT, VR_BTN_COUNT };

typedef struct vr_cell {
    float r, g, b, cov;
    uint8_t fault, edge;
} vr_cell;

typedef struct vr_ctx {
    SDL_Renderer *ren;
    TTF_Font *font;
    SDL_Texture *glyphs;
    int gw, gh;              /* glyph cell: advance and line height */
    SDL_Texture *map_tex;
    int tex_w, tex_h;
    vr_cell *cells;
    uint32_t *pixels;
    size_t cells_cap;
    long *row0;              /* first map row of each region */
    size_t row0_cap;
    vr_layout lay;
    /* map geometry of the last frame */
    SDL_Rect cell_area;
    int gutter, row_h, pitch, vis_rows;
    long total_rows;
    double bpp;              /* bytes per pixel */
    /* raster cache */
    uint64_t cache_events;
    const vm_model *cache_model;
    double cache_bpp;
    long cache_scroll;
    int cache_mode, cache_w, cache_h;
    unsigned cache_flash;
    int legend_max_x;        /* legend items past this x are left out (0: no limit) */
} vr_ctx;

/* font_path NULL: search the usual places.  Missing font: text is skipped, a warning printed. 0 or -1. */
int vr_init(vr_ctx *c, SDL_Renderer *ren, const char *font_path);
void vr_free(vr_ctx *c);
/* Draws a whole frame (no SDL_RenderPresent). */
void vr_render(vr_ctx *c, const vm_model *m, const vr_view *v, const vr_status *st);
/* Lays out panels for a w x h target (done by vr_render too). */
void vr_layout_compute(vr_layout *lay, int w, int h);
/* Map geometry for the current model and view (done by vr_render too). */
void vr_map_geometry(vr_ctx *c, const vm_model *m, const vr_view *v);

/* Address range [lo, hi) under screen point (x, y) of the heap map; 0 if none. */
int vr_map_addr_at(const vr_ctx *c, const vm_model *m, int x, int y, uint64_t *lo, uint64_t *hi);
/* Screen point of address addr on the map (centre of its pixel row); 0 if not visible. */
int vr_map_pos_of(const vr_ctx *c, const vm_model *m, uint64_t addr, int *x, int *y);
/* Seq of the event log line under (x, y); 0 if none. */
int vr_hit_log(const vr_ctx *c, const vm_model *m, const vr_view *v, int x, int y, uint64_t *seq);
/* Fraction along the scrubber under (x, y); 0 if not on it. */
int vr_hit_scrubber(const vr_ctx *c, int x, int y, double *frac);
/* Button under (x, y) or -1. */
int vr_hit_button(const vr_ctx *c, int x, int y);

/* The colours, exported for tests (0xRRGGBB). */
#define VR_RGB_BG 0x15181eu
#define VR_RGB_HEAP_FREE 0x2a313du
#define VR_RGB_POOL_FREE 0x1f3b3au
#define VR_RGB_LARGE_FREE 0x33293du
#define VR_RGB_USED 0x4d9de0u
#define VR_RGB_POOL_USED 0x3ccf9au
#define VR_RGB_LARGE_USED 0xa07de6u
#define VR_RGB_CANARY 0xe8c547u
#define VR_RGB_PADDING 0x6b7280u
#define VR_RGB_QUARANTINE 0xe07b2cu
#define VR_RGB_FAULT 0xff2a2au
#define VR_RGB_MOVED 0xf0f0f0u

#endif /* AMM_VIZ_RENDER_H */
