/*
 * backpressure.h - the registry of consumers producers must not
 * overwrite (format.md §5), in the partition header's consumer slots.
 */
#ifndef SHMBUS_SHM_BACKPRESSURE_H
#define SHMBUS_SHM_BACKPRESSURE_H

#include <stdint.h>

#include "partition.h"

/*
 * Backpressure registry (format.md §5): a consumer registers the oldest
 * position it still uses; producers never overwrite it.  Returns the slot
 * index or -ENOSPC (all slots taken), -ERANGE (pos already overwritten).
 */
int part_bp_register(struct part *p, uint64_t pos, uint64_t off, const char *name);
void part_bp_update(struct part *p, int slot, uint64_t pos, uint64_t off);
void part_bp_unregister(struct part *p, int slot);

/* Free the slots of consumers whose processes are gone; returns how many. */
int part_bp_reap(struct part *p);

/* The process registered in consumer slot i, or 0. */
uint32_t part_bp_pid(const struct part *p, int i);

/* Who holds producers back: the registered consumer at the oldest position. */
struct part_bp_holder {
	uint32_t pid;
	uint64_t offset;       /* the next offset it reads */
	char name[24];         /* its label, NUL-terminated, printable */
};

/* Copy the registered consumer with the oldest position into *ret; -ENOENT
 * if none is registered.  For messages only: its slot may change meanwhile. */
int part_bp_holder(struct part *p, struct part_bp_holder *ret);

/* The tail producers may reach without overwriting a registered
 * consumer (PART_POS_MAX if none is registered); *gen gets the registry
 * generation it was computed in (format.md §5 step 2). */
uint64_t part_bp_scan(struct part *p, uint64_t *gen);

#endif
