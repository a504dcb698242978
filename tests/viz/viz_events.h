/*
 * viz_events.h - builders of synthetic trace events for the viewer's tests.
 *
 * Each helper fills one amm_trace_event the way the trace reader yields it
 * (record + merged args), with seq numbers from a running counter, so tests
 * state "records in" as a short list of calls.
 */
#ifndef AMM_TESTS_VIZ_EVENTS_H
#define AMM_TESTS_VIZ_EVENTS_H

#include <string.h>

#include "amm/trace.h"
#include "model.h"

typedef struct ve_stream {
    vm_model *m;
    uint64_t seq;
} ve_stream;

static inline amm_trace_event ve_make(ve_stream *s, unsigned op, uint64_t addr, uint64_t size, uint32_t aux_a,
                                      uint32_t aux_b)
{
    amm_trace_event ev;
    memset(&ev, 0, sizeof ev);
    ev.seq = ++s->seq;
    ev.time_ns = s->seq * 1000u;
    ev.rec.op = (uint8_t)op;
    ev.rec.addr = addr;
    ev.rec.size = size;
    ev.rec.aux_a = aux_a;
    ev.rec.aux_b = aux_b;
    ev.rec.thread = 1;
    ev.rec.align_log2 = 4;
    return ev;
}

static inline void ve_args(amm_trace_event *ev, uint64_t addr, uint64_t size, uint32_t aux_a, uint32_t aux_b)
{
    ev->has_args = 1;
    ev->args.op = AMM_TOP_ARGS;
    ev->args.addr = addr;
    ev->args.size = size;
    ev->args.aux_a = aux_a;
    ev->args.aux_b = aux_b;
}

static inline void ve_manager(ve_stream *s, uint32_t canary)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_MANAGER_CREATE, 1, 1 << 20, canary, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_region(ve_stream *s, uint64_t base, uint64_t size, uint32_t id)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_REGION_MAP, base, size, AMM_ORIGIN_HEAP, id);
    vm_model_apply(s->m, &ev);
}

static inline void ve_pool(ve_stream *s, uint64_t base, uint64_t block_size, uint32_t slots, uint32_t id,
                           uint64_t stride, uint64_t front)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_POOL_CREATE, base, block_size, slots, id);
    ve_args(&ev, stride, front, 0, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_site(ve_stream *s, uint32_t id, uint32_t line, const char *file)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_SITE, 0, strlen(file), id, line);
    snprintf(ev.text, sizeof ev.text, "%s", file);
    vm_model_apply(s->m, &ev);
}

/* An alloc of size bytes at user with `front` bytes before it in its chunk. */
static inline void ve_alloc_o(ve_stream *s, uint64_t user, uint64_t size, uint32_t front, uint32_t site,
                              unsigned origin)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_ALLOC, user, size, front, site | (uint32_t)origin << 24);
    vm_model_apply(s->m, &ev);
}

static inline void ve_alloc(ve_stream *s, uint64_t user, uint64_t size, uint32_t front)
{
    ve_alloc_o(s, user, size, front, 0, AMM_ORIGIN_HEAP);
}

static inline void ve_free(ve_stream *s, uint64_t user, uint64_t size, int quarantined)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_FREE, user, size, quarantined ? 1u : 0u, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_simple(ve_stream *s, unsigned op, uint64_t addr, uint64_t size, uint32_t aux_a)
{
    amm_trace_event ev = ve_make(s, op, addr, size, aux_a, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_resize(ve_stream *s, unsigned op, uint64_t new_user, uint64_t size, uint32_t front,
                             uint64_t old_user, uint64_t old_size)
{
    amm_trace_event ev = ve_make(s, op, new_user, size, front, 0);
    ve_args(&ev, old_user, old_size, 0, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_fault(ve_stream *s, unsigned kind, uint64_t ptr, uint64_t block, uint64_t block_size,
                            long long offset, uint32_t bytes)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_FAULT, ptr, block_size, kind, bytes);
    ve_args(&ev, block, (uint64_t)offset, 0, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_sample(ve_stream *s, uint64_t live, uint64_t reserved, uint32_t frag_ppm, uint32_t blocks)
{
    amm_trace_event ev = ve_make(s, AMM_TOP_SAMPLE, live, reserved, frag_ppm, blocks);
    ve_args(&ev, reserved / 2, reserved - live, 0, 0);
    vm_model_apply(s->m, &ev);
}

static inline void ve_defrag(ve_stream *s, unsigned op, uint64_t reserved, uint64_t free_bytes, uint32_t frag_ppm)
{
    amm_trace_event ev = ve_make(s, op, reserved, free_bytes, AMM_DEFRAG_ALL, frag_ppm);
    ve_args(&ev, free_bytes, reserved, 0, 0);
    vm_model_apply(s->m, &ev);
}

#endif /* AMM_TESTS_VIZ_EVENTS_H */
