/*
 * group_cut.h - consumer groups' committed offsets past a partition's cut
 * end (format.md §10, §14): moved back to the new end, as Kafka resets
 * an offset out of range, so that no group skips the records the new
 * log puts there.
 */
#ifndef SHMBUSD_GROUP_CUT_H
#define SHMBUSD_GROUP_CUT_H

#include <stdint.h>

struct daemon;

/*
 * Partition `partition` of `topic` (id topic_id) now ends at `end`: every
 * group's committed offset for it above `end` goes back to `end` (never
 * forward), each move logged.  Safe from any thread (a mirror's, or the
 * loop at start-up).  How many offsets were moved.
 */
unsigned groups_cut_back(struct daemon *d, const char *topic, uint64_t topic_id,
			 uint32_t partition, uint64_t end);

/* Offsets moved back since shmbusd started (for the metrics). */
uint64_t groups_cut_moved(void);

#endif
