/*
 * shmbus_private.h - what libshmbus lends its own programs beyond
 * include/shmbus.h, as libbpf's libbpf_internal.h does for bpftool.
 *
 * shmbusd (daemon/) includes it; the shmbus command (cli/) needs none of
 * it and uses include/shmbus.h alone.  It is not installed, and what it
 * declares is not exported from libshmbus.so.  Everything else of lib/
 * (lib/internal.h: struct shmbus, struct pmap, the daemon link) stays
 * private to lib/; the daemon opens the root's directories and maps the
 * bus file itself (daemon/main.c).
 *
 * Why each exists:
 *  - cache_get, cache_put, pmap_part: the daemon supervises each
 *    partition through the bus's per-process cache of mappings, not a
 *    mapping of its own.  The cache holds the partition's shared usage
 *    lock (format.md §11) and releases a mapping only after an RCU grace
 *    period once the last reference is dropped, which is what lets the
 *    metrics thread read partitions while topics are deleted.
 *  - pmap_recover: start-up recovery needs the partition's exclusive
 *    usage lock.  It must be taken by converting the shared lock the
 *    cache holds, on the same open file: a lock taken through another fd
 *    would conflict with this process's own.
 *
 * The shm/ headers the daemon includes, each for a shared format or
 * protocol it supervises or serves: directory.h (the bus file: its
 * daemon block, the topic table), partition.h, append.h, read.h,
 * unblock.h (partitions: stalled claims, retention, flushing),
 * recover.h (start-up recovery's report), counters.h (the counters file
 * it writes), groups.h (committed offsets it exports), ctlproto.h (the
 * control socket's codec and address); and three helpers: clock.h,
 * proc.h (pids and start times) and error.h (the thread's error message
 * that shmbus_errmsg() returns).
 */
#ifndef SHMBUS_LIB_PRIVATE_H
#define SHMBUS_LIB_PRIVATE_H

#include <stdint.h>

#include "shmbus.h"

struct bus_topic;       /* shm/directory.h */
struct part;            /* shm/partition.h */
struct part_recovery;   /* shm/recover.h */

/* A partition mapped through the bus's cache (lib/cache.c). */
struct pmap;

/*
 * Map (or find mapped) partition `partition` of topic t, as listed by
 * the bus file, and take a reference: 0, -EIDRM if the topic was deleted
 * or recreated meanwhile, or -errno, with a message.  Safe from any
 * thread.
 */
int cache_get(shmbus *bus, const struct bus_topic *t, uint32_t partition, struct pmap **ret);

/* Drop a reference; the mapping outlives the last one by an RCU grace
 * period.  NULL is a no-op. */
void cache_put(struct pmap *m);

/* The mapped partition, valid while the reference is held. */
struct part *pmap_part(struct pmap *m);

/*
 * Run the recovery scan (shm/recover.h) on a partition no other process
 * has mapped: this process's shared usage lock becomes the exclusive one
 * for the scan, then shared again.  -EBUSY (without a message) when
 * another process has it mapped; else part_recover's return.
 */
int pmap_recover(shmbus *bus, struct pmap *m, struct part_recovery *ret);

#endif
