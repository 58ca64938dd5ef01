/*
 * counters.h - the counters file <root>/counters (format.md §12): what
 * only the supervising daemon knows, kept in shared memory so that any
 * process can read it, with or without the daemon running.
 *
 * One page of header (identity, then the daemon's block: its health and
 * its own counters), then a table of per-partition entries keyed by
 * {topic id, partition} with open addressing, holding the append rates
 * the daemon samples each tick.  One writer, the daemon that holds the
 * root (shmbusd.lock), which creates the file afresh when it starts.
 * Every entry and the daemon block are seqlocked and every field is
 * stored and loaded as one atomic word, so a reader never sees a torn
 * value, and sees one consistent update while the writer lives.  A
 * writer killed inside an update leaves its sequence odd: readers then
 * take the words as they are and say so (the heartbeat tells the values
 * are stale anyway).
 */
#ifndef SHMBUS_SHM_COUNTERS_H
#define SHMBUS_SHM_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

#define CTR_FILE         "counters"
#define CTR_MAGIC        0x3172746362686d73ULL /* "shmbctr1" little-endian */
#define CTR_VERSION      1u
#define CTR_HEADER_SIZE  4096u
#define CTR_SLOTS        32768u                /* partition entries, a power of two */
#define CTR_PARTITION_BITS 20                  /* key = topic id << 20 | partition */
#define CTR_KEY_FREE     0ULL                  /* never used: probing stops here */
#define CTR_KEY_DEAD     UINT64_MAX            /* a partition no longer supervised */

/* A daemon's values are stale once its heartbeat is older than this many
 * ticks plus CTR_STALE_SLACK_NS (a loaded machine delays ticks). */
#define CTR_STALE_TICKS    3
#define CTR_STALE_SLACK_NS 1000000000LL

enum ctr_state {
	CTR_STATE_NONE = 0,      /* no daemon wrote the block yet */
	CTR_STATE_RUNNING = 1,
	CTR_STATE_STOPPED = 2,   /* stopped cleanly; a kill leaves RUNNING */
};

/*
 * The daemon's block: identity, health and its own counters.  Written
 * once per tick by the daemon under the seqlock `seq`.  The fields after
 * `seq` are listed once in CTR_DAEMON_FIELDS so the writer and the
 * reader copy exactly the same words.
 */
struct ctr_daemon {
	uint64_t seq;                /* odd while the daemon writes */
	uint64_t pid;
	uint64_t start_time;         /* process start time (clock ticks since boot) */
	uint64_t state;              /* enum ctr_state */
	uint64_t version;            /* major << 16 | minor << 8 | patch */
	int64_t started_ns;          /* CLOCK_REALTIME */
	int64_t heartbeat_ns;        /* CLOCK_REALTIME of the last tick */
	int64_t tick_ns;             /* the supervision period */
	uint64_t ticks;
	uint64_t partitions;         /* under supervision */
	uint64_t clients;            /* registered clients now */
	uint64_t clients_gone;
	uint64_t unblocked;          /* claims aborted by the unblocker */
	uint64_t unblocked_offsets;
	uint64_t retention_moves;
	uint64_t retired;            /* offsets retired by time retention */
	uint64_t flushes;
	uint64_t flush_errors;
	uint64_t control_requests;
	uint64_t control_errors;
	uint64_t topics_created;
	uint64_t topics_deleted;
	uint64_t rec_partitions;     /* start-up recovery: partitions found */
	uint64_t rec_recovered;
	uint64_t rec_in_use;
	uint64_t rec_failed;
	uint64_t rec_frames;
	uint64_t rec_aborted;
	uint64_t rec_cut;
	uint64_t rec_cut_bytes;
	uint64_t rec_rebuilt;
	uint64_t rates_full;         /* partitions left out: the entry table was full */
	uint64_t rec_status_repaired; /* status words set right from the directory */
	uint64_t reserved[31];
};
_Static_assert(sizeof(struct ctr_daemon) == 512, "daemon block is 512 bytes");

#define CTR_DAEMON_FIELDS(X)                                                     \
	X(pid) X(start_time) X(state) X(version) X(started_ns) X(heartbeat_ns)   \
	X(tick_ns) X(ticks) X(partitions) X(clients) X(clients_gone)             \
	X(unblocked) X(unblocked_offsets) X(retention_moves) X(retired)          \
	X(flushes) X(flush_errors) X(control_requests) X(control_errors)         \
	X(topics_created) X(topics_deleted) X(rec_partitions) X(rec_recovered)   \
	X(rec_in_use) X(rec_failed) X(rec_frames) X(rec_aborted) X(rec_cut)      \
	X(rec_cut_bytes) X(rec_rebuilt) X(rates_full) X(rec_status_repaired)

struct ctr_header {
	/* [0, 128): identity, written once at creation */
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint64_t endian;
	uint32_t word_size;
	uint32_t nslots;
	uint64_t file_size;
	uint32_t slot_size;
	uint32_t reserved0;
	int64_t created_ns;
	uint8_t pad0[128 - 56];

	/* [128, 256): the daemon's Prometheus endpoint, "ADDR:PORT" ("": none),
	 * written before the file is published */
	char endpoint[128];

	/* [256, 512) */
	uint8_t reserved1[256];

	/* [512, 1024): the daemon's block */
	struct ctr_daemon daemon;

	uint8_t reserved2[CTR_HEADER_SIZE - 1024];
};
_Static_assert(sizeof(struct ctr_header) == CTR_HEADER_SIZE, "counters header is a page");
SHM_IDENT_ASSERT(struct ctr_header);
_Static_assert(offsetof(struct ctr_header, created_ns) == 48, "created_ns at 48");
_Static_assert(offsetof(struct ctr_header, endpoint) == 128, "endpoint at 128");
_Static_assert(offsetof(struct ctr_header, daemon) == 512, "daemon block at 512");

/*
 * A partition's entry: one cache line, written by the daemon each tick
 * under its own seqlock.  Rates are IEEE-754 binary64 values stored as
 * their bits, so that each is one atomic word.
 */
struct ctr_part {
	uint64_t seq;                /* odd while the daemon writes */
	uint64_t key;                /* topic id << 20 | partition; FREE, DEAD */
	uint64_t tick;               /* the daemon tick that wrote it */
	int64_t sampled_ns;          /* CLOCK_REALTIME of the sample */
	uint64_t end_offset;         /* the partition's end offset at the sample */
	uint64_t tail;               /* its tail position (bytes appended) */
	uint64_t records_rate;       /* records appended per second (double bits) */
	uint64_t bytes_rate;         /* bytes appended per second (double bits) */
};
_Static_assert(sizeof(struct ctr_part) == 64, "partition entry is one cache line");
_Static_assert(offsetof(struct ctr_part, key) == 8, "key at 8");

/* A partition's values as a reader gets them. */
struct ctr_rate {
	uint64_t tick;
	int64_t sampled_ns;
	uint64_t end_offset;
	uint64_t tail;
	double records_per_s;
	double bytes_per_s;
};

/* A mapped counters file. */
struct ctr_file {
	struct ctr_header *hdr;
	struct ctr_part *slots;
	uint32_t nslots;
	size_t map_len;
	bool writable;
};

/*
 * Create <dirfd>/counters afresh, naming the daemon's metrics endpoint
 * (NULL or "": none): made whole before it has a name (shareddir.h), then
 * renamed over any older file (whose readers keep their mapping of it), and
 * mapped writable.  Only the daemon that holds the root calls this.
 */
int ctr_create(int dirfd, const char *endpoint, struct ctr_file *ret);

/* Map and validate an existing counters file, read-only unless
 * `writable`.  -ENOENT (and no message) if there is none; -EBADMSG or
 * -EPROTO with a message naming the file and the fix. */
int ctr_open(int dirfd, bool writable, struct ctr_file *ret);

/* Unmap; NULL or an unmapped file is a no-op. */
void ctr_close(struct ctr_file *c);

/* The daemon's metrics endpoint the file names ("" if none), written
 * once at creation; NUL-terminated into buf of len bytes. */
void ctr_endpoint(const struct ctr_file *c, char *buf, size_t len);

/* The daemon: publish its block (every field but seq, from *v). */
void ctr_daemon_write(struct ctr_file *c, const struct ctr_daemon *v);

/* Copy the daemon's block.  Returns 0, or 1 if the writer stopped inside
 * an update (the words may mix two updates; each word is whole). */
int ctr_daemon_read(const struct ctr_file *c, struct ctr_daemon *ret);

/* Is a heartbeat (CLOCK_REALTIME; 0: none) of a daemon ticking every
 * tick_ns (0: unknown) recent at now_ns? */
bool ctr_heartbeat_fresh(int64_t heartbeat_ns, int64_t tick_ns, int64_t now_ns);

/*
 * The daemon: write the entry of {topic_id, partition}, taking a free (or
 * dead) one the first time.  -ENOSPC if the table is full.  Single writer.
 */
int ctr_part_write(struct ctr_file *c, uint64_t topic_id, uint32_t partition,
		   const struct ctr_rate *v);

/* The entry of {topic_id, partition}: 0, or -ENOENT.  Lock-free; any
 * process. */
int ctr_part_read(const struct ctr_file *c, uint64_t topic_id, uint32_t partition,
		  struct ctr_rate *ret);

/*
 * The daemon: mark dead every entry not written at tick `tick` (its
 * partition is no longer supervised), and free the dead entries no probe
 * needs any more.  Returns the number of live entries.
 */
uint32_t ctr_part_sweep(struct ctr_file *c, uint64_t tick);

#endif
