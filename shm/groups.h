/*
 * groups.h - committed offsets of a consumer group, in the file
 * <root>/groups/<group> (format.md §10).
 *
 * An open-addressing table keyed by {topic id, partition}.  Members
 * commit straight into shared memory.  Each entry pairs its offset with
 * the owner epoch of the partition (format.md §10): the coordinator
 * (shmbusd, daemon/coordinator.c) writes a new owner epoch when it hands
 * the partition to a member, and a member's commit is a 16-byte CAS that
 * expects its own, so a member that was replaced can never overwrite its
 * successor's commit.
 */
#ifndef SHMBUS_SHM_GROUPS_H
#define SHMBUS_SHM_GROUPS_H

#include <stdbool.h>
#include <stdint.h>

#include "../util/atomics.h"
#include "format.h"

#define GROUP_MAGIC   0x3170726762686d73ULL /* "shmbgrp1" */
#define GROUP_VERSION 2u /* 2: {offset, owner epoch} pairs, the coordinator's words */
#define GROUP_SLOTS   16384u
#define GROUP_HEADER_SIZE 4096u
#define GROUP_PARTITION_BITS 20 /* key = topic id << 20 | partition */

struct group_slot {
	uint64_t key;        /* 0: free */
	int64_t commit_ns;   /* CLOCK_REALTIME of the commit; 0: none yet */
	pair128 fenced;      /* lo: next offset to consume, hi: owner epoch (0: none) */
};
_Static_assert(sizeof(struct group_slot) == 32, "group slot is 32 bytes");
_Static_assert(offsetof(struct group_slot, fenced) == 16, "the fenced pair is 16-aligned");

struct group_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint64_t endian;
	uint32_t word_size;
	uint32_t nslots;
	uint64_t file_size;
	int64_t created_ns;
	char name[PART_NAME_MAX + 1];
	uint8_t pad0[512 - 48 - (PART_NAME_MAX + 1)];
	/* [512, 640): written by the coordinator only (format.md §10) */
	uint64_t epoch;      /* the group epoch (0: never coordinated) */
	uint32_t wake;       /* bumped, then futex-woken, at each epoch */
	uint32_t members;    /* live members */
	uint8_t pad1[112];
	uint8_t reserved[GROUP_HEADER_SIZE - 640];
};
_Static_assert(sizeof(struct group_header) == GROUP_HEADER_SIZE, "group header is a page");
SHM_IDENT_ASSERT(struct group_header);
_Static_assert(offsetof(struct group_header, epoch) == 512, "epoch at 512");
_Static_assert(offsetof(struct group_header, wake) == 520, "wake at 520");

struct group_file {
	struct group_header *hdr;
	struct group_slot *slots;
	uint32_t nslots;
	size_t map_len;
	bool readonly;       /* mapped read-only (no write permission) */
};

/* Open (and with `create`, make) the group file `name` in `dirfd`. */
int group_open(int dirfd, const char *name, bool create, struct group_file *ret);
void group_close(struct group_file *g);

/*
 * Commit `offset` for {topic_id, partition} as the owner of `epoch`: a
 * CAS that succeeds only while the entry's owner epoch is `epoch`.
 * Epoch 0 is a manual (unfenced) commit, refused once a coordinator has
 * taken the group.  -ESTALE (with a message) when fenced out; -ENOSPC if
 * the table is full.
 */
int group_commit(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t offset,
		 uint64_t epoch);

/* The coordinator's operations (daemon/coordinator.c), format.md §10. */

/* Make `epoch` the owner epoch of {topic_id, partition}, keeping its
 * offset: the previous owner's commits fail from now on.  0 or -ENOSPC. */
int group_fence(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t epoch);

/* Set the committed offset whoever owns it (reset-offsets).  0 or -ENOSPC. */
int group_reset(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t offset);

/*
 * The partition's log was cut back to `end` (format.md §10, §14): an
 * offset committed past it goes back to it, by the same 16-byte CAS,
 * keeping the owner epoch (the owner's next commit goes through); never
 * forward.  1 with the offset it had in *ret_old, 0 if it was at or
 * below end or never committed, -EBUSY (with a message) if the CAS raced
 * without end.
 */
int group_cut_back(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t end,
		   uint64_t *ret_old);

/* Publish the group epoch and member count, and wake members sleeping
 * in poll on the wake word. */
void group_publish(struct group_file *g, uint64_t epoch, uint32_t members);

/* The owner epoch of an entry (0: none). */
uint64_t group_owner(const struct group_file *g, uint64_t topic_id, uint32_t partition);

/* The word a member sleeps on beside its partitions' (futex), and its value now. */
uint32_t *group_wake_word(struct group_file *g);
uint64_t group_epoch(const struct group_file *g);

/* The largest epoch the file holds (the header's or an owner's): a
 * coordinator that takes the group over starts above it. */
uint64_t group_max_epoch(const struct group_file *g);

/* The committed offset, or -ENOENT. */
int group_fetch(const struct group_file *g, uint64_t topic_id, uint32_t partition,
		uint64_t *ret_offset, int64_t *ret_commit_ns);

/* Visit every committed entry; stop early if fn returns non-zero. */
int group_foreach(const struct group_file *g,
		  int (*fn)(void *ctx, uint64_t topic_id, uint32_t partition, uint64_t offset,
			    int64_t commit_ns),
		  void *ctx);

#endif
