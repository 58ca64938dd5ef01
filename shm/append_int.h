/*
 * append_int.h - the steps of the append protocol (format.md §4) that a
 * second kind of writer reuses: replica.c appends frames received from a
 * mirror's source, whole, with the same claim, mark and publish steps as
 * part_append(), so readers, the unblocker and recovery see nothing new.
 * Private to shm/.
 */
#ifndef SHMBUS_SHM_APPEND_INT_H
#define SHMBUS_SHM_APPEND_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "append.h"

/* A claim as planned and won (step 1 and 3). */
struct plan {
	uint64_t pos;   /* claim start: the tail before */
	uint64_t pad;   /* PADDING bytes at pos, 0 if none */
	uint64_t start; /* first frame */
	uint64_t off;   /* first offset */
	uint64_t end;   /* new tail */
	size_t k;       /* frames claimed */
	uint64_t offs;  /* offsets claimed: k, or more for one aborted range */
	bool grow;      /* the last frame is 8 bytes longer than its content */
};

/*
 * Steps 1-3: claim room for up to n frames of lens[] bytes (the last may
 * grow by 8: lens[] is updated).  offs 0: the claim takes one offset per
 * frame; else n is 1 and the claim takes `offs` offsets (an aborted range
 * of lens[0] >= 8 * offs bytes, format.md §6 step 4).
 */
int append_claim(struct part_writer *w, uint64_t *lens, size_t n, uint64_t offs, unsigned flags,
		 int64_t deadline_ns, struct plan *pl);

/* Step 4: mark the claimed frames CLAIMED and index them; false if an
 * unblocker aborted the claim first. */
bool append_mark(struct part *p, const struct plan *pl, const uint64_t *lens);

/* Step 5 for one frame: CLAIMED -> COMMITTED; false if aborted first. */
bool append_commit_frame(struct part *p, uint64_t pos, uint64_t off, uint64_t len);

/* Abort our own CLAIMED frame of `len` bytes at pos for offset off: the
 * range ends at offset `end` (off + 1 for one frame). */
void append_abort_range(struct part *p, uint64_t pos, uint64_t off, uint64_t len, uint64_t end);

/* Step 6: the writer's claim is resolved; others may lap its position. */
void append_idle(struct part_writer *w);

#endif
