/*
 * amm_replay.c - amm-replay: print, run and summarise an op list read from a
 * fuzz input (raw bytes), a text op list or a recorded trace.
 *
 * The format is detected from the content (AMMTRACE magic, printable op
 * lines, else raw bytes) unless --format says; raw bytes decode as the
 * fuzz target named by --target.  Everything goes through ops.h, the same
 * decoder and executor the fuzz targets use, so a crash replays exactly.
 *
 * Exit codes: 0 clean, 1 fault found, 2 unreadable input or bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"

#define EXIT_CLEAN 0
#define EXIT_FAULT 1
#define EXIT_UNREADABLE 2
#define MAX_INPUT ((size_t)256 << 20)

static const char usage_text[] =
    "usage: amm-replay COMMAND FILE [options]\n"
    "\n"
    "Reads FILE (\"-\" = stdin): a recorded trace (AMMTRACE magic), a text op list\n"
    "(\"#12 alloc slot=3 size=24 align=16\" per line) or a raw fuzz input, detected\n"
    "from its content.\n"
    "\n"
    "commands:\n"
    "  print FILE [--json]          the op list, one op per line (text that 'run' reads back)\n"
    "  run FILE [--check-every N] [--trace OUT] [--threads N] [--verbose]\n"
    "                               re-run the ops against a fresh manager, checking it\n"
    "                               against a shadow model; stop at the first fault\n"
    "  stats FILE [--every N]       counts per op, size histogram, peak live, and\n"
    "                               fragmentation over time (every N ops)\n"
    "  encode FILE OUT              a text op list as fuzz input bytes (for the corpora)\n"
    "\n"
    "options:\n"
    "  --format auto|raw|text|trace  override the detection\n"
    "  --target fuzz_ops|fuzz_misuse|fuzz_threads\n"
    "                               how raw bytes decode (default fuzz_ops; fuzz_misuse\n"
    "                               also decodes the misuse ops)\n"
    "  --options STR                manager options (AMM_OPTIONS syntax; default: the fuzz\n"
    "                               targets' \"" AMM_FUZZ_OPTIONS "\", or with fuzz_threads\n"
    "                               and an odd number of ops \"" AMM_FUZZ_OPTIONS_NO_QUARANTINE "\";\n"
    "                               \"\" for the library's defaults; AMM_OPTIONS is not read)\n"
    "  --check-every N              amm_check and the full model check every N ops\n"
    "                               (default 1; 0: only at the end)\n"
    "  --trace OUT                  write the replay's own trace to OUT (for amm-viz)\n"
    "  --quiet                      no progress bar\n"
    "\n"
    "exit status: 0 clean, 1 fault found (the op number and the fault are printed),\n"
    "             2 unreadable input or bad usage.\n";

typedef struct args {
    const char *cmd, *file, *out, *trace, *options;
    amm_ops_format format;
    amm_ops_mode mode;
    int json, threads, verbose, quiet;
    size_t check_every, every;
} args;

static int usage_error(const char *fmt, const char *what) {
    fprintf(stderr, "amm-replay: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n(amm-replay --help for usage)\n");
    return EXIT_UNREADABLE;
}

static int parse_size(const char *s, size_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *v = (size_t)x;
    return 0;
}

static int parse_option(args *a, int argc, char **argv, int *i) {
    const char *o = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    static const char *const known[] = {"--json", "--verbose", "--quiet", "--format", "--target", "--check-every",
                                        "--every", "--threads", "--trace", "--options"};
    int takes = 1, found = 0;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) found |= !strcmp(o, known[k]);
    if (!found) return usage_error("unknown option '%s'", o);
    if (!strcmp(o, "--json")) {
        a->json = 1, takes = 0;
    } else if (!strcmp(o, "--verbose")) {
        a->verbose = 1, takes = 0;
    } else if (!strcmp(o, "--quiet")) {
        a->quiet = 1, takes = 0;
    } else if (!v) {
        return usage_error("%s needs a value", o);
    } else if (!strcmp(o, "--format")) {
        if (!strcmp(v, "auto")) a->format = AMM_FMT_AUTO;
        else if (!strcmp(v, "raw")) a->format = AMM_FMT_RAW;
        else if (!strcmp(v, "text")) a->format = AMM_FMT_TEXT;
        else if (!strcmp(v, "trace")) a->format = AMM_FMT_TRACE;
        else return usage_error("unknown format '%s' (auto, raw, text or trace)", v);
    } else if (!strcmp(o, "--target")) {
        a->threads = 1;
        if (!strcmp(v, "fuzz_ops")) a->mode = AMM_OPS_BASIC;
        else if (!strcmp(v, "fuzz_misuse")) a->mode = AMM_OPS_FULL;
        else if (!strcmp(v, "fuzz_threads")) a->mode = AMM_OPS_BASIC, a->threads = 2;
        else return usage_error("unknown target '%s' (fuzz_ops, fuzz_misuse or fuzz_threads)", v);
    } else if (!strcmp(o, "--check-every") || !strcmp(o, "--every") || !strcmp(o, "--threads")) {
        size_t n;
        if (parse_size(v, &n)) return usage_error("%s needs a number", o);
        if (!strcmp(o, "--check-every")) a->check_every = n;
        else if (!strcmp(o, "--every")) a->every = n ? n : 1;
        else a->threads = n > 1 ? 2 : 1;
    } else if (!strcmp(o, "--trace")) {
        a->trace = v;
    } else {
        a->options = v; /* --options */
    }
    *i += takes;
    return 0;
}

static int parse_args(args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->check_every = 1;
    a->threads = 1;
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            if (parse_option(a, argc, argv, &i)) return EXIT_UNREADABLE;
        } else if (positional == 0) {
            a->cmd = argv[i], positional++;
        } else if (positional == 1) {
            a->file = argv[i], positional++;
        } else if (positional == 2 && a->cmd && !strcmp(a->cmd, "encode")) {
            a->out = argv[i], positional++;
        } else {
            return usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (!a->cmd) return usage_error("%s", "no command given");
    if (strcmp(a->cmd, "print") && strcmp(a->cmd, "run") && strcmp(a->cmd, "stats") && strcmp(a->cmd, "encode"))
        return usage_error("unknown command '%s' (print, run, stats or encode)", a->cmd);
    if (!a->file) return usage_error("%s needs a FILE", a->cmd);
    if (!strcmp(a->cmd, "encode") && !a->out) return usage_error("%s", "encode needs FILE and OUT");
    return 0;
}

/* ---- progress ----------------------------------------------------------- */

typedef struct progress {
    int on;
    int shown;
    const char *what;
} progress;

static void progress_draw(uint64_t done, uint64_t total, void *user) {
    progress *p = user;
    if (!p->on || total < 4096) return;
    unsigned pct = (unsigned)(done * 100 / total);
    char bar[41];
    for (unsigned i = 0; i < 40; i++) bar[i] = i < pct * 40 / 100 ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r%s [%s] %3u%%", p->what, bar, pct);
    p->shown = 1;
}

static void progress_end(progress *p) {
    if (p->shown) fprintf(stderr, "\r%60s\r", "");
    p->shown = 0;
}

/* ---- loading ------------------------------------------------------------- */

static int load(const args *a, amm_op_list *l, amm_ops_format *used, progress *pr) {
    uint8_t *data;
    size_t len;
    char err[512];
    if (amm_read_file(a->file, MAX_INPUT, &data, &len, err, sizeof err)) {
        fprintf(stderr, "amm-replay: %s\n", err);
        return EXIT_UNREADABLE;
    }
    amm_ops_format f = a->format ? a->format : amm_ops_detect(data, len);
    int rc;
    *used = f;
    if (f == AMM_FMT_TRACE) {
        amm_trace_adapt st;
        pr->what = "reading";
        rc = amm_ops_from_trace(data, len, l, &st, progress_draw, pr, err, sizeof err);
        progress_end(pr);
        if (rc == 0 && (st.damaged || st.unmatched))
            fprintf(stderr, "amm-replay: %s: %llu damaged spans skipped, %llu events naming unknown blocks\n", a->file,
                    (unsigned long long)st.damaged, (unsigned long long)st.unmatched);
    } else {
        rc = amm_ops_load(data, len, f, a->mode, l, NULL, err, sizeof err);
    }
    free(data);
    if (rc) {
        fprintf(stderr, "amm-replay: %s: %s\n", a->file, err);
        return EXIT_UNREADABLE;
    }
    return 0;
}

/* ---- commands ------------------------------------------------------------ */

static int cmd_print(const args *a, const amm_op_list *l, amm_ops_format f) {
    char line[512];
    if (a->json) printf("{\"format\":\"%s\",\"count\":%zu,\"ops\":[", amm_ops_format_name(f), l->count);
    else printf("// %s: %zu ops (%s)\n", a->file, l->count, amm_ops_format_name(f));
    for (size_t i = 0; i < l->count; i++) {
        if (a->json) {
            amm_op_format_json(&l->ops[i], i, line, sizeof line);
            printf("%s\n%s", i ? "," : "", line);
        } else {
            amm_op_format(&l->ops[i], i, line, sizeof line);
            printf("%s\n", line);
        }
    }
    if (a->json) printf("\n]}\n");
    return fflush(stdout) == 0 ? EXIT_CLEAN : EXIT_UNREADABLE;
}

static void exec_options(const args *a, amm_exec_options *o, progress *pr) {
    amm_exec_options_default(o);
    o->check_every = a->check_every;
    o->threads = a->threads;
    o->trace_path = a->trace;
    o->options = a->options;
    o->verbose = a->verbose;
    o->progress = progress_draw;
    o->progress_user = pr;
    pr->what = "running";
}

static int report_result(const args *a, const amm_op_list *l, const amm_exec_result *r) {
    if (r->status == AMM_EXEC_SETUP) {
        fprintf(stderr, "amm-replay: cannot run %s: %s\n", a->file, r->message);
        return EXIT_UNREADABLE;
    }
    if (r->status == AMM_EXEC_FAULT) {
        char line[512] = "(after the last op)";
        if (r->op_index < l->count) amm_op_format(&l->ops[r->op_index], r->op_index, line, sizeof line);
        printf("FAULT at op #%zu: %s\n  op: %s\n", r->op_index, r->message, line);
        return EXIT_FAULT;
    }
    printf("clean: %zu ops (%zu skipped), peak %zu live blocks / %zu bytes\n", r->ops_run, r->ops_skipped,
           r->peak_live_blocks, r->peak_live_bytes);
    return EXIT_CLEAN;
}

static int cmd_run(const args *a, const amm_op_list *l, progress *pr) {
    amm_exec_options o;
    amm_exec_result r;
    exec_options(a, &o, pr);
    amm_exec_run(l, &o, &r);
    progress_end(pr);
    return report_result(a, l, &r);
}

typedef struct sampler {
    size_t rows;
} sampler;

static void print_sample(size_t op, const amm_stats *st, void *user) {
    sampler *s = user;
    if (s->rows++ == 0) printf("\n%10s %12s %12s %8s %12s %8s %8s\n", "op", "live_bytes", "reserved", "blocks", "free", "ext_frag", "overhead");
    printf("%10zu %12zu %12zu %8zu %12zu %8.3f %8.3f\n", op, st->live_bytes, st->reserved_bytes, st->live_blocks,
           st->free_bytes, st->external_frag, st->overhead);
}

static int cmd_stats(const args *a, const amm_op_list *l, progress *pr) {
    size_t per_kind[AMM_OP_KIND_COUNT] = {0}, hist[22] = {0};
    for (size_t i = 0; i < l->count; i++) {
        const amm_op *op = &l->ops[i];
        if ((unsigned)op->kind < AMM_OP_KIND_COUNT) per_kind[op->kind]++;
        if (op->kind == AMM_OP_ALLOC || op->kind == AMM_OP_REALLOC || op->kind == AMM_OP_POOL_ALLOC ||
            op->kind == AMM_OP_COPY) {
            size_t b = 0;
            while (b < 21 && ((uint64_t)1 << b) <= op->size) b++;
            hist[b]++;
        }
    }
    printf("%s: %zu ops\n\nops per kind:\n", a->file, l->count);
    for (size_t k = 0; k < AMM_OP_KIND_COUNT; k++)
        if (per_kind[k]) printf("  %-18s %zu\n", amm_op_kind_name((amm_op_kind)k), per_kind[k]);
    printf("\nrequest sizes (alloc, realloc, copy, pool_alloc):\n");
    for (size_t b = 0; b < 22; b++) {
        if (!hist[b]) continue;
        if (b == 0) printf("  %-18s %zu\n", "0", hist[b]);
        else if (b == 21) printf("  %-18s %zu\n", ">= 1 MiB", hist[b]);
        else printf("  %7llu..%-9llu %zu\n", 1ull << (b - 1), (1ull << b) - 1, hist[b]);
    }
    amm_exec_options o;
    amm_exec_result r;
    sampler s = {0};
    exec_options(a, &o, pr);
    o.check_every = 0;
    o.sample = print_sample;
    o.sample_user = &s;
    o.sample_every = a->every ? a->every : (l->count / 20 ? l->count / 20 : 1);
    printf("\nfragmentation over time (a replay, every %zu ops):", o.sample_every);
    amm_exec_run(l, &o, &r);
    progress_end(pr);
    printf("\n");
    return report_result(a, l, &r);
}

static int cmd_encode(const args *a, const amm_op_list *l) {
    uint8_t *bytes;
    size_t len;
    char err[256];
    if (amm_ops_encode(l, a->mode, &bytes, &len, err, sizeof err)) {
        fprintf(stderr, "amm-replay: %s: %s\n", a->file, err);
        return EXIT_UNREADABLE;
    }
    FILE *f = fopen(a->out, "wb");
    int ok = f && fwrite(bytes, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    free(bytes);
    if (!ok) {
        fprintf(stderr, "amm-replay: %s: cannot write: %s\n", a->out, strerror(errno));
        return EXIT_UNREADABLE;
    }
    return EXIT_CLEAN;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return EXIT_CLEAN;
        }
    }
    args a;
    if (parse_args(&a, argc, argv)) return EXIT_UNREADABLE;
    amm_op_list l = {0};
    amm_ops_format used;
    progress pr = {!a.quiet && isatty(2), 0, ""};
    int rc = load(&a, &l, &used, &pr);
    if (rc == 0) {
        if (!strcmp(a.cmd, "print")) rc = cmd_print(&a, &l, used);
        else if (!strcmp(a.cmd, "run")) rc = cmd_run(&a, &l, &pr);
        else if (!strcmp(a.cmd, "stats")) rc = cmd_stats(&a, &l, &pr);
        else rc = cmd_encode(&a, &l);
    }
    amm_ops_free(&l);
    return rc;
}
