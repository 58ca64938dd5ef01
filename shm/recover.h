/*
 * recover.h - rebuilding a partition's claim word and index from its data
 * after crashes or damage (format.md §8).
 */
#ifndef SHMBUS_SHM_RECOVER_H
#define SHMBUS_SHM_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "partition.h"

struct part_recovery {
	uint64_t old_tail, old_next;  /* claim word found */
	uint64_t new_tail, new_next;  /* claim word written */
	uint64_t first_off;           /* lowest readable offset after recovery */
	uint64_t frames;              /* committed frames checked: offsets, lengths, CRC */
	uint64_t aborted;             /* offsets of dead claims turned into aborts */
	uint64_t cut;                 /* offsets cut at the tail */
	uint64_t cut_bytes;           /* bytes cut at the tail */
	bool rebuilt;                 /* claim word or index unusable: rebuilt by a full scan */
	char reason[200];             /* why the tail was cut; "" if nothing was */
};

/*
 * Scan the partition from its lowest readable offset, check every frame
 * (offset continuity, lengths, CRC32C, record headers), turn claims whose
 * producers died into aborts, rebuild the index and the claim word, and
 * cut the tail at the first invalid frame.  Offsets never go back: a cut
 * leaves an aborted range up to the old end, so consumers positioned past
 * the cut resume at the next new record.
 *
 * The caller must hold the partition exclusively (no producer appending):
 * the daemon at start-up, or `shmbus recover` under the root's lock.
 * Returns 0 with *r filled, or -errno.
 */
int part_recover(struct part *p, struct part_recovery *r);

/*
 * Set the status word right against the bus directory (format.md §2,
 * §8).  `live`: the partition belongs to a topic of the directory (same
 * id), and its word must be exactly `want` (bus_topic_status()): a
 * DELETED bit, a REPLICA bit the topic lacks (or the reverse) or a bit no
 * version defines is damage.  Not live: its topic was deleted (or
 * recreated under a new id), and DELETED is set if it is missing.
 *
 * One compare-and-swap: it needs no exclusive hold of the partition, only
 * the root's admin lock, which deletion takes as well, so a topic being
 * deleted is never unmarked.  Returns 0 with *ret_old the word found (it
 * now holds what it should), or -EROFS on a read-only mapping.
 */
int part_status_repair(struct part *p, bool live, uint64_t want, uint64_t *ret_old);

#endif
