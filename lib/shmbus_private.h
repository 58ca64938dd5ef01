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
 *  - admin_replica_create: a mirror creates its replica topics with the
 *    REPLICA flag no public call sets (mirror_sink.c).
 *  - admin_replica_convert, admin_replica_promote: the flag set on a
 *    topic a mirror takes over, and cleared by promote, with the
 *    partitions' epochs (lib/replicas.c).
 *  - admin_topic_create, admin_topic_delete, admin_topic_grow,
 *    admin_sweep: shmbusd's
 *    worker creates, deletes and grows topics for its clients with the same
 *    code as the embedded mode, under the root's admin lock, with hooks
 *    to stop a long create at SIGTERM and to log half-made topics it
 *    removes.
 *  - topic_status_repair, topic_status_repair_try, topic_status_faults,
 *    status_repair_text: start-up recovery, and the tick while shmbusd
 *    runs, set a partition's status word right from the bus directory
 *    under the admin lock, and log what they repaired in the library's
 *    words.
 *  - DAEMON_STATS: struct shmbus_daemon_stats travels in STATUS replies
 *    (the daemon encodes, the library decodes) and in the counters file
 *    (the daemon writes, the library reads): one list of its fields with
 *    their attribute and word keeps the four translations in step.
 *
 * The shm/ headers the daemon includes, each for a shared format or
 * protocol it supervises or serves, whose words it touches only through
 * their named operations (docs/design-notes.md, "Layers"): directory.h
 * (the bus file: its daemon block, the topic table), partition.h,
 * append.h, read.h, unblock.h (partitions: stalled claims through the
 * writers' slots, retention, flushing), stats.h (the statistics it
 * exports), recover.h (start-up recovery's report), counters.h (the
 * counters file it writes), groups.h (committed offsets it exports); and
 * helpers of util/: ctlproto.h (the control socket's codec and address),
 * shareddir.h, clock.h, proc.h (pids and start times) and error.h (the
 * thread's error message that shmbus_errmsg() returns).
 */
#ifndef SHMBUS_LIB_PRIVATE_H
#define SHMBUS_LIB_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "shmbus.h"

struct bus_topic;       /* shm/directory.h */
struct part;            /* shm/partition.h */
struct part_recovery;   /* shm/recover.h */
struct shmbus_topic_opts;

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

/* What shmbusd gives the admin calls below (NULL: nothing). */
struct admin_hooks {
	const int *stop;        /* non-zero: give up with -ECANCELED, removing what was
				 * made (checked between partitions and while waiting
				 * for the lock) */
	/* a half-made topic was removed (left by an interrupted create) */
	void (*swept)(void *ctx, const char *name, uint64_t files, uint64_t bytes);
	/* files past topic `name`'s partitions were removed (left by an
	 * interrupted grow, format.md §9) */
	void (*swept_grow)(void *ctx, const char *name, uint64_t files, uint64_t bytes);
	void *ctx;
};

/*
 * Create or delete a topic here, under the admin lock: what
 * shmbus_topic_create/delete do when no daemon serves the root, and what
 * shmbusd's worker does for its clients (topics.c).  Both first remove
 * every half-made topic; create checks the filesystem has room for all
 * its files before it makes one; delete of a half-made topic's name
 * removes it and returns 0.
 */
int admin_topic_create(shmbus *bus, const char *name, const struct shmbus_topic_opts *o,
		       const struct admin_hooks *h);
int admin_topic_delete(shmbus *bus, const char *name, const struct admin_hooks *h);

/*
 * Give topic `name` `count` partitions here, under the admin lock: what
 * shmbus_topic_add_partitions does without a daemon, and shmbusd's worker
 * for its clients.  Removes half-made topics and a killed grow's files
 * first; with validate_only, checks and makes nothing.
 */
int admin_topic_grow(shmbus *bus, const char *name, uint32_t count, bool validate_only,
		     const struct admin_hooks *h);

/*
 * Create a mirror's replica topic (shmbusd's mirror_sink.c): as
 * admin_topic_create, with the topic entry's BUS_TOPIC_REPLICA flag and
 * its partitions' REPLICA status (format.md §13), so producers are
 * refused with a message naming `source` ("NAME (HOST:PORT)").
 */
int admin_replica_create(shmbus *bus, const char *name, const struct shmbus_topic_opts *opts,
			 const char *source, const struct admin_hooks *h);

/*
 * A topic becomes a mirror's replica (shmbusd's mirror_sink.c, when its
 * source continues this host's log: it was promoted in this host's
 * place), or a replica stops being one (shmbus mirror promote): the
 * topic entry's BUS_TOPIC_REPLICA flag, then every partition's REPLICA
 * status, under the admin lock (lib/replicas.c).  Promote first gives
 * each partition a new epoch from its end (format.md §14): *out[i] for
 * partition i (max at least the topic's partitions).  Convert returns 0,
 * promote the partitions promoted; or -errno with a message (-EINVAL: not
 * a replica).
 */
struct admin_promoted {
	uint32_t partition;
	uint64_t epoch;             /* its new epoch */
	uint64_t from;              /* the first offset under it: the replica's end */
};

int admin_replica_convert(shmbus *bus, const char *name, const char *source);
int admin_replica_promote(shmbus *bus, const char *name, struct admin_promoted *out, size_t max);

/* Remove the half-made topics (shmbusd at start); how many, or -errno. */
int admin_sweep(shmbus *bus, const struct admin_hooks *h);

/*
 * Check the status word of partition m of topic `topic` against the bus
 * directory (format.md §2, §8), under the root's admin lock, and set it
 * right: *ret_repaired gets the SHMBUS_REPAIRED_* bits of what was wrong.
 * 0, or -errno (-EROFS: mapped read-only).
 */
int topic_status_repair(shmbus *bus, const char *topic, struct pmap *m, uint32_t *ret_repaired);

/* The same without waiting for the admin lock (shmbusd's tick must not
 * wait on a create or delete that holds it): -EWOULDBLOCK if it is held,
 * to be tried again later. */
int topic_status_repair_try(shmbus *bus, const char *topic, struct pmap *m,
			    uint32_t *ret_repaired);

/* The SHMBUS_REPAIRED_* bits of what is wrong with a partition's status
 * word `old`, its topic being `live` in the directory with the status
 * `want` (bus_topic_status()); 0 if nothing.  The rule the repair keeps:
 * a caller may test it first, without the lock, to skip a repair. */
uint32_t topic_status_faults(bool live, uint64_t want, uint64_t old);

/* What SHMBUS_REPAIRED_* bits `repaired` say was wrong, in words; `live`:
 * the topic exists (else it was deleted). */
void status_repair_text(char *buf, size_t len, const char *topic, uint32_t repaired, bool live);

/*
 * Each counter of struct shmbus_daemon_stats: X(field, attribute, word)
 * with its CTL_A_<attribute> (util/ctlproto.h) and its word of struct
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
	X(recovery.rebuilt, RECOVERY_REBUILT, rec_rebuilt)                   \
	X(status_repaired, RECOVERY_STATUS_REPAIRED, rec_status_repaired)

#endif
