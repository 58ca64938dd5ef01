/*
 * shmbus.h - the public API of libshmbus, a shared-memory message bus.
 *
 * Kafka's model on one host: topics split into partitions, each an
 * append-only log with dense offsets; records with a key, a value, a
 * timestamp and headers; consumer groups with committed offsets.
 * Producers and consumers append and read straight in shared memory:
 * no system call and no daemon on the data path.
 *
 * Conventions
 *  - Every call returns 0 or a count >= 0 on success, -errno on failure.
 *    shmbus_strerror() names bus-specific meanings; shmbus_errmsg() holds
 *    the detailed message of this thread's last failure (it names the
 *    object and the fix).  Output parameters are written only on success.
 *  - Options structs begin with `size_t sz`; fill them with SHMBUS_OPTS
 *    so the library reads only the fields your build knows.  A NULL
 *    options pointer means all defaults.  Zero means default everywhere.
 *    A struct from a newer shmbus.h that sets a field this library does
 *    not know is refused with -EINVAL (the message names the struct and
 *    its size) rather than half-honoured; one whose new fields are zero
 *    is accepted.  An sz smaller than sz itself is refused too.
 *  - Structs the library fills begin with `size_t sz` too: set it (declare
 *    them with SHMBUS_OPTS) and the library writes at most sz bytes, the
 *    fields it knows, and sets sz to the bytes it wrote: a struct of an
 *    older header gets the fields it knows, one of a newer header sees
 *    which fields this library filled.  -EINVAL, naming the struct, if
 *    sz is 0 or smaller than sz itself.
 *  - Destructors accept NULL.
 *  - The library never logs and never aborts the process.
 *  - Each function states its thread and process safety.
 */
#ifndef SHMBUS_H
#define SHMBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMBUS_API __attribute__((visibility("default")))

#define SHMBUS_VERSION_MAJOR 1
#define SHMBUS_VERSION_MINOR 0
#define SHMBUS_VERSION_PATCH 0

/* Declare a struct with its sz set: an options struct, filled in
 *   SHMBUS_OPTS(shmbus_consumer_opts, o, .group = "billing");
 * or one for the library to fill
 *   SHMBUS_OPTS(shmbus_partition_info, info); */
#define SHMBUS_OPTS(TYPE, NAME, ...) \
	struct TYPE NAME = { .sz = sizeof(struct TYPE), __VA_ARGS__ }

typedef struct shmbus shmbus;
typedef struct shmbus_producer shmbus_producer;
typedef struct shmbus_consumer shmbus_consumer;

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/*
 * Codes with a bus-specific meaning (all are negated errno values):
 *   -EAGAIN     backpressure: a registered consumer has not read the bytes
 *   -ERANGE     offset out of range: overwritten, retired, or past the end
 *   -EIDRM      the topic was deleted (or deleted and recreated)
 *   -ECANCELED  a claim was aborted by an unblocker (producer too slow)
 *   -EBUSY      a zero-copy claim is in the way: this producer holds one, or
 *               another producer's is still unwritten a whole ring behind
 *   -EMSGSIZE   record larger than half the partition's ring
 *   -EBADMSG    damaged data in shared memory
 *   -ENOENT     no such topic, partition or group
 *   -EEXIST     topic exists
 *   -ENOSPC     no room: filesystem full, or a table is full
 *   -EPROTO     file of another format version
 *   -EROFS      partition mapped read-only, or a replica
 *   -EUSERS     a partition already has 64 producers (its writer slots); or
 *               shmbusd refused the connection (too many of this user's)
 * Safe from any thread.
 */
SHMBUS_API const char *shmbus_strerror(int err);

/* The detailed message of this thread's last failed call ("" if none);
 * after a successful shmbus_open, "" or a warning (shmbusd refused the
 * connection). */
SHMBUS_API const char *shmbus_errmsg(void);

/* ------------------------------------------------------------------ */
/* The bus                                                             */

struct shmbus_open_opts {
	size_t sz;
	const char *root;   /* NULL: $SHMBUS_ROOT, else the default root */
	bool no_create;     /* fail with -ENOENT instead of creating the root */
	bool no_daemon;     /* never use shmbusd, even if one serves the root
			     * (appended: keep new fields after this one) */
};

/*
 * Write the default root into buf: $SHMBUS_ROOT, else
 * $XDG_RUNTIME_DIR/shmbus, else /dev/shm/shmbus-$UID.  Returns its
 * length or -ENAMETOOLONG.  Safe from any thread.
 */
SHMBUS_API int shmbus_default_root(char *buf, size_t len);

/*
 * Open a bus root (creating it unless opts->no_create).  The handle is
 * safe to share between threads; open one per process (after fork(),
 * open a new one in the child).  A root that belongs to another user
 * than the caller, root or the service user "shmbus", or that every user
 * may write, is refused with -EPERM (docs/operations.md, "Whose root").
 *
 * If shmbusd serves the root (docs/protocol.md §1), the bus connects to
 * its control socket and registers this process: the daemon then aborts
 * this process's zero-copy claims the moment it exits.  Topic creation
 * and deletion go through the daemon while it serves (it decides who may,
 * and makes the files with the right owner, group and mode); without a
 * daemon, or if it vanishes, they run in this process (the embedded
 * mode).  opts->no_daemon turns the daemon off for this handle.  If the
 * daemon refuses the connection (a user holds at most
 * max_connections_per_uid), the open still succeeds with the refusal in
 * shmbus_errmsg(), and administration returns -EUSERS instead of running
 * here (docs/protocol.md §6).
 */
SHMBUS_API int shmbus_open(const struct shmbus_open_opts *opts, shmbus **ret);

/* Close the bus.  Producers and consumers made from it must be freed
 * first.  NULL is a no-op. */
SHMBUS_API void shmbus_close(shmbus *bus);

/* The root directory this bus serves. */
SHMBUS_API const char *shmbus_root(const shmbus *bus);

/* ------------------------------------------------------------------ */
/* The daemon                                                          */

/*
 * What shmbusd counts of its own work since it started, as both
 * shmbus_daemon_status() (asked of the running daemon) and
 * shmbus_daemon_counters() (read from its counters file) report it.
 * Embedded in both, it keeps its size: a counter added later takes a
 * reserved word (zero from a library that does not know it).
 */
struct shmbus_daemon_stats {
	uint64_t ticks;             /* supervision ticks */
	uint64_t clients_gone;      /* registered clients whose exit it handled */
	uint64_t unblocked;         /* stalled claims it aborted */
	uint64_t unblocked_offsets;
	uint64_t retention_moves;
	uint64_t retired;           /* offsets retired by time retention */
	uint64_t flushes, flush_errors;
	uint64_t control_requests;
	uint64_t control_errors;    /* malformed or refused requests */
	uint64_t topics_created, topics_deleted;
	struct shmbus_daemon_recovery {
		uint64_t partitions, recovered, in_use, failed;
		uint64_t frames, aborted, cut, cut_bytes, rebuilt;
	} recovery;                 /* start-up recovery */
	uint64_t status_repaired;   /* partitions' status words the bus directory
				     * contradicted, set right at start-up or
				     * while the daemon ran */
	uint64_t reserved[10];
};

/* What shmbusd says of itself (`shmbus status`).  An output struct that
 * grows: set sz (SHMBUS_OPTS does) and only that many bytes are written. */
struct shmbus_daemon_status {
	size_t sz;
	int32_t pid;
	uint32_t uid;               /* the daemon's effective uid */
	uint32_t protocol;          /* control protocol version it speaks */
	char version[32];           /* "1.0.0" */
	char root[4096];            /* the root it serves */
	char control_socket[256];
	char metrics[128];          /* "ADDR:PORT" of its Prometheus endpoint; "": off */
	char admin_group[64];       /* "": only root and the daemon's user administer */
	int64_t started_ns;         /* CLOCK_REALTIME */
	uint64_t uptime_ms;
	int64_t heartbeat_ns;       /* its last heartbeat in the bus file (CLOCK_REALTIME) */
	int64_t unblock_timeout_ms;
	int64_t tick_ms;
	bool on_tmpfs;
	uint64_t topics;
	uint64_t partitions;        /* under supervision */
	uint64_t clients;           /* registered processes it watches */
	struct shmbus_daemon_stats stats;
	/* since 1.2 */
	char mirror_listen[128];    /* [mirror-listen] address; "": it serves no mirrors */
	uint32_t min_mirrors;       /* mirrors that must hold a record for it to be mirrored */
};

/*
 * Ask the daemon serving the bus's root for its status.  -ENOENT when no
 * daemon serves the root (the message says how to start one),
 * -ETIMEDOUT if it does not answer, -EINVAL if ret->sz is 0.  Safe from
 * any thread; requests of one handle to the daemon are serialised.
 */
SHMBUS_API int shmbus_daemon_status(shmbus *bus, struct shmbus_daemon_status *ret);

/* One partition a mirror follows (shmbusd's [mirror "NAME"] sections).
 * Filled by the library: set sz in the first. */
struct shmbus_mirror_status {
	size_t sz;
	char mirror[64];            /* the [mirror "NAME"] section */
	char source[128];           /* the source's HOST:PORT */
	char topic[256];            /* "" when the mirror follows no partition yet */
	int32_t partition;          /* -1 with topic "" */
	uint64_t end;               /* the replica's end offset */
	uint64_t source_end;        /* the source's end, as last heard */
	uint64_t lag;               /* records the replica lacks: source_end - end */
	char state[16];             /* "streaming", "connecting" or "stopped" */
	uint64_t reconnects;        /* connections lost and tried again */
	uint64_t gaps;              /* gaps recorded: offsets the source no longer held */
	char last_error[256];       /* "" if none */
	char tls[16];               /* the link: "off", "on" (not connected yet), "user-space",
				     * "kTLS tx", "kTLS rx" or "kTLS tx/rx"; "" from an older daemon */
	uint64_t lag_ms;            /* ms since the replica last held all its source was
				     * known to hold; 0 while it does (protocol.md §9) */
	uint64_t gap_offsets;       /* offsets the gaps cover */
	uint64_t bytes;             /* frame bytes received since shmbusd started */
	uint64_t records;           /* offsets received since shmbusd started */
	uint64_t epoch;             /* the replica's last epoch (its source's), 0 if none */
	uint64_t cut;               /* offsets cut where this host's log parted from the
				     * source's (an old source back as a mirror) */
	uint64_t recreated;         /* times the source partition was found recreated */
	/* since 1.2, shmbusd with mirroring protocol version 3 (docs/protocol.md
	 * §M12): this host's mirror id and its source's, 32 hex digits ("" for a
	 * source of version 2, or before the first connection) */
	char id[33];
	char source_id[33];
};

/*
 * What the daemon serving the bus's root mirrors from other hosts: up to
 * max partitions into out (an array of max structs of out[0].sz bytes;
 * set sz in the first), returning how many it follows (may exceed max).
 * -ENOENT when no daemon serves the root, -ETIMEDOUT if it does not
 * answer.  Safe from any thread.
 */
SHMBUS_API int shmbus_mirror_status(shmbus *bus, struct shmbus_mirror_status *out, size_t max);

/* A mirror following a partition of this host (shmbusd's
 * [mirror-listen]), as this host sees it; or, with state
 * "disconnected", a mirror whose connection ended lately.  Filled by the
 * library: set sz in the first.  (since 1.2) */
struct shmbus_mirror_follower {
	size_t sz;
	char host[256];             /* the mirror's host name, as it said */
	char peer[96];              /* its address, "10.0.0.2:41234" */
	char topic[256];            /* "" when disconnected */
	int32_t partition;          /* -1 when disconnected */
	uint64_t acked;             /* it holds the offsets below this (its last ACK) */
	uint64_t sent;              /* offsets below this were sent to it */
	uint64_t end;               /* the partition's end offset here */
	uint64_t lag;               /* end - acked */
	uint64_t mirrored;          /* the partition's mirrored offset */
	int64_t ack_age_ms;         /* since its last ACK; disconnected: since it left */
	char state[16];             /* "following" or "disconnected" */
	char last_error[256];       /* why it disconnected */
	/* since 1.2, shmbusd with mirroring protocol version 3 (docs/protocol.md
	 * §M12): the mirror's id, 32 hex digits ("" from a mirror of version
	 * 2: it is counted by host and address), and its certificate's
	 * subject ("" without TLS certificates) */
	char id[33];
	char cert[200];
};

/*
 * The mirrors following partitions of `topic` (NULL: of every topic) of
 * this root, as the daemon serving it knows them, then the mirrors that
 * disconnected lately: up to max into out (an array of max structs of
 * out[0].sz bytes), returning how many there are (may exceed max).
 * -ENOENT when no daemon serves the root, -ETIMEDOUT if it does not
 * answer.  Safe from any thread.  (since 1.2)
 */
SHMBUS_API int shmbus_mirror_followers(shmbus *bus, const char *topic,
				       struct shmbus_mirror_follower *out, size_t max);
/*
 * Make replica topic `topic` writable here after its source is lost,
 * through the daemon serving the bus's root (an administrator's request,
 * as topic creation is): the mirror that follows it stops, each
 * partition goes on from its end under a new epoch (docs/format.md §14),
 * and local producers may append.  Everything the replica holds is kept.
 * An operator's decision: no quorum, no election (docs/operations.md,
 * "Promoting a replica").  With report (len bytes), a line per partition:
 * "partition=N<TAB>epoch=HEX<TAB>from=OFFSET".  Returns the partitions
 * promoted, or -errno: -ENOENT (no such topic, or no daemon), -EINVAL
 * (not a replica), -EACCES, -ETIMEDOUT.  Safe from any thread.
 */
SHMBUS_API int shmbus_mirror_promote(shmbus *bus, const char *topic, char *report, size_t len);

/* ------------------------------------------------------------------ */
/* Topics                                                              */

enum shmbus_policy {
	SHMBUS_POLICY_OVERWRITE = 0,    /* the oldest records are overwritten (default) */
	SHMBUS_POLICY_BACKPRESSURE = 1, /* producers wait for registered consumers */
};

#define SHMBUS_DEFAULT_CAPACITY (16ULL << 20)

struct shmbus_topic_opts {
	size_t sz;
	uint32_t partitions;        /* 0: 1 */
	uint64_t capacity;          /* ring bytes per partition, a power of two; 0: 16 MiB */
	uint64_t index_capacity;    /* offset index slots; 0: capacity / 64 */
	enum shmbus_policy policy;
	bool numa_bind;             /* bind the partitions to numa_node */
	int numa_node;
	int64_t retention_ms;       /* 0: bounded by the ring only (enforced by shmbusd) */
	unsigned mode;              /* partition file mode; 0: 0660 */
};

/* Create a topic.  Safe from any thread and process (serialised by the
 * root's admin lock).  -EEXIST, -EINVAL (bad name or option, or more
 * than 16384 partitions), -ENOSPC (checked before any file is made: the
 * message gives the bytes needed and free); through shmbusd also -EACCES
 * (the daemon's admin rule refused it: the message names the fix),
 * -ECANCELED (the daemon stopped meanwhile; nothing of the topic is
 * left) and -ETIMEDOUT.  Through shmbusd the file mode is the daemon's
 * file_mode, narrowed by opts->mode.  Topic directories left by a
 * create that was killed (half-made topics) are removed first. */
SHMBUS_API int shmbus_topic_create(shmbus *bus, const char *name,
				   const struct shmbus_topic_opts *opts);

/* Delete a topic: its partitions are marked deleted (their users get
 * -EIDRM) and their files removed.  Safe from any thread and process.
 * Through shmbusd when one serves the root (-EACCES as for create).  The
 * name of a half-made topic (its create was killed) removes what it
 * left; half-made topics of other names are removed too. */
SHMBUS_API int shmbus_topic_delete(shmbus *bus, const char *name);

struct shmbus_add_partitions_opts {
	size_t sz;
	bool validate_only;         /* check everything, make nothing (Kafka's validateOnly) */
};

/*
 * Give topic `name` `count` partitions in all, more than it has (since
 * 1.2; Kafka's `kafka-topics --alter --partitions`).  The topic keeps its
 * id and records: its producers and consumers go on, producers that
 * choose partitions (by key or round-robin) spread over the new ones from
 * their next send, and consumer groups subscribed to it rebalance so each
 * new partition has an owner, moving no other.  A key's partition is
 * murmur2(key) % count: keys move with the count, as in Kafka.  Safe from
 * any thread and process (the root's admin lock); opts may be NULL.
 * -EINVAL when count is not more than the topic's partitions (they can
 * only be added) or above 16384, -EROFS for a mirror's replica (grow its
 * source), -ENOENT, -ENOSPC (checked before any file is made); through
 * shmbusd also -EACCES, -ECANCELED and -ETIMEDOUT as for create.  The new
 * partitions are published only once all their files exist: a grow that
 * was killed leaves the topic as it was, and the next admin call (or
 * shmbusd's start) removes the files it made.
 */
SHMBUS_API int shmbus_topic_add_partitions(shmbus *bus, const char *name, uint32_t count,
					   const struct shmbus_add_partitions_opts *opts);

/* A topic, as described and listed.  Filled by the library: set sz. */
struct shmbus_topic_info {
	size_t sz;
	char name[256];
	uint64_t id;
	uint32_t partitions;
	uint64_t capacity;
	uint64_t index_capacity;
	enum shmbus_policy policy;
	int numa_node;              /* -1: not bound */
	int64_t retention_ms;
	int64_t created_ns;         /* CLOCK_REALTIME */
	uint64_t max_record;        /* largest key + encoded headers + value, in bytes
				     * (each header takes 6 bytes + name + value) */
};

/* Describe a topic into ret (ret->sz set).  Lock-free; safe from any
 * thread. */
SHMBUS_API int shmbus_topic_describe(shmbus *bus, const char *name,
				     struct shmbus_topic_info *ret);

/* Copy up to max topics into out; returns the number of topics (which
 * may exceed max).  out is an array of max structs of out[0].sz bytes
 * each: set sz in the first (SHMBUS_OPTS or out[0].sz = sizeof out[0]);
 * the library sets it in the others.  out may be NULL when max is 0.
 * Lock-free; safe from any thread. */
SHMBUS_API int shmbus_topic_list(shmbus *bus, struct shmbus_topic_info *out, size_t max);

/* Filled by the library: set sz. */
struct shmbus_partition_info {
	size_t sz;
	uint64_t low;               /* lowest readable offset */
	uint64_t high;              /* end offset: the next to be appended */
	uint64_t tail;              /* bytes ever appended (absolute position) */
	uint64_t capacity;
	uint64_t epoch;
	uint64_t mirrored;          /* offset mirrored to other hosts */
	uint64_t aborted_claims;
	uint64_t lapped_reads;
	uint64_t backpressure_blocks;
	uint64_t recoveries;
	uint64_t recovered_cut;
	uint32_t registered_consumers;
	uint32_t min_consumer_lag;  /* of registered consumers (backpressure) */
	enum shmbus_policy policy;
	bool deleted;
};

/* Lock-free; safe from any thread. */
SHMBUS_API int shmbus_partition_info(shmbus *bus, const char *topic, uint32_t partition,
				     struct shmbus_partition_info *ret);

/* Filled by the library: set sz. */
struct shmbus_recovery {
	size_t sz;
	uint64_t first_offset;      /* lowest readable offset after the scan */
	uint64_t end_offset;        /* the end offset after the scan */
	uint64_t frames;            /* committed records checked */
	uint64_t aborted;           /* dead claims turned into aborts */
	uint64_t cut;               /* offsets cut at the tail */
	uint64_t cut_bytes;
	bool rebuilt;               /* index and claim word rebuilt from the data */
	char reason[200];           /* why the tail was cut ("" if not) */
	uint32_t repaired;          /* SHMBUS_REPAIRED_*: marks of the partition's status
				     * word the bus directory contradicts, set right */
};

#define SHMBUS_REPAIRED_DELETED  (1u << 0) /* marked deleted, but its topic exists: unmarked */
#define SHMBUS_REPAIRED_READONLY (1u << 1) /* marked read-only (a replica) or not, unlike
					    * its topic: set as the topic says */
#define SHMBUS_REPAIRED_UNKNOWN  (1u << 2) /* status bits no version defines: cleared */

/*
 * Scan a partition, check every record (offsets, lengths, CRC32C), turn
 * claims of dead producers into aborts, rebuild its index and cut the
 * tail at the first invalid record.  Run only while no producer appends
 * (shmbusd does it at start-up).  Takes the root's admin lock.
 *
 * First, the partition's status word is checked against the bus
 * directory: a partition of a topic that exists is never marked deleted,
 * and is read-only only if its topic is a replica; a wrong mark is set
 * right and reported in ret->repaired.  That needs no exclusive hold: if
 * other processes use the partition, the marks are still repaired, the
 * scan is not run, and -EBUSY's message says what was repaired.
 */
SHMBUS_API int shmbus_partition_recover(shmbus *bus, const char *topic, uint32_t partition,
					struct shmbus_recovery *ret);

/* ------------------------------------------------------------------ */
/* Records                                                             */

/* A record header: a name and a nullable value (Kafka's). */
struct shmbus_header {
	const char *name;
	size_t name_len;
	const void *value;          /* NULL: a null value */
	size_t value_len;
};

/* A record to send. */
struct shmbus_record {
	const void *key;            /* NULL: no key (partitioned round-robin) */
	size_t key_len;
	const void *value;          /* NULL: a null value (tombstone) */
	size_t value_len;
	const struct shmbus_header *headers;
	size_t header_count;
	int64_t timestamp_ns;       /* 0: now (CLOCK_REALTIME) */
};

#define SHMBUS_PARTITION_ANY (-1) /* by key (Kafka's murmur2), else round-robin */

/* ------------------------------------------------------------------ */
/* Producers                                                           */

/* When a send returns (since 1.2). */
enum shmbus_acks {
	SHMBUS_ACKS_LOCAL = 0,      /* once the record is in this host's log (the default) */
	SHMBUS_ACKS_MIRRORS = 1,    /* once it is below the partition's mirrored offset: held
				     * by [mirror-listen] min_mirrors mirrors (Kafka's acks=all) */
};

/* A run of records a lingering producer published, or lost (since 1.2). */
struct shmbus_delivery {
	int32_t partition;
	uint64_t first_offset;      /* of the run's first record (err 0) */
	size_t count;               /* records, in the order they were sent */
	int err;                    /* 0, or why they are lost (-errno) */
};

struct shmbus_producer_opts {
	size_t sz;
	bool block;                 /* backpressure: wait for room instead of -EAGAIN */
	int block_timeout_ms;       /* with block: give up after this (0: forever) */
	enum shmbus_acks acks;      /* since 1.2 */
	int ack_timeout_ms;         /* acks=mirrors: -ETIMEDOUT after this; 0: 30000 */
	/* linger (since 1.2; Kafka's linger.ms and batch.size): see below */
	int linger_us;              /* stage sends up to this long; 0: no linger */
	int batch_bytes;            /* with linger: publish once this many bytes are
				     * staged for a partition; 0: 16384 */
	/* with linger: called once per published (or lost) run of records */
	void (*on_delivery)(void *arg, const struct shmbus_delivery *d);
	void *delivery_arg;
};

/*
 * A producer appends to the partitions of one topic.  A producer is used
 * by one thread at a time: make one per thread.  Any number of producers
 * in any number of processes append to one partition at once, lock-free.
 *
 * With opts.acks = SHMBUS_ACKS_MIRRORS, send, send_batch and commit
 * return once every record they appended is mirrored: held by as many
 * mirrors as the daemon's [mirror-listen] min_mirrors says, so it
 * survives the loss of this host (docs/protocol.md §M11).  Past
 * ack_timeout_ms they fail with -ETIMEDOUT, naming the mirrors that lag
 * (or saying none follows the partition): the records are in this
 * host's log, and may still be mirrored later.  shmbus_producer_new
 * fails with -ENOTCONN when no shmbusd serves the root, or it has no
 * [mirror-listen]: nothing would ever acknowledge.
 */
SHMBUS_API int shmbus_producer_new(shmbus *bus, const char *topic,
				   const struct shmbus_producer_opts *opts, shmbus_producer **ret);
/* Free a producer; with linger, after publishing what it staged (a run
 * that cannot be published goes to on_delivery as lost).  NULL: no-op. */
SHMBUS_API void shmbus_producer_free(shmbus_producer *p);

/* Number of partitions of the producer's topic, as of its last send (a
 * topic grown since counts from the next send, shmbus_topic_add_partitions). */
SHMBUS_API int shmbus_producer_partitions(const shmbus_producer *p);

/* The partition Kafka's default partitioner (the Java client's murmur2)
 * picks for key; -EINVAL for a NULL key. */
SHMBUS_API int shmbus_producer_partition_for(const shmbus_producer *p, const void *key,
					     size_t key_len);

/*
 * Linger (opts.linger_us > 0; Kafka's linger.ms and batch.size).  send
 * copies the record into the producer's staging buffer for its partition
 * and returns: the record is not visible yet and *ret_offset is
 * SHMBUS_OFFSET_PENDING.  A partition's staged records are published
 * together, in the order they were sent, as one claim (send_batch's
 * path), as soon as one of these happens:
 *  - the next record would take its staged bytes past opts.batch_bytes
 *    (bytes as the ring holds them: a 48-byte frame header, key,
 *    headers and value, padded to 8); a record larger than
 *    batch_bytes is published alone, right after what was staged, and
 *    its offset is returned;
 *  - linger_us have passed since its first staged record: the
 *    producer's linger thread publishes it without any further call,
 *    a few tens of microseconds late at most on a machine that runs the
 *    thread promptly;
 *  - shmbus_producer_flush, send_batch, claim, or shmbus_producer_free.
 * The offsets come through opts.on_delivery (first offset and count of
 * each published run) and their publication through flush.  Records
 * staged when the process dies are lost, as Kafka's unsent buffer is.
 * A run that cannot be published is lost too, except after -EAGAIN and
 * -EBUSY (backpressure, a zero-copy claim in the way): those stay
 * staged and are tried again linger_us later.  A loss is reported to
 * on_delivery with its error and by the next flush.  on_delivery runs
 * in the thread that publishes (the caller's, inside send, send_batch,
 * claim, flush or free, or the linger thread), with the producer
 * locked: it must not call this producer.  With acks=mirrors, send does
 * not wait; flush waits for every record published since the last one
 * to be mirrored.  docs/design-notes.md, "Linger".
 */
#define SHMBUS_OFFSET_PENDING UINT64_MAX

/*
 * Append one record to `partition` (or SHMBUS_PARTITION_ANY).  Returns the
 * partition it went to, with its offset in *ret_offset (may be NULL); with
 * linger, SHMBUS_OFFSET_PENDING unless it was published in this call.
 * With linger, an error is this record's only (it was not staged: the
 * staged run in its way could not be published); losses of records
 * staged before are reported by flush.
 */
SHMBUS_API int shmbus_producer_send(shmbus_producer *p, int32_t partition,
				    const struct shmbus_record *rec, uint64_t *ret_offset);

/*
 * Publish every record this producer has staged (linger), and with
 * acks=mirrors wait until every record published since the last flush is
 * mirrored.  Returns 0, or the first error since the last flush: a run
 * lost (its message names the partition and how many records), or one
 * kept staged (-EAGAIN, -EBUSY: call flush again).  Without linger there
 * is nothing staged, and it returns 0 at once.  Since 1.2.
 */
SHMBUS_API int shmbus_producer_flush(shmbus_producer *p);

/*
 * Append n records.  Consecutive records for one partition are claimed
 * together (one compare-and-swap per run that fits before the ring's
 * end).  Returns how many were appended, in order: fewer than n only if
 * an error stopped the batch after some were appended.
 */
SHMBUS_API int shmbus_producer_send_batch(shmbus_producer *p, int32_t partition,
					  const struct shmbus_record *recs, size_t n);

/* A zero-copy claim: write up to value_cap bytes at value, then commit. */
struct shmbus_claim {
	void *value;
	size_t value_cap;
	uint64_t offset;
	int32_t partition;
	uint64_t priv[6];
};

/*
 * Claim room for one record: its key, headers and timestamp are taken
 * from meta (meta->value is ignored); the value is written in place.
 * Consumers of the partition wait at this offset until it is committed
 * or aborted, and other producers will not overwrite it a lap later, so
 * commit promptly.  A producer holds one claim per partition at a time
 * (-EBUSY otherwise, and for sends to that partition meanwhile): use one
 * producer per outstanding claim.
 */
SHMBUS_API int shmbus_producer_claim(shmbus_producer *p, int32_t partition,
				     const struct shmbus_record *meta, size_t value_cap,
				     struct shmbus_claim *ret);

/* Publish a claim with its final value length (<= value_cap). */
SHMBUS_API int shmbus_producer_commit(shmbus_producer *p, struct shmbus_claim *c,
				      size_t value_len);

/* Give a claim up: consumers skip its offset. */
SHMBUS_API int shmbus_producer_abort(shmbus_producer *p, struct shmbus_claim *c);

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

/* What poll delivers (since 1.2). */
enum shmbus_isolation {
	SHMBUS_ISOLATION_ALL = 0,      /* every committed record (the default) */
	SHMBUS_ISOLATION_MIRRORED = 1, /* only records below the mirrored offset: held by
					* min_mirrors mirrors; poll waits for it to move as
					* at the log's end (Kafka's high watermark) */
};

enum shmbus_reset {
	SHMBUS_RESET_LATEST = 0,    /* on a lost offset, jump to the end (Kafka's default) */
	SHMBUS_RESET_EARLIEST = 1,  /* jump to the oldest record still held */
	SHMBUS_RESET_ERROR = 2,     /* poll returns -ERANGE */
};

struct shmbus_consumer_opts {
	size_t sz;
	const char *group;          /* name for committed offsets (NULL: none) */
	const char *name;           /* label shown by `shmbus stats` */
	enum shmbus_reset reset;
	bool copy;                  /* poll copies records out (else zero-copy views) */
	bool check_crc;             /* verify every record's CRC32C */
	bool no_register;           /* backpressure topics: do not hold producers back */
	int spin_us;                /* busy-poll before sleeping; 0: 20 us; < 0: none */
	int unblock_timeout_ms;     /* abort a dead producer's claim after this; 0: 1000 */
	/* Called (from poll) when records were lost to a lap or retention. */
	void (*on_lapped)(void *ctx, const char *topic, int32_t partition,
			  uint64_t lost_from, uint64_t resumed_at);
	void *ctx;
	enum shmbus_isolation isolation; /* since 1.2 */
};

#define SHMBUS_OFFSET_END        (-1)
#define SHMBUS_OFFSET_BEGINNING  (-2)
#define SHMBUS_OFFSET_COMMITTED  (-3) /* the group's committed offset, else the reset policy */

/*
 * A consumer reads any set of partitions.  Used by one thread at a time;
 * any number of consumers in any processes read one partition at once.
 */
SHMBUS_API int shmbus_consumer_new(shmbus *bus, const struct shmbus_consumer_opts *opts,
				   shmbus_consumer **ret);
SHMBUS_API void shmbus_consumer_free(shmbus_consumer *c);

/* Start reading `partition` of `topic` (SHMBUS_PARTITION_ANY: all of
 * them) at `offset` (>= 0, or SHMBUS_OFFSET_*). */
SHMBUS_API int shmbus_consumer_assign(shmbus_consumer *c, const char *topic, int32_t partition,
				      int64_t offset);
SHMBUS_API int shmbus_consumer_unassign(shmbus_consumer *c, const char *topic,
					int32_t partition);

/* Move to an offset (>= 0, or SHMBUS_OFFSET_BEGINNING/END); -ERANGE if
 * it is no longer (or not yet) held. */
SHMBUS_API int shmbus_consumer_seek(shmbus_consumer *c, const char *topic, int32_t partition,
				    int64_t offset);

/* Move to the first record with a timestamp >= ts_ns (the end if none). */
SHMBUS_API int shmbus_consumer_seek_timestamp(shmbus_consumer *c, const char *topic,
					      int32_t partition, int64_t ts_ns);

/* The next offset this consumer will read. */
SHMBUS_API int shmbus_consumer_position(shmbus_consumer *c, const char *topic,
					int32_t partition, uint64_t *ret);

/* Records between the position and the end (summed over the topic's
 * assigned partitions for SHMBUS_PARTITION_ANY). */
SHMBUS_API int shmbus_consumer_lag(shmbus_consumer *c, const char *topic, int32_t partition,
				   uint64_t *ret);

/* A record as poll returns it. */
struct shmbus_message {
	const char *topic;
	int32_t partition;
	uint16_t flags;             /* SHMBUS_MSG_* */
	uint64_t offset;
	int64_t timestamp_ns;
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	size_t header_count;        /* read them with shmbus_message_header() */
	const void *headers_raw;
	size_t headers_raw_len;
	uintptr_t priv[2];
};

#define SHMBUS_MSG_KEY_NULL   0x1
#define SHMBUS_MSG_VALUE_NULL 0x2

/*
 * Wait up to timeout_ms (-1: forever, 0: not at all) for records and
 * return up to max of them from the assigned partitions, in offset order
 * within each partition.  Returns the count, 0 on timeout, or -errno
 * (-ERANGE with SHMBUS_RESET_ERROR, -EIDRM, -EBADMSG; -ESTALE once when
 * a partition's end was cut back below this consumer's position: a
 * mirror whose promoted source replaced records it had read, format.md
 * §14 — the message names the offsets, and reading goes on from the cut).
 *
 * Without opts.copy the messages are views into shared memory, valid
 * until the next poll.  On an overwrite topic a producer may overwrite a
 * view's bytes once it is a whole ring behind: check
 * shmbus_message_valid() after using one (each record was whole when
 * poll returned it).  On a backpressure topic a registered consumer's
 * views stay intact until its next poll.  With opts.copy the records are
 * copied into the consumer's buffer, valid until the next poll.
 */
SHMBUS_API int shmbus_consumer_poll(shmbus_consumer *c, struct shmbus_message *msgs, size_t max,
				    int timeout_ms);

/* 0 if the bytes behind a zero-copy message are still intact, else
 * -ERANGE.  Lock-free. */
SHMBUS_API int shmbus_message_valid(const struct shmbus_message *m);

/* The i-th header of a message (0 or -ENOENT, -EBADMSG). */
SHMBUS_API int shmbus_message_header(const struct shmbus_message *m, size_t i,
				     struct shmbus_header *ret);

/* The last header named name (Kafka's lastHeader), or -ENOENT. */
SHMBUS_API int shmbus_message_header_last(const struct shmbus_message *m, const char *name,
					  struct shmbus_header *ret);

/* Commit the current positions of every assigned partition to the group. */
SHMBUS_API int shmbus_consumer_commit(shmbus_consumer *c);

/* Commit one offset (the next to read) for a partition to the group. */
SHMBUS_API int shmbus_consumer_commit_offset(shmbus_consumer *c, const char *topic,
					     int32_t partition, uint64_t offset);

/* The group's committed offset, or -ENOENT. */
SHMBUS_API int shmbus_consumer_committed(shmbus_consumer *c, const char *topic,
					 int32_t partition, uint64_t *ret);

/* Filled by the library: set sz. */
struct shmbus_consumer_stats {
	size_t sz;
	uint64_t delivered;         /* records returned by poll */
	uint64_t laps;              /* times an offset was lost to a lap or retention */
	uint64_t lost;              /* offsets skipped because of those */
	uint64_t aborted_skipped;   /* offsets passed over as aborted claims */
	uint64_t unblocked;         /* stalled claims this consumer aborted */
	uint64_t crc_errors;        /* records refused for a bad CRC (check_crc) */
	uint64_t waits;             /* times poll slept on a futex */
	uint64_t cuts;              /* times a partition's end was cut back past this
				     * consumer's position (poll said -ESTALE) */
};

SHMBUS_API int shmbus_consumer_stats(const shmbus_consumer *c, struct shmbus_consumer_stats *ret);

/* ------------------------------------------------------------------ */
/* Groups                                                              */

/* Visit each group of the root.  Safe from any thread. */
SHMBUS_API int shmbus_group_list(shmbus *bus, int (*fn)(void *ctx, const char *group), void *ctx);

/* Visit each committed offset of a group (topics that no longer exist are
 * skipped).  Safe from any thread. */
SHMBUS_API int shmbus_group_offsets(shmbus *bus, const char *group,
				    int (*fn)(void *ctx, const char *topic, int32_t partition,
					      uint64_t offset, int64_t commit_ns),
				    void *ctx);

/* Delete a group's committed offsets.  With shmbusd serving the root,
 * refused (-EBUSY) while the group has members. */
SHMBUS_API int shmbus_group_delete(shmbus *bus, const char *group);

/* ------------------------------------------------------------------ */
/* Consumer groups coordinated by shmbusd (since 1.1)                  */

/*
 * A member of a consumer group: shmbusd assigns it partitions of the
 * topics it subscribes to, shared with the group's other members, and
 * moves them when members join, leave, die or stall (Kafka's KIP-848,
 * docs/design-notes.md "Consumer groups").  Assignment changes are
 * reported through the on_assigned and on_revoked callbacks, which run
 * inside shmbus_member_poll() in the calling thread (never elsewhere):
 * in on_revoked the partitions can still be committed (their last
 * offsets reach the next owner); once it returns they are gone.
 * Commits are fenced: a commit for a partition that moved to another
 * member fails with -ESTALE and never overwrites the new owner's.
 *
 * A member is used by one thread at a time, and heartbeats only from
 * poll: poll at least every session timeout (and max-poll interval), or
 * the coordinator gives its partitions to others.  It needs shmbusd:
 * without one serving the root, subscribe fails with -ENOTCONN saying how
 * to start it.
 */
typedef struct shmbus_member shmbus_member;

enum shmbus_assignor {
	SHMBUS_ASSIGNOR_COOPERATIVE_STICKY = 0, /* only partitions that must move do */
	SHMBUS_ASSIGNOR_RANGE = 1,              /* contiguous runs per topic */
	SHMBUS_ASSIGNOR_ROUND_ROBIN = 2,        /* uniform over all partitions */
};

struct shmbus_topic_partition {
	const char *topic;
	int32_t partition;
};

struct shmbus_member_opts {
	size_t sz;
	const char *group;                /* required */
	const char *const *topics;        /* subscribe to these topics ... */
	size_t ntopics;
	const char *pattern;              /* ... or to every topic whose whole name matches
					   * this POSIX extended regex, now and later */
	const char *instance_id;          /* static membership: NULL, or a name unique
					   * in the group ([A-Za-z0-9._-]) */
	enum shmbus_assignor assignor;    /* the group's; its first member chooses */
	int session_timeout_ms;           /* 0: 10000 */
	int max_poll_interval_ms;         /* 0: 300000 */
	int auto_commit_ms;               /* 0: 5000; < 0: commit only when told.  Auto
					   * commit also commits revoked partitions */
	const struct shmbus_consumer_opts *consumer; /* how to read (its group is not
					   * used); NULL: defaults */
	void (*on_assigned)(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
			    size_t n);
	void (*on_revoked)(void *ctx, shmbus_member *m, const struct shmbus_topic_partition *tp,
			   size_t n);
	void *ctx;
};

/* Join the group (shmbusd answers within 5 s, else -ETIMEDOUT).  The
 * partitions other members still hold come in later polls, as they are
 * released. */
SHMBUS_API int shmbus_member_subscribe(shmbus *bus, const struct shmbus_member_opts *opts,
				       shmbus_member **ret);

/* As shmbus_consumer_poll(), over the member's partitions; applies
 * assignment changes first (callbacks), heartbeats and auto-commits. */
SHMBUS_API int shmbus_member_poll(shmbus_member *m, struct shmbus_message *msgs, size_t max,
				  int timeout_ms);

/* Commit the positions of every assigned partition (fenced: -ESTALE). */
SHMBUS_API int shmbus_member_commit(shmbus_member *m);

/* Commit one offset (the next to read) of an assigned partition. */
SHMBUS_API int shmbus_member_commit_offset(shmbus_member *m, const char *topic,
					   int32_t partition, uint64_t offset);

/* Filled by the library: set sz. */
struct shmbus_member_info {
	size_t sz;
	uint64_t member_id;
	uint64_t member_epoch;            /* of the assignment applied */
	uint64_t group_epoch;
	size_t partitions;                /* assigned now */
};

SHMBUS_API int shmbus_member_info(shmbus_member *m, struct shmbus_member_info *ret);

/* The assigned partitions (up to max; topic strings valid until the next
 * poll): their count. */
SHMBUS_API int shmbus_member_assignment(shmbus_member *m, struct shmbus_topic_partition *out,
					size_t max);

/* The consumer reading the member's partitions: for positions, lag and
 * stats (do not assign or unassign through it). */
SHMBUS_API shmbus_consumer *shmbus_member_consumer(shmbus_member *m);

/* Leave the group: revoke (callback, auto-commit) and tell shmbusd, so
 * the partitions move at once.  Polls then fail.  0 or -errno. */
SHMBUS_API int shmbus_member_leave(shmbus_member *m);

/* Leave if not left, and free.  NULL is a no-op. */
SHMBUS_API void shmbus_member_free(shmbus_member *m);

/* Filled by the library: set sz. */
struct shmbus_group_desc {
	size_t sz;
	char state[16];                   /* empty, reconciling, stable */
	char assignor[24];
	uint64_t epoch;
	uint64_t rebalances;
	int64_t session_timeout_ms;
	int64_t max_poll_interval_ms;
	uint32_t members;
};

/* One member, as describe reports it (sz set by the library). */
struct shmbus_group_member {
	size_t sz;
	uint64_t member_id;
	int32_t pid;
	uint64_t member_epoch;
	uint64_t acked_epoch;
	const char *instance_id;          /* "" if not static */
	const char *host;
	const char *subscription;         /* "a,b" or "/pattern/" */
	bool alive;                       /* false: a static member waiting to come back */
};

/* One partition of the group (sz set by the library). */
struct shmbus_group_partition {
	size_t sz;
	const char *topic;
	int32_t partition;
	uint64_t owner;                   /* member id, 0: none */
	bool committed_valid;
	uint64_t committed;
	uint64_t end;                     /* the partition's end offset */
	uint64_t lag;                     /* end - committed (or end - low) */
};

/*
 * Describe a group: its state from shmbusd (a group no daemon
 * coordinates is "empty"), each member, and each partition (owned ones,
 * and those with committed offsets).  -ENOENT for an unknown group.
 * Callbacks may be NULL; one returning non-zero stops the walk.
 */
SHMBUS_API int shmbus_group_describe(shmbus *bus, const char *group, struct shmbus_group_desc *ret,
				     int (*on_member)(void *ctx, const struct shmbus_group_member *m),
				     int (*on_partition)(void *ctx,
							 const struct shmbus_group_partition *p),
				     void *ctx);

enum shmbus_reset_to {
	SHMBUS_RESET_TO_EARLIEST = 0,
	SHMBUS_RESET_TO_LATEST = 1,
	SHMBUS_RESET_TO_OFFSET = 2,       /* value */
	SHMBUS_RESET_TO_DATETIME = 3,     /* value: CLOCK_REALTIME ns */
	SHMBUS_RESET_SHIFT_BY = 4,        /* value: added to the committed offset */
};

struct shmbus_group_reset_opts {
	size_t sz;
	const char *topic;                /* required */
	enum shmbus_reset_to to;
	int64_t value;
	bool dry_run;                     /* compute and report, write nothing */
	/* each partition's change (may be NULL) */
	int (*fn)(void *ctx, const char *topic, int32_t partition, bool had, uint64_t from,
		  uint64_t to);
	void *ctx;
};

/* Set a group's committed offsets for a topic's partitions (each within
 * what the partition holds).  Refused with -EBUSY while the group has
 * members.  0 or -errno. */
SHMBUS_API int shmbus_group_reset_offsets(shmbus *bus, const char *group,
					  const struct shmbus_group_reset_opts *opts);

/* ------------------------------------------------------------------ */
/* The daemon's counters                                               */

enum shmbus_daemon_state {
	SHMBUS_DAEMON_NONE = 0,     /* no daemon has served the root (or left counters) */
	SHMBUS_DAEMON_RUNNING = 1,  /* it runs and ticks: its counters are current */
	SHMBUS_DAEMON_STALLED = 2,  /* it runs, but has not ticked for a while */
	SHMBUS_DAEMON_STOPPED = 3,  /* it stopped cleanly */
	SHMBUS_DAEMON_DIED = 4,     /* it is gone without stopping (killed, crashed) */
};

/*
 * The daemon that serves a root, or the last one that did, as its
 * counters file (<root>/counters) and the bus file record it: readable
 * with or without the daemon running, unlike shmbus_daemon_status(),
 * which asks the running daemon.  An output struct that grows: set sz
 * (SHMBUS_OPTS does) and only that many bytes are written.
 */
struct shmbus_daemon_counters {
	size_t sz;
	enum shmbus_daemon_state state;
	int32_t pid;                /* 0: none known */
	char version[32];           /* "1.0.0"; "": unknown */
	char control_socket[256];   /* "": none */
	char metrics[128];          /* "ADDR:PORT" of its Prometheus endpoint; "": off */
	int64_t started_ns;         /* CLOCK_REALTIME; 0: unknown */
	int64_t heartbeat_ns;       /* its last supervision tick (CLOCK_REALTIME) */
	int64_t tick_ns;            /* its supervision period */
	bool has_counters;          /* the counters file was read (else what follows is 0) */
	uint64_t partitions;        /* under supervision */
	uint64_t clients;           /* registered processes it watches */
	struct shmbus_daemon_stats stats;
};

/*
 * Read the counters of the root's daemon.  0 with state
 * SHMBUS_DAEMON_NONE when no daemon ever served the root; -EBADMSG or
 * -EPROTO if its counters file is damaged or of another version (the
 * message says how to fix it); -EINVAL if ret->sz is 0.  Lock-free; safe
 * from any thread and process.
 */
SHMBUS_API int shmbus_daemon_counters(shmbus *bus, struct shmbus_daemon_counters *ret);

/* What the daemon last sampled of a partition's appends.  Grows like
 * struct shmbus_daemon_counters: set sz. */
struct shmbus_partition_rate {
	size_t sz;
	double records_per_s;
	double bytes_per_s;
	int64_t sampled_ns;         /* CLOCK_REALTIME of the sample */
};

/*
 * The partition's append rates over the daemon's last tick, from the
 * counters file.  -ESTALE if no daemon runs and ticks on the root (the
 * rates would be old); -ENOENT if the daemon has not sampled the
 * partition yet, or for a missing topic; -EINVAL for a partition the
 * topic does not have, or if ret->sz is 0.  Lock-free; safe from any thread and process.
 */
SHMBUS_API int shmbus_partition_rate(shmbus *bus, const char *topic, uint32_t partition,
				     struct shmbus_partition_rate *ret);

#ifdef __cplusplus
}
#endif

#endif
