/*
 * shmbus_private.h - what libshmbus lends its own programs beyond
 * include/shmbus.h, as libbpf's libbpf_internal.h does for bpftool.
 *
 * shmbusd (daemon/) includes it; the shmbus command (cli/) needs none of
 * it and uses include/shmbus.h alone.  It is not installed, and what it
 * declares is exported neither from libshmbus.so nor from the installed
 * libshmbus.a: the programs of this tree link build/libshmbus-internal.a,
 * which keeps it (Makefile).  Everything else of lib/
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
 *  - DAEMON_STATS: struct shmbus_daemon_stats travels in STATUS replies
 *    (the daemon encodes, the library decodes) and in the counters file
 *    (the daemon writes, the library reads): one list of its fields with
 *    their attribute and word keeps the four translations in step.
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

/*
 * Each counter of struct shmbus_daemon_stats: X(field, attribute, word)
 * with its CTL_A_<attribute> (shm/ctlproto.h) and its word of struct
 * ctr_daemon (shm/counters.h).  lib/counters.c checks that it names every
 * field.
 */
#define DAEMON_STATS(X)                                                      \
	X(ticks, TICKS, ticks)                                               \
	X(clients_gone, CLIENTS_GONE, clients_gone)                          \
	X(unblocked, UNBLOCKED, unblocked)                                   \
	X(unblocked_offsets, UNBLOCKED_OFFSETS, unblocked_offsets)           \
	X(retention_moves, RETENTION_MOVES, retention_moves)                 \
	X(retired, RETIRED, retired)                                         \
	X(flushes, FLUSHES, flushes)                                         \
	X(flush_errors, FLUSH_ERRORS, flush_errors)                          \
	X(control_requests, CONTROL_REQUESTS, control_requests)              \
	X(control_errors, CONTROL_ERRORS, control_errors)                    \
	X(topics_created, TOPICS_CREATED, topics_created)                    \
	X(topics_deleted, TOPICS_DELETED, topics_deleted)                    \
	X(recovery.partitions, RECOVERY_PARTITIONS, rec_partitions)          \
	X(recovery.recovered, RECOVERY_RECOVERED, rec_recovered)             \
	X(recovery.in_use, RECOVERY_IN_USE, rec_in_use)                      \
	X(recovery.failed, RECOVERY_FAILED, rec_failed)                      \
	X(recovery.frames, RECOVERY_FRAMES, rec_frames)                      \
	X(recovery.aborted, RECOVERY_ABORTED, rec_aborted)                   \
	X(recovery.cut, RECOVERY_CUT, rec_cut)                               \
	X(recovery.cut_bytes, RECOVERY_CUT_BYTES, rec_cut_bytes)             \
	X(recovery.rebuilt, RECOVERY_REBUILT, rec_rebuilt)

#endif
