/*
 * groups.h - committed offsets of a consumer group, in the file
 * <root>/groups/<group> (format.md §10).
 *
 * An open-addressing table keyed by {topic id, partition}.  Members
 * commit straight into shared memory: a commit is one release store.
 * Each entry carries the group generation of its last commit, so a
 * coordinator (shmbusd) can fence members it has replaced.
 */
#ifndef SHMBUS_SHM_GROUPS_H
#define SHMBUS_SHM_GROUPS_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"

#define GROUP_MAGIC   0x3170726762686d73ULL /* "shmbgrp1" */
#define GROUP_VERSION 1u
#define GROUP_SLOTS   16384u
#define GROUP_HEADER_SIZE 4096u
#define GROUP_PARTITION_BITS 20 /* key = topic id << 20 | partition */

struct group_slot {
	uint64_t key;        /* 0: free */
	uint64_t offset;     /* next offset to consume */
	int64_t commit_ns;   /* CLOCK_REALTIME of the commit */
	uint64_t generation; /* group generation of the committer */
};
_Static_assert(sizeof(struct group_slot) == 32, "group slot is 32 bytes");

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
	/* [512, 640): the generation fence set by a coordinator (0: none) */
	uint64_t generation;
	uint8_t pad1[120];
	uint8_t reserved[GROUP_HEADER_SIZE - 640];
};
_Static_assert(sizeof(struct group_header) == GROUP_HEADER_SIZE, "group header is a page");
SHM_IDENT_ASSERT(struct group_header);
_Static_assert(offsetof(struct group_header, generation) == 512, "generation at 512");

struct group_file {
	struct group_header *hdr;
	struct group_slot *slots;
	uint32_t nslots;
	size_t map_len;
};

/* Open (and with `create`, make) the group file `name` in `dirfd`. */
int group_open(int dirfd, const char *name, bool create, struct group_file *ret);
void group_close(struct group_file *g);

/*
 * Commit `offset` for {topic_id, partition} as of group generation `gen`
 * (0 when no coordinator fences the group).  -ESTALE if the group has
 * moved to a newer generation than `gen`; -ENOSPC if the table is full.
 */
int group_commit(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t offset,
		 uint64_t gen);

/* The committed offset, or -ENOENT. */
int group_fetch(const struct group_file *g, uint64_t topic_id, uint32_t partition,
		uint64_t *ret_offset, int64_t *ret_commit_ns);

/* Visit every committed entry; stop early if fn returns non-zero. */
int group_foreach(const struct group_file *g,
		  int (*fn)(void *ctx, uint64_t topic_id, uint32_t partition, uint64_t offset,
			    int64_t commit_ns),
		  void *ctx);

#endif
