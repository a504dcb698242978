/*
 * main.c - amm-viz: watch an amm heap live or replay a recorded trace.
 *
 * App structure (model, events, update, render, quit): one `app` holds all
 * state and is passed to every function; there are no file-scope variables.
 *   events  SDL events -> commands (app_key, app_mouse)
 *   update  apply stored events to the model (live: as they arrive, bounded
 *           per frame; playing: speed records/s; paused: nothing), the
 *           scripted steps, hover refresh
 *   render  vr_render reads the model and the view, nothing else
 * Headless (--headless) runs the same update and render into an offscreen
 * software renderer and writes PNG files.
 */
#define _GNU_SOURCE
#include <SDL.h>
#include <SDL_ttf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amm/amm.h"
#include "amm/trace.h"
#include "bench.h"
#include "ingest.h"
#include "model.h"
#include "player.h"
#include "png.h"
#include "render.h"

#define APP_LIVE_SLICE_NS 25000000u /* time per frame spent applying records when live (UI pacing) */
#define APP_SCRIPT_MAX 32

typedef enum app_mode { MODE_LIVE, MODE_PAUSED, MODE_PLAYING } app_mode;

typedef struct app_opts {
    const char *source;        /* file path, "-" or the socket path */
    vz_source_kind kind;
    int headless, follow, paused, help_overlay, dump, quit_on_end;
    const char *screenshot;
    uint64_t at_seq;           /* UINT64_MAX: the end */
    unsigned at_op;            /* --at check:N / fault:N: after the N-th record of this op */
    uint64_t at_count;
    int w, h;
    int colour;
    double zoom;
    uint64_t select;           /* pin this block's details */
    const char *font;
    const char *script;
    uint64_t max_events;
    long bench;                /* --bench N: live blocks */
} app_opts;

typedef struct app_step {
    char cmd[16];
    char arg[480];
} app_step;

typedef struct app {
    app_opts o;
    vz_ingest *ing;
    vp_player pl;
    vr_ctx rc;
    vr_view view;
    SDL_Window *win;
    SDL_Renderer *ren;
    SDL_Surface *surface;      /* headless target */
    app_mode mode;
    double speed;              /* records per second when playing */
    double play_acc;
    int pause_on_fault;
    int quit;
    int dragging;
    int mouse_moved;
    uint64_t last_tick;
    double fps;
    unsigned fps_frames;
    uint64_t fps_t0;
    char message[256];
    app_step steps[APP_SCRIPT_MAX];
    int nsteps, step;
    unsigned step_frames;
    const char *pending_shot;  /* screenshot to write after the next render */
    int exit_code;
} app;

/* ---- options ----------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: amm-viz [options] FILE | - | --listen PATH\n"
            "  FILE               a trace file (followed as it grows; --no-follow reads it once)\n"
            "  -                  read the trace from stdin:\n"
            "                     AMM_OPTIONS=trace=fd:3 prog 3>&1 >/dev/null | amm-viz -\n"
            "  --listen PATH      serve a Unix socket; run the program with AMM_OPTIONS=trace=unix:PATH\n"
            "  --headless         no window: render offscreen (with --screenshot)\n"
            "  --screenshot OUT   write a PNG (headless: of the state at --at or the end)\n"
            "  --at SEQ           the state just after record SEQ; check:N / fault:N: after the\n"
            "                     N-th CHECK (amm_check) / FAULT record\n"
            "  --size WxH         window / image size (default 1280x800)\n"
            "  --paused           start paused at the first record (recorded traces)\n"
            "  --colour MODE      state | refcount | size | age | site\n"
            "  --zoom N           heap map zoom (1 = fit)\n"
            "  --select ADDR      show this block's details\n"
            "  --help-overlay     show the key help\n"
            "  --dump             print the model as text at the end (headless)\n"
            "  --script STEPS     ';'-separated steps run in order: wait-end, wait-events N,\n"
            "                     wait-streams N (N writers came and went), wait-paused,\n"
            "                     frames N, key K, move X Y, click X Y, screenshot FILE,\n"
            "                     quit (closes the window like the user would)\n"
            "  --quit-on-end      quit once the source ended and everything is shown\n"
            "  --max-events N     events kept for seeking (default 2M)\n"
            "  --font PATH        a monospace TTF font\n"
            "  --bench N          measure fps with N live blocks and the ingest rate, then exit\n"
            "  --check-display    exit 0 if a window can be opened, 1 if not\n"
            "keys: ? in the window\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_colour(const char *s)
{
    for (int i = 0; i < VR_COLOR_COUNT; i++)
        if (strncmp(s, vr_color_mode_name(i), strlen(s)) == 0 && *s) return i;
    return -1;
}

static int parse_script(app *a, const char *script)
{
    const char *p = script;
    while (*p) {
        while (*p == ' ' || *p == ';') p++;
        if (!*p) break;
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (a->nsteps == APP_SCRIPT_MAX) {
            fprintf(stderr, "amm-viz: --script: more than %d steps\n", APP_SCRIPT_MAX);
            return -1;
        }
        app_step *s = &a->steps[a->nsteps++];
        const char *sp = memchr(p, ' ', len);
        size_t clen = sp ? (size_t)(sp - p) : len;
        size_t alen = sp ? len - clen - 1 : 0;
        if (clen >= sizeof s->cmd || alen >= sizeof s->arg) {
            fprintf(stderr, "amm-viz: --script: step too long: %.*s\n", (int)len, p);
            return -1;
        }
        memcpy(s->cmd, p, clen);
        s->cmd[clen] = '\0';
        if (sp) memcpy(s->arg, sp + 1, alen);
        s->arg[alen] = '\0';
        static const char *const known[] = {"wait-end", "wait-events", "wait-streams", "wait-paused", "frames",
                                            "key",      "click",       "move",         "screenshot",  "quit"};
        int ok = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= strcmp(s->cmd, known[k]) == 0;
        if (!ok) {
            fprintf(stderr, "amm-viz: --script: unknown step \"%s\" (wait-end, wait-events N, wait-streams N, wait-paused, frames N, key K, move X Y, click X Y, "
                            "screenshot FILE, quit)\n", s->cmd);
            return -1;
        }
        p += len;
    }
    return 0;
}

/* 1 if a real window can be opened: SDL's offscreen and dummy drivers do not count. */
static int display_usable(void)
{
    if (SDL_Init(SDL_INIT_VIDEO) != 0) {
        fprintf(stderr, "amm-viz: no display: %s\n", SDL_GetError());
        return 0;
    }
    const char *drv = SDL_GetCurrentVideoDriver();
    int ok = drv && strcmp(drv, "offscreen") != 0 && strcmp(drv, "dummy") != 0 && strcmp(drv, "evdev") != 0 &&
             strcmp(drv, "KMSDRM") != 0;
    if (ok) {
        SDL_Window *w = SDL_CreateWindow("amm-viz", 0, 0, 64, 64, SDL_WINDOW_HIDDEN);
        ok = w != NULL;
        if (w) SDL_DestroyWindow(w);
    }
    if (!ok) fprintf(stderr, "amm-viz: no usable display (video driver %s)\n", drv ? drv : "none");
    SDL_Quit();
    return ok;
}

/* Returns 0 to run, 1 to exit successfully (--help, --check-display ok), -1 on a usage error,
 * -3 when --check-display finds no display. */
static int parse_args(app *a, int argc, char **argv)
{
    app_opts *o = &a->o;
    o->kind = VZ_SRC_NONE;
    o->follow = 1;
    o->at_seq = UINT64_MAX;
    o->w = 1280;
    o->h = 800;
    o->zoom = 1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL()                                                                 \
    do {                                                                           \
        if (!val) {                                                                \
            fprintf(stderr, "amm-viz: %s needs a value (try --help)\n", s);        \
            return -1;                                                             \
        }                                                                          \
        i++;                                                                       \
    } while (0)
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(s, "--check-display") == 0) {
            return display_usable() ? 1 : -3;
        } else if (strcmp(s, "--listen") == 0) {
            NEED_VAL();
            o->kind = VZ_SRC_LISTEN;
            o->source = val;
        } else if (strcmp(s, "--headless") == 0) {
            o->headless = 1;
        } else if (strcmp(s, "--screenshot") == 0) {
            NEED_VAL();
            o->screenshot = val;
        } else if (strcmp(s, "--at") == 0) {
            NEED_VAL();
            int bad = 0;
            if (strncmp(val, "check:", 6) == 0 || strncmp(val, "fault:", 6) == 0) {
                o->at_op = val[0] == 'c' ? AMM_TOP_CHECK : AMM_TOP_FAULT;
                bad = parse_u64(val + 6, &o->at_count) != 0 || o->at_count == 0;
            } else {
                bad = parse_u64(val, &o->at_seq) != 0;
            }
            if (bad) {
                fprintf(stderr, "amm-viz: --at wants a record number, check:N or fault:N (N >= 1), not \"%s\"\n", val);
                return -1;
            }
        } else if (strcmp(s, "--size") == 0) {
            NEED_VAL();
            if (sscanf(val, "%dx%d", &o->w, &o->h) != 2 || o->w < 320 || o->h < 240 || o->w > 8192 || o->h > 8192) {
                fprintf(stderr, "amm-viz: --size wants WxH between 320x240 and 8192x8192, not \"%s\"\n", val);
                return -1;
            }
        } else if (strcmp(s, "--paused") == 0) {
            o->paused = 1;
        } else if (strcmp(s, "--no-follow") == 0) {
            o->follow = 0;
        } else if (strcmp(s, "--colour") == 0 || strcmp(s, "--color") == 0) {
            NEED_VAL();
            o->colour = parse_colour(val);
            if (o->colour < 0) {
                fprintf(stderr, "amm-viz: --colour wants state, refcount, size, age or site, not \"%s\"\n", val);
                return -1;
            }
        } else if (strcmp(s, "--zoom") == 0) {
            NEED_VAL();
            char *end;
            o->zoom = strtod(val, &end);
            if (*end || !(o->zoom >= 1 && o->zoom <= 1e6)) {
                fprintf(stderr, "amm-viz: --zoom wants a number from 1 to 1e6, not \"%s\"\n", val);
                return -1;
            }
        } else if (strcmp(s, "--select") == 0) {
            NEED_VAL();
            if (parse_u64(val, &o->select) != 0) {
                fprintf(stderr, "amm-viz: --select wants an address, not \"%s\"\n", val);
                return -1;
            }
        } else if (strcmp(s, "--help-overlay") == 0) {
            o->help_overlay = 1;
        } else if (strcmp(s, "--dump") == 0) {
            o->dump = 1;
        } else if (strcmp(s, "--quit-on-end") == 0) {
            o->quit_on_end = 1;
        } else if (strcmp(s, "--script") == 0) {
            NEED_VAL();
            o->script = val;
            if (parse_script(a, val) != 0) return -1;
        } else if (strcmp(s, "--max-events") == 0) {
            NEED_VAL();
            if (parse_u64(val, &o->max_events) != 0) {
                fprintf(stderr, "amm-viz: --max-events wants a number, not \"%s\"\n", val);
                return -1;
            }
        } else if (strcmp(s, "--font") == 0) {
            NEED_VAL();
            o->font = val;
        } else if (strcmp(s, "--bench") == 0) {
            NEED_VAL();
            uint64_t n;
            if (parse_u64(val, &n) != 0 || n > 50000000u) {
                fprintf(stderr, "amm-viz: --bench wants a block count up to 50000000, not \"%s\"\n", val);
                return -1;
            }
            o->bench = (long)n;
        } else if (s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "amm-viz: unknown option %s (try --help)\n", s);
            return -1;
        } else if (o->kind != VZ_SRC_NONE) {
            fprintf(stderr, "amm-viz: more than one source given (%s)\n", s);
            return -1;
        } else {
            o->source = s;
            o->kind = strcmp(s, "-") == 0 ? VZ_SRC_STDIN : VZ_SRC_FILE;
        }
#undef NEED_VAL
    }
    if (o->kind == VZ_SRC_NONE && !o->bench) {
        fprintf(stderr, "amm-viz: no trace source given\n");
        usage(stderr);
        return -1;
    }
    if (o->headless && !o->screenshot && !o->dump && !o->bench) {
        fprintf(stderr, "amm-viz: --headless needs --screenshot OUT.png or --dump\n");
        return -1;
    }
    if (o->headless && o->kind == VZ_SRC_LISTEN && !o->script) {
        fprintf(stderr, "amm-viz: --headless --listen needs a --script saying when to stop (e.g. \"wait-streams 1;quit\")\n");
        return -1;
    }
    if (o->headless) o->follow = 0;
    return 0;
}

/* ---- time (for fps and playback speed only) ------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- screenshots ------------------------------------------------------------------------ */

static int save_png(app *a, const char *path)
{
    int w, h;
    SDL_GetRendererOutputSize(a->ren, &w, &h);
    size_t pitch = (size_t)w * 3;
    uint8_t *px = malloc(pitch * (size_t)h);
    if (!px) return -1;
    int rc = SDL_RenderReadPixels(a->ren, NULL, SDL_PIXELFORMAT_RGB24, px, (int)pitch);
    if (rc == 0) rc = vpng_save(path, px, w, h, pitch, 3);
    free(px);
    if (rc != 0)
        fprintf(stderr, "amm-viz: cannot write %s: %s\n", path, errno ? strerror(errno) : SDL_GetError());
    else
        printf("amm-viz: wrote %s (%dx%d)\n", path, w, h);
    return rc;
}

/* ---- model <-> view -------------------------------------------------------------------- */

static void refresh_block(app *a)
{
    const vm_model *m = &a->pl.model;
    if (a->view.have_block) {
        const vm_block *b = vm_model_find(m, a->view.block.user);
        if (b)
            a->view.block = *b;
        else if (a->view.block_pinned)
            a->view.have_block = a->view.block_pinned = 0;
    }
    if (a->view.block_pinned || !a->mouse_moved) return;
    a->mouse_moved = 0;
    uint64_t lo, hi;
    const vm_block *b = NULL;
    if (vr_map_addr_at(&a->rc, m, a->view.mouse_x, a->view.mouse_y, &lo, &hi)) b = vm_model_block_containing(m, lo, hi);
    a->view.have_block = b != NULL;
    if (b) a->view.block = *b;
}

static void seek_to(app *a, uint64_t idx)
{
    if (vp_seek(&a->pl, idx) != 0) snprintf(a->message, sizeof a->message, "cannot seek there (history dropped)");
    a->mode = MODE_PAUSED;
}

static void step(app *a, long n)
{
    if (n > 0) {
        vp_advance(&a->pl, (uint64_t)n, 0, UINT64_MAX);
    } else {
        uint64_t back = (uint64_t)(-n);
        seek_to(a, a->pl.cursor > back ? a->pl.cursor - back : 0);
    }
    a->mode = MODE_PAUSED;
}

static void next_fault(app *a)
{
    uint64_t idx = vp_next_fault(&a->pl);
    if (idx == UINT64_MAX) {
        snprintf(a->message, sizeof a->message, "no fault after this point");
        return;
    }
    seek_to(a, idx);
}

/* ---- events ----------------------------------------------------------------------------- */

static void scroll_map(app *a, long rows)
{
    a->view.scroll_row += rows;
    if (a->view.scroll_row < 0) a->view.scroll_row = 0;
    long max = a->rc.total_rows - a->rc.vis_rows;
    if (a->view.scroll_row > max) a->view.scroll_row = max > 0 ? max : 0;
}

static void zoom(app *a, double f)
{
    double before = a->view.zoom;
    a->view.zoom *= f;
    if (a->view.zoom < 1) a->view.zoom = 1;
    if (a->view.zoom > 1e6) a->view.zoom = 1e6;
    /* keep the same part of the heap in view: rows scale with the zoom */
    a->view.scroll_row = (long)((double)a->view.scroll_row * (a->view.zoom / before));
    a->mouse_moved = 1;
}

static void app_key(app *a, const SDL_KeyboardEvent *k)
{
    int shift = (k->keysym.mod & KMOD_SHIFT) != 0;
    switch (k->keysym.sym) {
    case SDLK_q:
    case SDLK_ESCAPE:
        if (a->view.help && k->keysym.sym == SDLK_ESCAPE)
            a->view.help = 0;
        else
            a->quit = 1;
        break;
    case SDLK_SPACE: a->mode = a->mode == MODE_PLAYING || a->mode == MODE_LIVE ? MODE_PAUSED : MODE_PLAYING; break;
    case SDLK_RIGHT: step(a, shift ? 100 : 1); break;
    case SDLK_LEFT: step(a, shift ? -100 : -1); break;
    case SDLK_HOME: seek_to(a, 0); break;
    case SDLK_END: a->mode = MODE_LIVE; break;
    case SDLK_PLUS:
    case SDLK_EQUALS:
    case SDLK_KP_PLUS: a->speed = a->speed * 2 > 1e8 ? 1e8 : a->speed * 2; break;
    case SDLK_MINUS:
    case SDLK_KP_MINUS: a->speed = a->speed / 2 < 1 ? 1 : a->speed / 2; break;
    case SDLK_f: next_fault(a); break;
    case SDLK_p: a->pause_on_fault = !a->pause_on_fault; break;
    case SDLK_c: a->view.color_mode = (a->view.color_mode + 1) % VR_COLOR_COUNT; break;
    case SDLK_1:
    case SDLK_2:
    case SDLK_3:
    case SDLK_4:
    case SDLK_5: a->view.color_mode = (int)(k->keysym.sym - SDLK_1); break;
    case SDLK_z: zoom(a, 2); break;
    case SDLK_x: zoom(a, 0.5); break;
    case SDLK_0: a->view.zoom = 1; a->view.scroll_row = 0; break;
    case SDLK_PAGEUP: scroll_map(a, -(long)a->rc.vis_rows / 2); break;
    case SDLK_PAGEDOWN: scroll_map(a, a->rc.vis_rows / 2); break;
    case SDLK_UP: a->view.log_scroll += 1; break;
    case SDLK_DOWN: a->view.log_scroll = a->view.log_scroll > 0 ? a->view.log_scroll - 1 : 0; break;
    case SDLK_SLASH:
    case SDLK_QUESTION:
    case SDLK_h: a->view.help = !a->view.help; break;
    default: break;
    }
}

static void scrub(app *a, int x, int y)
{
    double f;
    if (!vr_hit_scrubber(&a->rc, x, y, &f)) return;
    vz_stat st;
    vz_get_stat(a->ing, &st);
    seek_to(a, st.base + (uint64_t)(f * (double)(st.count - st.base)));
}

static void app_click(app *a, int x, int y)
{
    int b = vr_hit_button(&a->rc, x, y);
    if (b >= 0) {
        switch (b) {
        case VR_BTN_START: seek_to(a, 0); break;
        case VR_BTN_BACK: step(a, -1); break;
        case VR_BTN_PLAY: a->mode = a->mode == MODE_PAUSED ? MODE_PLAYING : MODE_PAUSED; break;
        case VR_BTN_FWD: step(a, 1); break;
        case VR_BTN_END: a->mode = MODE_LIVE; break;
        case VR_BTN_FAULT: next_fault(a); break;
        default: break;
        }
        return;
    }
    double f;
    if (vr_hit_scrubber(&a->rc, x, y, &f)) {
        a->dragging = 1;
        scrub(a, x, y);
        return;
    }
    uint64_t seq;
    if (vr_hit_log(&a->rc, &a->pl.model, &a->view, x, y, &seq)) {
        seek_to(a, vp_index_after_seq(&a->pl, seq));
        a->view.log_scroll = 0;
        return;
    }
    uint64_t lo, hi;
    if (vr_map_addr_at(&a->rc, &a->pl.model, x, y, &lo, &hi)) {
        const vm_block *blk = vm_model_block_containing(&a->pl.model, lo, hi);
        a->view.block_pinned = blk != NULL;
        a->view.have_block = blk != NULL;
        if (blk) a->view.block = *blk;
    }
}

static void app_event(app *a, const SDL_Event *e)
{
    switch (e->type) {
    case SDL_QUIT: a->quit = 1; break;
    case SDL_KEYDOWN: app_key(a, &e->key); break;
    case SDL_TEXTINPUT:
        if (e->text.text[0] == '?') a->view.help = !a->view.help;
        if (e->text.text[0] == '+') a->speed = a->speed * 2 > 1e8 ? 1e8 : a->speed * 2;
        break;
    case SDL_MOUSEMOTION:
        a->view.mouse_x = e->motion.x;
        a->view.mouse_y = e->motion.y;
        a->mouse_moved = 1;
        if (a->dragging) scrub(a, e->motion.x, e->motion.y);
        break;
    case SDL_MOUSEBUTTONDOWN:
        if (e->button.button == SDL_BUTTON_LEFT) app_click(a, e->button.x, e->button.y);
        break;
    case SDL_MOUSEBUTTONUP: a->dragging = 0; break;
    case SDL_MOUSEWHEEL: {
        SDL_Rect lg = a->rc.lay.log;
        int mx = a->view.mouse_x, my = a->view.mouse_y;
        if (mx >= lg.x && my >= lg.y && my < lg.y + lg.h) {
            a->view.log_scroll += e->wheel.y * 3;
            if (a->view.log_scroll < 0) a->view.log_scroll = 0;
        } else if (SDL_GetModState() & KMOD_CTRL) {
            zoom(a, e->wheel.y > 0 ? 2 : 0.5);
        } else if (e->wheel.y != 0) {
            scroll_map(a, -e->wheel.y * 3);
        }
        break;
    }
    default: break;
    }
}

/* ---- script ------------------------------------------------------------------------------ */

static SDL_Keycode key_named(const char *k)
{
    static const struct {
        const char *name;
        SDL_Keycode key;
    } names[] = {{"space", SDLK_SPACE}, {"left", SDLK_LEFT}, {"right", SDLK_RIGHT}, {"home", SDLK_HOME},
                 {"end", SDLK_END},     {"escape", SDLK_ESCAPE}, {"pageup", SDLK_PAGEUP}, {"pagedown", SDLK_PAGEDOWN}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(k, names[i].name) == 0) return names[i].key;
    return k[0] && !k[1] ? (SDL_Keycode)k[0] : SDLK_UNKNOWN;
}

static int source_done(app *a, const vz_stat *st)
{
    if (a->pl.cursor < st->count) return 0;
    if (a->o.kind == VZ_SRC_LISTEN) return st->streams > 0 && !st->connected;
    return st->finished;
}

/* Runs the current script step if its condition holds; returns 1 to move on. */
static int script_step(app *a, const vz_stat *st)
{
    app_step *s = &a->steps[a->step];
    if (strcmp(s->cmd, "wait-end") == 0) return source_done(a, st);
    if (strcmp(s->cmd, "wait-events") == 0) return a->pl.cursor >= strtoull(s->arg, NULL, 0);
    if (strcmp(s->cmd, "wait-streams") == 0)
        return st->streams >= strtoull(s->arg, NULL, 0) && !st->connected && a->pl.cursor >= st->count;
    if (strcmp(s->cmd, "wait-paused") == 0) return a->mode == MODE_PAUSED;
    if (strcmp(s->cmd, "frames") == 0) return ++a->step_frames > strtoul(s->arg, NULL, 0);
    if (strcmp(s->cmd, "click") == 0 || strcmp(s->cmd, "move") == 0) {
        int x = 0, y = 0;
        if (sscanf(s->arg, "%d %d", &x, &y) != 2) fprintf(stderr, "amm-viz: --script: %s wants X Y\n", s->cmd);
        SDL_Event e[3];
        memset(e, 0, sizeof e);
        e[0].type = SDL_MOUSEMOTION;
        e[0].motion.x = x;
        e[0].motion.y = y;
        e[1].type = SDL_MOUSEBUTTONDOWN;
        e[2].type = SDL_MOUSEBUTTONUP;
        for (int i = 1; i < 3; i++) {
            e[i].button.button = SDL_BUTTON_LEFT;
            e[i].button.x = x;
            e[i].button.y = y;
        }
        int n = s->cmd[0] == 'c' ? 3 : 1;
        for (int i = 0; i < n; i++) app_event(a, &e[i]);
        return 1;
    }
    if (strcmp(s->cmd, "screenshot") == 0) {
        a->pending_shot = s->arg;
        return 1;
    }
    if (strcmp(s->cmd, "key") == 0) {
        SDL_Event e;
        memset(&e, 0, sizeof e);
        e.type = SDL_KEYDOWN;
        e.key.keysym.sym = key_named(s->arg);
        app_event(a, &e); /* straight to the handler: it acts before the next record */
        return 1;
    }
    if (strcmp(s->cmd, "quit") == 0) {
        SDL_Event e;
        memset(&e, 0, sizeof e);
        e.type = SDL_QUIT;
        if (a->o.headless)
            a->quit = 1;
        else
            SDL_PushEvent(&e); /* through the normal close path */
        return 1;
    }
    return 1;
}

/* ---- update ---------------------------------------------------------------------------------- */

static void update(app *a)
{
    uint64_t t = now_ns();
    double dt = a->last_tick ? (double)(t - a->last_tick) / 1e9 : 0;
    a->last_tick = t;
    vz_stat st;
    vz_get_stat(a->ing, &st);
    /* scripted steps first, so a scripted key acts before the records that follow it */
    while (a->step < a->nsteps && script_step(a, &st)) {
        a->step++;
        a->step_frames = 0;
        if (a->pending_shot) break; /* the shot needs a frame rendered first */
    }
    unsigned flags = a->pause_on_fault ? VP_STOP_AT_FAULT : 0u;
    if (a->mode == MODE_LIVE) {
        /* as much as fits in a slice of the frame, so a fast stream never freezes the window */
        uint64_t until = t + APP_LIVE_SLICE_NS;
        size_t n;
        do n = vp_advance(&a->pl, 16384, flags, a->o.at_seq);
        while (n == 16384 && !a->pl.fault_hit && now_ns() < until);
    } else if (a->mode == MODE_PLAYING) {
        a->play_acc += a->speed * (dt > 0.25 ? 0.25 : dt);
        uint64_t n = (uint64_t)a->play_acc;
        a->play_acc -= (double)n;
        if (n) vp_advance(&a->pl, n, flags, UINT64_MAX);
    }
    if (a->pl.fault_hit) {
        a->mode = MODE_PAUSED;
        a->pl.fault_hit = 0;
        snprintf(a->message, sizeof a->message, "paused on a fault (p toggles, space resumes)");
    }
    vz_get_stat(a->ing, &st);
    if (a->o.quit_on_end && source_done(a, &st)) a->quit = 1;
    refresh_block(a);
    a->view.frame++;
}

static void fill_status(app *a, vr_status *s, vz_stat *st)
{
    vz_get_stat(a->ing, st);
    memset(s, 0, sizeof *s);
    s->source = a->o.kind == VZ_SRC_LISTEN ? "socket" : a->o.source ? a->o.source : "bench";
    static const char *const modes[] = {"LIVE", "PAUSED", "PLAYING"};
    s->mode = modes[a->mode];
    s->speed = a->speed;
    s->cursor = a->pl.cursor;
    s->first = st->base;
    s->total = st->count;
    s->lag = st->count > a->pl.cursor ? st->count - a->pl.cursor : 0;
    if (a->mode != MODE_LIVE) s->lag = 0;
    s->dropped = st->dropped;
    s->damaged = st->damaged;
    s->damage_offset = st->damage_offset;
    s->connected = st->connected;
    s->finished = st->finished;
    s->pause_on_fault = a->pause_on_fault;
    s->fps = a->fps;
    s->message = a->message[0] ? a->message : st->message;
}

static void render(app *a)
{
    vr_status s;
    vz_stat st;
    fill_status(a, &s, &st);
    vr_render(&a->rc, &a->pl.model, &a->view, &s);
    if (a->pending_shot) {
        if (save_png(a, a->pending_shot) != 0) a->exit_code = 1;
        a->pending_shot = NULL;
    }
    if (a->win) SDL_RenderPresent(a->ren);
    a->fps_frames++;
    uint64_t t = now_ns();
    if (!a->fps_t0) a->fps_t0 = t;
    if (t - a->fps_t0 >= 500000000u) {
        a->fps = a->fps_frames / ((double)(t - a->fps_t0) / 1e9);
        a->fps_frames = 0;
        a->fps_t0 = t;
    }
}

/* ---- setup ------------------------------------------------------------------------------------- */

static int open_display(app *a)
{
    if (a->o.headless) {
        if (SDL_Init(0) != 0) {
            fprintf(stderr, "amm-viz: SDL_Init: %s\n", SDL_GetError());
            return -1;
        }
        a->surface = SDL_CreateRGBSurfaceWithFormat(0, a->o.w, a->o.h, 32, SDL_PIXELFORMAT_ARGB8888);
        a->ren = a->surface ? SDL_CreateSoftwareRenderer(a->surface) : NULL;
        if (!a->ren) {
            fprintf(stderr, "amm-viz: cannot create the offscreen renderer: %s\n", SDL_GetError());
            return -1;
        }
        return 0;
    }
    if (SDL_Init(SDL_INIT_VIDEO) != 0) {
        fprintf(stderr, "amm-viz: no display (%s); use --headless --screenshot OUT.png\n", SDL_GetError());
        return -1;
    }
    const char *drv = SDL_GetCurrentVideoDriver();
    if (!getenv("SDL_VIDEODRIVER") && drv && (strcmp(drv, "offscreen") == 0 || strcmp(drv, "dummy") == 0)) {
        fprintf(stderr, "amm-viz: no display (SDL video driver %s); use --headless --screenshot OUT.png\n", drv);
        return -1;
    }
    a->win = SDL_CreateWindow("amm-viz", SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED, a->o.w, a->o.h,
                              SDL_WINDOW_RESIZABLE);
    if (!a->win) {
        fprintf(stderr, "amm-viz: cannot open a window: %s\n", SDL_GetError());
        return -1;
    }
    a->ren = SDL_CreateRenderer(a->win, -1, 0);
    if (!a->ren) a->ren = SDL_CreateRenderer(a->win, -1, SDL_RENDERER_SOFTWARE);
    if (!a->ren) {
        fprintf(stderr, "amm-viz: cannot create a renderer: %s\n", SDL_GetError());
        return -1;
    }
    SDL_StartTextInput();
    return 0;
}

static void close_display(app *a)
{
    vr_free(&a->rc);
    if (a->ren) SDL_DestroyRenderer(a->ren);
    if (a->surface) SDL_FreeSurface(a->surface);
    if (a->win) SDL_DestroyWindow(a->win);
    if (TTF_WasInit()) TTF_Quit();
    SDL_Quit();
}

static void dump_model(const vm_model *m)
{
    char pic[65536];
    printf("model: events %" PRIu64 " last seq %" PRIu64 " live %zu (%" PRIu64 " B) quarantined %zu regions %zu faults %" PRIu64
           " anomalies %" PRIu64 "\n",
           m->events, m->last_seq, m->live_blocks, m->live_bytes, m->quar_blocks, m->nregions, m->faults_total, m->anomalies);
    for (size_t i = 0; i < m->nregions; i++) {
        vm_model_picture(m, i, pic, sizeof pic);
        printf("  %s\n", pic);
    }
}

/* Headless: apply up to --at (or everything), render once, write the PNG. */
/* Headless on a socket: the script says when to stop (wait-streams N; quit). */
static int run_headless_listen(app *a)
{
    while (a->step < a->nsteps && !a->quit) {
        update(a);
        if (a->pending_shot)
            render(a);
        else
            SDL_Delay(2); /* waiting for writers; nothing to draw until asked */
    }
    vz_stat st;
    vz_get_stat(a->ing, &st);
    if (a->o.screenshot) a->pending_shot = a->o.screenshot;
    render(a);
    printf("amm-viz: %" PRIu64 " streams, %" PRIu64 " of %" PRIu64 " records shown, %" PRIu64 " dropped, %" PRIu64
           " damaged (last at byte %" PRIu64 ")%s%s\n",
           st.streams, a->pl.cursor, st.count, st.dropped, st.damaged, st.damage_offset, st.message[0] ? ": " : "",
           st.message);
    if (a->o.dump) dump_model(&a->pl.model);
    return a->exit_code;
}

static int run_headless(app *a)
{
    if (a->o.kind == VZ_SRC_LISTEN) return run_headless_listen(a);
    vz_stat st;
    a->pl.stop_op = a->o.at_op;
    a->pl.stop_count = a->o.at_count;
    for (;;) {
        size_t n = vp_advance(&a->pl, 1u << 20, 0, a->o.at_seq);
        if (a->pl.stop_hit) break;
        vz_get_stat(a->ing, &st);
        vm_event next;
        if (vz_read(a->ing, a->pl.cursor, &next, 1) == 1 && next.seq > a->o.at_seq && next.rec.op != VM_OP_STREAM_START)
            break;
        if (n == 0 && st.finished && a->pl.cursor >= st.count) break;
        if (n == 0) SDL_Delay(1);
    }
    vz_get_stat(a->ing, &st);
    if (st.message[0]) fprintf(stderr, "amm-viz: %s\n", st.message);
    if (st.failed) a->exit_code = 1;
    if (a->o.at_count && !a->pl.stop_hit) {
        fprintf(stderr, "amm-viz: --at: the trace has fewer than %" PRIu64 " %s records\n", a->o.at_count,
                amm_trace_op_name(a->o.at_op));
        a->exit_code = 1;
    }
    a->mode = MODE_PAUSED;
    if (a->o.select) {
        const vm_block *b = vm_model_find(&a->pl.model, a->o.select);
        if (!b) b = vm_model_block_containing(&a->pl.model, a->o.select, a->o.select + 1);
        if (b) {
            a->view.block = *b;
            a->view.have_block = a->view.block_pinned = 1;
        } else {
            fprintf(stderr, "amm-viz: --select 0x%" PRIx64 ": no block there\n", a->o.select);
        }
    }
    a->pl.stop_hit = 0; /* positioned: later advances (script keys) run freely */
    a->pl.stop_count = 0;
    /* a script may seek forward (f, right): let the reader store the rest first (or fill the store) */
    while (a->nsteps && !st.finished && !st.waiting) {
        SDL_Delay(1);
        vz_get_stat(a->ing, &st);
    }
    while (a->step < a->nsteps && !a->quit) {
        update(a);
        render(a);
    }
    if (a->o.screenshot) a->pending_shot = a->o.screenshot;
    render(a);
    if (a->o.dump) dump_model(&a->pl.model);
    return a->exit_code;
}

static int run_window(app *a)
{
    if (a->o.screenshot) {
        /* window mode: the screenshot is taken when the source is done */
        if (a->step == a->nsteps) {
            snprintf(a->steps[0].cmd, sizeof a->steps[0].cmd, "wait-end");
            snprintf(a->steps[1].cmd, sizeof a->steps[1].cmd, "screenshot");
            snprintf(a->steps[1].arg, sizeof a->steps[1].arg, "%s", a->o.screenshot);
            a->nsteps = 2;
        }
    }
    while (!a->quit) {
        SDL_Event e;
        int got = 0;
        while (SDL_PollEvent(&e)) {
            app_event(a, &e);
            got = 1;
        }
        update(a);
        render(a);
        if (!got && a->mode == MODE_PAUSED && a->step >= a->nsteps) SDL_WaitEventTimeout(NULL, 30);
        else if (!got) SDL_Delay(a->mode == MODE_LIVE ? 1 : 8);
    }
    vz_stat st;
    vz_get_stat(a->ing, &st);
    printf("amm-viz: closed: %" PRIu64 " streams, %" PRIu64 " of %" PRIu64 " records shown, %" PRIu64
           " dropped, %" PRIu64 " damaged\n", st.streams, a->pl.cursor, st.count, st.dropped, st.damaged);
    return a->exit_code;
}

int main(int argc, char **argv)
{
    app *a = calloc(1, sizeof *a);
    if (!a) return 1;
    int rc = parse_args(a, argc, argv);
    if (rc != 0) {
        free(a);
        return rc > 0 ? 0 : rc == -3 ? 1 : 2;
    }
    a->speed = 1000;
    a->view.zoom = a->o.zoom;
    a->view.color_mode = a->o.colour;
    a->view.help = a->o.help_overlay;
    a->mode = a->o.paused ? MODE_PAUSED : MODE_LIVE;
    if (a->o.bench) {
        rc = vb_run(a->o.bench, a->o.w, a->o.h, a->o.headless, a->o.font);
        free(a);
        return rc;
    }
    char err[512] = "";
    a->ing = vz_ingest_new(a->o.kind, a->o.source, a->o.follow, a->o.max_events, err, sizeof err);
    if (!a->ing) {
        fprintf(stderr, "amm-viz: %s\n", err);
        free(a);
        return 1;
    }
    if (vp_init(&a->pl, a->ing, NULL) != 0 || vz_ingest_start(a->ing, err, sizeof err) != 0) {
        fprintf(stderr, "amm-viz: %s\n", err[0] ? err : "out of memory");
        vp_free(&a->pl);
        vz_ingest_free(a->ing);
        free(a);
        return 1;
    }
    if (a->o.kind == VZ_SRC_LISTEN) {
        printf("amm-viz: listening on %s (run your program with AMM_OPTIONS=trace=unix:%s)\n", a->o.source, a->o.source);
        fflush(stdout);
    }
    rc = open_display(a);
    if (rc == 0) {
        vr_init(&a->rc, a->ren, a->o.font);
        rc = a->o.headless ? run_headless(a) : run_window(a);
    } else {
        rc = 1;
    }
    close_display(a);
    vz_ingest_free(a->ing);
    vp_free(&a->pl);
    free(a);
    return rc;
}
