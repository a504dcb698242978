/*
 * report.c - amm-bench's tables, as aligned text (default) or one JSON
 * document (--json).  A cell is text, a number, or a number with its ratio to
 * the row's baseline (printed "12.3 (0.66x)" / {"value":12.3,"ratio":0.66}).
 */
#define _GNU_SOURCE /* POSIX and glibc extensions under -std=c11 */
#include "bench.h"

#include <stdarg.h>
#include <string.h>

#define MAX_TABLES 16
#define MAX_META 16

static struct report {
    int json;
    int ntables;
    bench_table tables[MAX_TABLES];
    int nmeta;
    char meta_key[MAX_META][32];
    char meta_value[MAX_META][256];
} g_report;

void bench_report_set_json(int on)
{
    g_report.json = on;
}

int bench_report_json(void)
{
    return g_report.json;
}

void bench_report_meta(const char *key, const char *value)
{
    if (!g_report.json) {
        printf("%-18s %s\n", key, value);
        return;
    }
    if (g_report.nmeta >= MAX_META)
        return;
    snprintf(g_report.meta_key[g_report.nmeta], sizeof g_report.meta_key[0], "%s", key);
    snprintf(g_report.meta_value[g_report.nmeta], sizeof g_report.meta_value[0], "%s", value);
    g_report.nmeta++;
}

void bench_table_init(bench_table *t, const char *title, const char *note)
{
    memset(t, 0, sizeof *t);
    snprintf(t->title, sizeof t->title, "%s", title);
    snprintf(t->note, sizeof t->note, "%s", note != NULL ? note : "");
}

int bench_table_col(bench_table *t, const char *name)
{
    if (t->ncols >= BENCH_MAX_COLS)
        return BENCH_MAX_COLS - 1;
    snprintf(t->cols[t->ncols], sizeof t->cols[0], "%s", name);
    return t->ncols++;
}

int bench_table_row(bench_table *t)
{
    return t->nrows < BENCH_MAX_ROWS ? t->nrows++ : -1;
}

static bench_cell *cell_at(bench_table *t, int row, int col)
{
    static bench_cell discard;
    if (row < 0 || row >= t->nrows || col < 0 || col >= t->ncols)
        return &discard;
    return &t->cells[row][col];
}

void bench_table_text(bench_table *t, int row, int col, const char *fmt, ...)
{
    bench_cell *c = cell_at(t, row, col);
    va_list ap;
    va_start(ap, fmt);
    c->kind = CELL_TEXT;
    vsnprintf(c->text, sizeof c->text, fmt, ap);
    va_end(ap);
}

void bench_table_num(bench_table *t, int row, int col, double value, int decimals)
{
    bench_cell *c = cell_at(t, row, col);
    c->kind = value < 0 ? CELL_TEXT : CELL_NUM;
    c->value = value;
    c->decimals = decimals;
    if (value < 0)
        snprintf(c->text, sizeof c->text, "-");
    else
        snprintf(c->text, sizeof c->text, "%.*f", decimals, value);
}

void bench_table_ratio(bench_table *t, int row, int col, double value, double baseline, int decimals)
{
    bench_table_num(t, row, col, value, decimals);
    bench_cell *c = cell_at(t, row, col);
    if (c->kind != CELL_NUM || !(baseline > 0))
        return;
    c->kind = CELL_RATIO;
    c->ratio = value / baseline;
    snprintf(c->text, sizeof c->text, "%.*f (%.2fx)", decimals, value, c->ratio);
}

void bench_table_ratios(bench_table *t, int row, const int col[BENCH_KIND_COUNT], const bench_alloc all[BENCH_KIND_COUNT],
                        const double ns[BENCH_KIND_COUNT])
{
    for (int k = 0; k < BENCH_KIND_COUNT; k++) {
        if (!all[k].available)
            bench_table_text(t, row, col[k], "n/a");
        else
            bench_table_ratio(t, row, col[k], ns[k], ns[BENCH_GLIBC], 1);
    }
}

static void print_text(const bench_table *t, FILE *out)
{
    int width[BENCH_MAX_COLS];
    for (int c = 0; c < t->ncols; c++) {
        width[c] = (int)strlen(t->cols[c]);
        for (int r = 0; r < t->nrows; r++) {
            int w = (int)strlen(t->cells[r][c].text);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    fprintf(out, "\n== %s ==\n", t->title);
    if (t->note[0] != '\0')
        fprintf(out, "   %s\n", t->note);
    for (int c = 0; c < t->ncols; c++)
        fprintf(out, c == 0 ? "%-*s" : "  %*s", width[c], t->cols[c]);
    fputc('\n', out);
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++)
            fprintf(out, c == 0 ? "%-*s" : "  %*s", width[c], t->cells[r][c].text);
        fputc('\n', out);
    }
    fflush(out);
}

void bench_table_emit(const bench_table *t)
{
    if (!g_report.json) {
        print_text(t, stdout);
        return;
    }
    if (g_report.ntables < MAX_TABLES)
        g_report.tables[g_report.ntables++] = *t;
}

/* Writes s as a JSON string (the texts here are ASCII; escape the rest). */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_cell(FILE *out, const bench_cell *c)
{
    switch (c->kind) {
    case CELL_NUM:
        fprintf(out, "%.*f", c->decimals, c->value);
        break;
    case CELL_RATIO:
        fprintf(out, "{\"value\": %.*f, \"ratio\": %.4f}", c->decimals, c->value, c->ratio);
        break;
    case CELL_TEXT:
        json_string(out, c->text);
        break;
    default:
        fputs("null", out);
        break;
    }
}

static void json_table(FILE *out, const bench_table *t)
{
    fputs("    {\"title\": ", out);
    json_string(out, t->title);
    fputs(", \"note\": ", out);
    json_string(out, t->note);
    fputs(", \"columns\": [", out);
    for (int c = 0; c < t->ncols; c++) {
        fputs(c ? ", " : "", out);
        json_string(out, t->cols[c]);
    }
    fputs("],\n     \"rows\": [", out);
    for (int r = 0; r < t->nrows; r++) {
        fputs(r ? ",\n              [" : "[", out);
        for (int c = 0; c < t->ncols; c++) {
            fputs(c ? ", " : "", out);
            json_cell(out, &t->cells[r][c]);
        }
        fputc(']', out);
    }
    fputs("]}", out);
}

void bench_report_finish(FILE *out)
{
    if (!g_report.json)
        return;
    fputs("{\n  \"machine\": {", out);
    for (int i = 0; i < g_report.nmeta; i++) {
        fputs(i ? ", " : "", out);
        json_string(out, g_report.meta_key[i]);
        fputs(": ", out);
        json_string(out, g_report.meta_value[i]);
    }
    fputs("},\n  \"tables\": [\n", out);
    for (int i = 0; i < g_report.ntables; i++) {
        json_table(out, &g_report.tables[i]);
        fputs(i + 1 < g_report.ntables ? ",\n" : "\n", out);
    }
    fputs("  ]\n}\n", out);
    fflush(out);
}
