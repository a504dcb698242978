/*
 * player.c - cursor, checkpoints and seeking over the event store (player.h).
 */
#define _GNU_SOURCE
#include "player.h"

#include <stdlib.h>
#include <string.h>

#define VP_BUF 4096u
#define VP_MIN_INTERVAL 65536u
#define VP_BUDGET ((size_t)384 << 20)

int vp_init(vp_player *p, vz_ingest *src, const vm_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->src = src;
    p->interval = VP_MIN_INTERVAL;
    p->budget = VP_BUDGET;
    p->buf = malloc(VP_BUF * sizeof *p->buf);
    p->buf_cap = VP_BUF;
    if (!p->buf || vm_model_init(&p->model, lim) != 0) {
        vp_free(p);
        return -1;
    }
    return 0;
}

void vp_free(vp_player *p)
{
    for (size_t i = 0; i < p->ncps; i++) vm_model_free(&p->cps[i].model);
    free(p->cps);
    free(p->buf);
    vm_model_free(&p->model);
    memset(p, 0, sizeof *p);
}

size_t vp_checkpoint_bytes(const vp_player *p)
{
    size_t b = 0;
    for (size_t i = 0; i < p->ncps; i++) b += vm_model_bytes(&p->cps[i].model);
    return b;
}

/* Drops every other checkpoint (keeping the first) until under budget. */
static void thin(vp_player *p)
{
    while (p->ncps > 2 && vp_checkpoint_bytes(p) > p->budget) {
        size_t w = 1;
        for (size_t r = 1; r < p->ncps; r++) {
            if (r % 2 == 1) {
                vm_model_free(&p->cps[r].model);
            } else {
                p->cps[w++] = p->cps[r];
            }
        }
        p->ncps = w;
        p->interval *= 2;
    }
}

static void take_checkpoint(vp_player *p)
{
    if (p->ncps && p->cps[p->ncps - 1].index >= p->cursor) return;
    if (p->ncps == p->cap_cps) {
        size_t cap = p->cap_cps ? p->cap_cps * 2 : 16;
        vp_checkpoint *n = realloc(p->cps, cap * sizeof *n);
        if (!n) return;
        p->cps = n;
        p->cap_cps = cap;
    }
    vp_checkpoint *c = &p->cps[p->ncps];
    memset(c, 0, sizeof *c);
    if (vm_model_copy(&c->model, &p->model) != 0) return;
    c->index = p->cursor;
    p->ncps++;
    uint64_t want = (uint64_t)p->model.nblocks * 4u;
    if (want > p->interval) p->interval = want;
    thin(p);
}

static int due(const vp_player *p)
{
    uint64_t last = p->ncps ? p->cps[p->ncps - 1].index : 0;
    return p->ncps == 0 || p->cursor - last >= p->interval;
}

size_t vp_advance(vp_player *p, uint64_t max, unsigned flags, uint64_t until_seq)
{
    size_t done = 0;
    amm_trace_event ev;
    p->fault_hit = 0;
    while (done < max && !p->stop_hit) {
        if (due(p)) take_checkpoint(p);
        uint64_t want = max - done;
        if (want > p->buf_cap) want = p->buf_cap;
        uint64_t last = p->ncps ? p->cps[p->ncps - 1].index : 0;
        if (p->cursor - last < p->interval && p->interval - (p->cursor - last) < want)
            want = p->interval - (p->cursor - last); /* stop at the next checkpoint */
        size_t n = vz_read(p->src, p->cursor, p->buf, (size_t)want);
        if (n == 0) break;
        for (size_t i = 0; i < n; i++) {
            /* two-stage prefetch a few events ahead: the hash slot, then the block it names */
            if (i + 16 < n) vm_model_prefetch(&p->model, p->buf[i + 16].rec.addr, 0);
            if (i + 8 < n) vm_model_prefetch(&p->model, p->buf[i + 8].rec.addr, 1);
            if (until_seq != UINT64_MAX && p->buf[i].seq > until_seq && p->buf[i].rec.op != VM_OP_STREAM_START) {
                vz_set_consumed(p->src, p->cursor);
                return done;
            }
            vz_event_expand(p->src, &p->buf[i], &ev);
            vm_model_apply(&p->model, &ev);
            p->cursor++;
            done++;
            if (p->stop_count && ev.rec.op == p->stop_op && --p->stop_count == 0) {
                p->stop_hit = 1;
                vz_set_consumed(p->src, p->cursor);
                return done;
            }
            if ((flags & VP_STOP_AT_FAULT) && ev.rec.op == AMM_TOP_FAULT) {
                p->fault_hit = 1;
                vz_set_consumed(p->src, p->cursor);
                return done;
            }
        }
    }
    /* the store may free what is applied (bounded memory); checkpoints whose events it
     * freed can no longer be replayed from and are dropped */
    vz_stat st;
    vz_get_stat(p->src, &st);
    size_t drop = 0;
    while (drop < p->ncps && p->cps[drop].index < st.base) drop++;
    if (drop) {
        for (size_t i = 0; i < drop; i++) vm_model_free(&p->cps[i].model);
        memmove(p->cps, p->cps + drop, (p->ncps - drop) * sizeof *p->cps);
        p->ncps -= drop;
    }
    if (p->ncps == 0 && p->cursor >= st.base) take_checkpoint(p); /* always one to seek back to */
    vz_set_consumed(p->src, p->cursor);
    return done;
}

int vp_seek(vp_player *p, uint64_t target)
{
    vz_stat st;
    vz_get_stat(p->src, &st);
    if (target > st.count) target = st.count;
    if (target >= p->cursor) {
        vp_advance(p, target - p->cursor, 0, UINT64_MAX);
        return 0;
    }
    /* latest usable checkpoint at or before target */
    long best = -1;
    for (size_t i = 0; i < p->ncps; i++)
        if (p->cps[i].index <= target && p->cps[i].index >= st.base) best = (long)i;
    if (best < 0) {
        for (size_t i = 0; i < p->ncps && best < 0; i++)
            if (p->cps[i].index >= st.base) best = (long)i;
        if (best < 0) return -1;
        if (p->cps[best].index > target) target = p->cps[best].index;
    }
    if (vm_model_copy(&p->model, &p->cps[best].model) != 0) return -1;
    p->cursor = p->cps[best].index;
    vp_advance(p, target - p->cursor, 0, UINT64_MAX);
    return 0;
}

uint64_t vp_index_after_seq(vp_player *p, uint64_t seq)
{
    vz_stat st;
    vz_get_stat(p->src, &st);
    uint64_t lo = st.base, hi = st.count;
    vm_event ev;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (vz_read(p->src, mid, &ev, 1) != 1) break;
        if (ev.seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t vp_next_fault(vp_player *p)
{
    uint64_t at = p->cursor;
    for (;;) {
        size_t n = vz_read(p->src, at, p->buf, p->buf_cap);
        if (n == 0) return UINT64_MAX;
        for (size_t i = 0; i < n; i++)
            if (p->buf[i].rec.op == AMM_TOP_FAULT) return at + i + 1;
        at += n;
    }
}
