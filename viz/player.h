/*
 * player.h - the model at a cursor over the event store, with seeking.
 *
 * The player applies stored events to its model in bounded slices
 * (vp_advance) and keeps checkpoints: deep copies of the model taken every
 * `interval` events.  Seeking back restores the nearest checkpoint at or
 * before the target and replays forward, so any point costs at most one
 * copy plus `interval` applies.  The interval grows with the heap (at least
 * 4 events per live block) and checkpoints are thinned (every other one
 * dropped) when they exceed the memory budget, so memory stays bounded.
 * The store frees applied events beyond its budget (see ingest.h), so
 * seeking back reaches as far as the oldest checkpoint it still holds events
 * for: at least the store's max_events most recent events.
 */
#ifndef AMM_VIZ_PLAYER_H
#define AMM_VIZ_PLAYER_H

#include "ingest.h"
#include "model.h"

typedef struct vp_checkpoint {
    uint64_t index;   /* store index of the next event to apply after restoring */
    vm_model model;
} vp_checkpoint;

typedef struct vp_player {
    vz_ingest *src;
    vm_model model;
    uint64_t cursor;          /* store index of the next event to apply */
    vp_checkpoint *cps;
    size_t ncps, cap_cps;
    uint64_t interval;        /* minimum events between checkpoints */
    size_t budget;            /* bytes all checkpoints may hold */
    vm_event *buf;            /* scratch for vz_read */
    size_t buf_cap;
    int fault_hit;            /* set by vp_advance when it stopped after a FAULT */
    unsigned stop_op;         /* with stop_count > 0: vp_advance stops right after the */
    uint64_t stop_count;      /* stop_count-th event of op stop_op (then stop_hit = 1) */
    int stop_hit;
} vp_player;

int vp_init(vp_player *p, vz_ingest *src, const vm_limits *lim);
void vp_free(vp_player *p);

#define VP_STOP_AT_FAULT 0x1u
/*
 * Applies up to max events from the cursor (fewer if the store has fewer).
 * With VP_STOP_AT_FAULT, stops right after a FAULT event (fault_hit = 1).
 * until_seq != UINT64_MAX: stops before the first event whose seq exceeds it.
 * Returns the number applied.
 */
size_t vp_advance(vp_player *p, uint64_t max, unsigned flags, uint64_t until_seq);
/* Moves the cursor to target (clamped to what can be reached).  0, or -1 if refused. */
int vp_seek(vp_player *p, uint64_t target);
/* Store index just after the event with this seq (binary search; seqs ascend in a stream). */
uint64_t vp_index_after_seq(vp_player *p, uint64_t seq);
/* Store index just after the next FAULT at or after the cursor, or UINT64_MAX if none is stored. */
uint64_t vp_next_fault(vp_player *p);
/* Bytes held by checkpoints. */
size_t vp_checkpoint_bytes(const vp_player *p);

#endif /* AMM_VIZ_PLAYER_H */
