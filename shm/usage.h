/*
 * usage.h - who has a partition mapped (format.md §11).
 *
 * Every process that maps a partition holds a shared open-file-description
 * lock on one byte of <root>/usage (at topic_id << 20 | partition); the
 * kernel drops it when the process exits, however it exits.  Recovery,
 * which rewrites a partition's claim word and index, needs the exclusive
 * lock: it runs only when no other process has the partition mapped, and
 * processes that map it meanwhile wait until it is done.
 */
#ifndef SHMBUS_SHM_USAGE_H
#define SHMBUS_SHM_USAGE_H

#include <stdint.h>

/* Open (creating) <rootfd>/usage; returns an fd or -errno. */
int usage_open(int rootfd);

/* Take the shared lock of a partition, waiting while one is recovered. */
int usage_hold(int fd, uint64_t topic_id, uint32_t partition);

/* Drop this process's lock of a partition. */
void usage_release(int fd, uint64_t topic_id, uint32_t partition);

/* The exclusive lock, if no other process holds the partition: 0 or
 * -EBUSY.  Turns this process's own shared lock into it. */
int usage_try_exclusive(int fd, uint64_t topic_id, uint32_t partition);

/* Back to the shared lock after usage_try_exclusive(). */
void usage_share(int fd, uint64_t topic_id, uint32_t partition);

#endif
