/*
 * slothash.h - where a (topic, partition) key starts its linear probe in
 * the slot tables of the group files and the counters file (format.md
 * §10, §12): a 64-bit mix (MurmurHash3's finalizer, first half), so that
 * the consecutive keys of one topic's partitions spread over the table.
 * Every process must agree on it: it is part of both file formats.
 */
#ifndef SHMBUS_SHM_SLOTHASH_H
#define SHMBUS_SHM_SLOTHASH_H

#include <stdint.h>

static inline uint32_t slot_hash(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (uint32_t)key;
}

#endif
