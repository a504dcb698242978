/*
 * fuzz_viz_model.c - arbitrary record streams into the viewer's heap model.
 *
 * Input bytes are decoded one field at a time (never by copying a struct)
 * into events.  Addresses come from a small window (a base plus a byte
 * times 16, or a raw 64-bit value when a flag bit says so) so that allocs,
 * frees, reallocs, moves and region maps collide often.  After every event
 * the model's invariants are checked (counters equal sums over the block
 * array, every block found by its address, regions sorted and disjoint);
 * a violation aborts.  Every few events a checkpoint copy is taken and must
 * print the same picture as the model it was copied from.
 *
 * Built with AMM_FUZZ (libFuzzer) or, otherwise, with the standalone main at
 * the end, which replays files and directories given on the command line.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct fz_reader {
    const uint8_t *p;
    size_t n, at;
} fz_reader;

static unsigned fz_u8(fz_reader *r) { return r->at < r->n ? r->p[r->at++] : 0u; }

static uint64_t fz_u64(fz_reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)fz_u8(r) << (8 * i);
    return v;
}

static uint32_t fz_u32(fz_reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(r) << (8 * i);
    return v;
}

static uint64_t fz_addr(fz_reader *r, unsigned flags, unsigned bit)
{
    if (flags & bit) return fz_u64(r);
    return 0x100000u + (uint64_t)fz_u8(r) * 16u;
}

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_viz_model: invariant broken: %s\n", what);
    abort();
}

static void fz_check(const vm_model *m)
{
    uint64_t live = 0, quar = 0;
    size_t nl = 0, nq = 0;
    for (size_t i = 0; i < m->nblocks; i++) {
        const vm_block *b = &m->blocks[i];
        if (vm_model_find(m, b->user) != b) fz_fail("block not found by its address");
        if (b->state == AMM_BLOCK_LIVE) {
            live += b->size;
            nl++;
        } else if (b->state == AMM_BLOCK_QUARANTINED) {
            quar += b->size;
            nq++;
        } else {
            fz_fail("block state");
        }
    }
    if (live != m->live_bytes || quar != m->quar_bytes || nl != m->live_blocks || nq != m->quar_blocks)
        fz_fail("counters differ from the block array");
    for (size_t i = 1; i < m->nregions; i++)
        if (m->regions[i - 1].base >= m->regions[i].base || m->regions[i - 1].size > m->regions[i].base - m->regions[i - 1].base)
            fz_fail("regions not sorted and disjoint");
    if (m->log_count > m->lim.log_capacity || m->nsamples > m->lim.sample_capacity) fz_fail("ring bounds");
}

static void fz_event(fz_reader *r, amm_trace_event *ev, uint64_t seq)
{
    memset(ev, 0, sizeof *ev);
    unsigned op = fz_u8(r);
    unsigned flags = fz_u8(r);
    ev->seq = seq;
    ev->time_ns = seq * 1000u;
    ev->rec.op = (uint8_t)(op == 0xFF ? VM_OP_STREAM_START : op % AMM_TOP_COUNT);
    ev->rec.align_log2 = (uint8_t)fz_u8(r);
    ev->rec.thread = 1;
    ev->rec.addr = fz_addr(r, flags, 1u);
    ev->rec.size = (flags & 2u) ? fz_u64(r) : (uint64_t)fz_u8(r) * 8u;
    ev->rec.aux_a = (flags & 4u) ? fz_u32(r) : (uint32_t)(fz_u8(r) & 0x3Fu);
    ev->rec.aux_b = (flags & 8u) ? fz_u32(r) : (uint32_t)fz_u8(r) | (uint32_t)(fz_u8(r) & 3u) << 24;
    if (flags & 16u) {
        ev->has_args = 1;
        ev->args.op = AMM_TOP_ARGS;
        ev->args.addr = fz_addr(r, flags, 32u);
        ev->args.size = (flags & 64u) ? fz_u64(r) : (uint64_t)fz_u8(r) * 8u;
        ev->args.aux_a = fz_u8(r);
        ev->args.aux_b = fz_u8(r) % 3u;
    }
    if (ev->rec.op == AMM_TOP_SITE) {
        size_t len = fz_u8(r) % 40u;
        for (size_t i = 0; i < len; i++) ev->text[i] = (char)(fz_u8(r) | 1u);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vm_limits lim;
    vm_limits_default(&lim);
    lim.max_blocks = 512; /* small bounds so the fuzzer reaches them */
    lim.max_regions = 16;
    lim.log_capacity = 64;
    lim.sample_capacity = 8;
    lim.fault_capacity = 4;
    lim.max_sites = 64;
    vm_model m, cp;
    memset(&cp, 0, sizeof cp);
    if (vm_model_init(&m, &lim) != 0) return 0;
    fz_reader r = {data, size, 0};
    char a[4096], b[4096], line[256];
    uint64_t seq = 0;
    while (r.at < r.n) {
        amm_trace_event ev;
        fz_event(&r, &ev, ++seq);
        vm_model_apply(&m, &ev);
        fz_check(&m);
        if (seq % 16 == 0 && vm_model_copy(&cp, &m) == 0) {
            for (size_t i = 0; i < m.nregions; i++) {
                vm_model_picture(&m, i, a, sizeof a);
                vm_model_picture(&cp, i, b, sizeof b);
                if (strcmp(a, b) != 0) fz_fail("checkpoint picture differs");
            }
            fz_check(&cp);
        }
    }
    for (size_t i = 0; i < m.log_count; i++) vm_event_format(&m, vm_model_log_get(&m, i), line, sizeof line);
    if (m.nblocks) vm_model_block_containing(&m, m.blocks[0].user, m.blocks[0].user + 1);
    vm_model_free(&cp);
    vm_model_free(&m);
    return 0;
}

#ifndef AMM_FUZZ_LIBFUZZER
/* Standalone replay: every file named, and every regular file in each directory named. */
#include <dirent.h>
#include <sys/stat.h>

static int fz_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_viz_model: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap || cap >= ((size_t)16 << 20)) break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) break;
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (!buf) return -1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int fz_cmp(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static int fz_run_path(const char *path, size_t *count)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "fuzz_viz_model: no such input %s\n", path);
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        (*count)++;
        return fz_run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) return -1;
    char *names[4096];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, fz_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i] ? names[i] : "");
        if (names[i] && fz_run_file(full) != 0) rc = -1;
        (*count)++;
        free(names[i]);
    }
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (fz_run_path(argv[i], &count) != 0) rc = 1;
    printf("fuzz_viz_model: %zu inputs replayed\n", count);
    return rc || count == 0 ? 1 : 0;
}
#endif
