/*
 * ingest.h - amm-viz's trace sources and the event store they fill.
 *
 * A source (a file, followed as it grows; stdin; or a Unix socket server that
 * accepts one writer after another) is parsed by the trace reader on its own
 * thread.  Events go, in batches and under a lock, into a store: chunks of
 * VZ_CHUNK compact events addressed by an absolute index (0 = the first event
 * ever received).  The render thread copies ranges out (vz_read) and applies
 * them to its model at its own pace, so a fast trace never freezes the window.
 *
 * The store keeps at most max_events events; older chunks are freed once the
 * consumer has applied past them (vz_set_consumed).  If the consumer is
 * behind and the store is full, the ingest thread waits (back-pressure: a
 * socket writer then counts drops, which the viewer shows).
 *
 * When a second stream starts (a new connection), a VM_OP_STREAM_START
 * pseudo-event is stored first, so the model clears its heap.
 */
#ifndef AMM_VIZ_INGEST_H
#define AMM_VIZ_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define VZ_CHUNK 65536u

typedef enum vz_source_kind { VZ_SRC_FILE, VZ_SRC_STDIN, VZ_SRC_LISTEN, VZ_SRC_NONE } vz_source_kind;

typedef struct vz_ingest vz_ingest;

typedef struct vz_stat {
    uint64_t base, count;        /* events retained: [base, count) */
    uint64_t dropped;            /* records the writer(s) reported dropped */
    uint64_t damaged;            /* damage reports (resyncs) */
    uint64_t damage_offset;      /* byte offset of the latest damage */
    uint64_t bytes;              /* bytes consumed from the current stream */
    uint64_t unknown;            /* records of unknown ops skipped */
    uint64_t streams;            /* streams (connections, files) opened */
    int connected;               /* a stream is open now */
    int finished;                /* the source ended (file/stdin at END, fatal error) */
    int failed;                  /* it ended on an error: unreadable, not a trace, cannot open */
    int waiting;                 /* the ingest thread waits for the consumer (store full) */
    char message[256];           /* latest error or notice, "" if none */
} vz_stat;

/*
 * Creates an ingest for a source: FILE path (follow: keep reading as the file
 * grows), STDIN, or LISTEN path (creates the socket; fails if it cannot).
 * max_events 0 = default (2M).  NULL with err filled on failure.
 */
vz_ingest *vz_ingest_new(vz_source_kind kind, const char *path, int follow, uint64_t max_events, char *err,
                         size_t err_len);
/* Starts the reading thread.  0, or -1 (err filled). */
int vz_ingest_start(vz_ingest *g, char *err, size_t err_len);
/* Reads the whole source on the calling thread until it ends (not for LISTEN).
 * Nothing consumes meanwhile, so max_events must hold the whole source. */
void vz_ingest_run_sync(vz_ingest *g);
/* Stops the thread (if any), closes the source, frees everything (removes the socket file). */
void vz_ingest_free(vz_ingest *g);

/* Copies events [from, from+max) that are retained into out; returns how many. */
size_t vz_read(vz_ingest *g, uint64_t from, vm_event *out, size_t max);
/* Fills ev for a stored event, including a SITE event's text.  Same as vz_read for one event. */
void vz_event_expand(vz_ingest *g, const vm_event *in, amm_trace_event *out);
/* The consumer applied everything below idx: chunks below it may be freed. */
void vz_set_consumed(vz_ingest *g, uint64_t idx);
void vz_get_stat(vz_ingest *g, vz_stat *out);

/* Appends one event as if read from the source (tests, the benchmark; one producer
 * thread at a time, and not while the ingest thread runs).  vz_flush publishes
 * what vz_push batched. */
void vz_push(vz_ingest *g, const amm_trace_event *ev);
void vz_flush(vz_ingest *g);

#endif /* AMM_VIZ_INGEST_H */
