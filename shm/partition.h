/*
 * partition.h - a partition file as one process sees it: create, map,
 * validate, unmap.  The append and read algorithms over a mapped
 * partition are in append.h and read.h.
 */
#ifndef SHMBUS_SHM_PARTITION_H
#define SHMBUS_SHM_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "format.h"

/* A mapped partition.  Geometry is copied out of the header once, after
 * validation, so a later scribble over the header cannot move a bounds
 * check. */
struct part {
	struct part_header *hdr;
	uint64_t *index;
	uint8_t *data;
	uint64_t cap, mask;      /* data ring */
	uint64_t icap, imask;    /* offset index */
	uint64_t max_frame;
	uint32_t policy;
	uint64_t epoch;
	uint64_t topic_id;
	uint32_t partition;
	size_t map_len;
	bool readonly;
	bool on_tmpfs;
	/* the horizon is kept (format.md §2): version 2, either policy;
	 * else producers leave it and readers use the tail */
	bool horizon;
	uint64_t horizon_step;   /* how far past a claim producers raise it */
};

struct part_params {
	const char *topic;
	uint64_t topic_id;
	uint32_t partition;
	uint64_t capacity;        /* data ring bytes: a power of two */
	uint64_t index_capacity;  /* 0: part_default_icap(capacity) */
	uint32_t policy;          /* enum part_policy */
	int32_t numa_node;        /* -1: local to the creating thread */
	mode_t mode;              /* file mode, e.g. 0660 */
	uint64_t status;          /* PART_STATUS_REPLICA for a mirror's replica, else 0 */
};

/* Default index slots for a ring: one per 64 bytes of data. */
uint64_t part_default_icap(uint64_t capacity);

/* Bytes a partition file takes on its filesystem. */
uint64_t part_file_size(uint64_t capacity, uint64_t icap);

/* Check params; 0 or -EINVAL with a message. */
int part_params_check(const struct part_params *prm);

/*
 * Create the partition file `name` in `dirfd`, whole (fallocate), bound
 * to the NUMA node if one is given, and map it.  The file appears under
 * its name only once fully initialised.  -ENOSPC if the filesystem
 * cannot hold it; -EEXIST if it exists.
 */
int part_create(int dirfd, const char *name, const struct part_params *prm,
		struct part *ret);

/* Map and validate an existing partition file; pre-faults the mapping.
 * `label` names the file in error messages. */
int part_open(int dirfd, const char *name, bool readonly, const char *label,
	      struct part *ret);

/* Map an open file descriptor (not consumed). */
int part_map_fd(int fd, bool readonly, const char *label, struct part *ret);

/* Check a header against the size of its file; 0 or -EBADMSG/-EPROTO with
 * a message naming `label` and the fix. */
int part_header_check(const struct part_header *h, uint64_t file_size, const char *label);

void part_unmap(struct part *p);

static inline uint8_t *part_at(const struct part *p, uint64_t pos)
{
	return p->data + (pos & p->mask);
}

static inline uint64_t *part_commit_word(const struct part *p, uint64_t pos)
{
	return (uint64_t *)(void *)part_at(p, pos);
}

static inline bool part_deleted(const struct part *p)
{
	return load_relaxed(&p->hdr->status) & PART_STATUS_DELETED;
}

static inline bool part_is_replica(const struct part *p)
{
	return load_relaxed(&p->hdr->status) & PART_STATUS_REPLICA;
}

/* Set or clear REPLICA in the status word (a topic a mirror takes over,
 * or a promoted replica), under the root's admin lock, after the bus
 * directory's flag (format.md §2): producers get -EROFS from now on, or
 * may append again. */
void part_set_replica(struct part *p, bool on);

/* Mark the partition deleted: producers and consumers get -EIDRM. */
void part_mark_deleted(struct part *p);

#endif
