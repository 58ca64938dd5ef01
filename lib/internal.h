/*
 * internal.h - what the files of libshmbus share: the bus handle, the
 * per-process cache of mapped partitions, and error helpers.  Private to
 * lib/ (and tests): what shmbusd may use is in shmbus_private.h.
 */
#ifndef SHMBUS_LIB_INTERNAL_H
#define SHMBUS_LIB_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <urcu-bp.h>
#include <urcu/rculfhash.h>
#include <urcu/ref.h>

#include "shmbus.h"
#include "shmbus_private.h"
#include "../shm/directory.h"
#include "../util/error.h"
#include "../shm/groups.h"
#include "../shm/partition.h"

/*
 * Load the caller's options struct src (NULL: every default) into dst, a
 * struct TYPE of this library (lib/opts.c): the fields src's sz covers,
 * zero (the defaults) for the rest, and dst's sz set to our size.
 * -EINVAL, with a message naming the struct and its size, if sz cannot
 * be a size or if src sets a byte past the fields this library knows
 * (libbpf's OPTS_VALID).  Every function taking an options struct
 * starts with it.
 */
int opts_load(void *dst, size_t size, const void *src, const char *type);
#define OPTS_LOAD(TYPE, dst, src)                                                     \
	({                                                                            \
		_Static_assert(__builtin_types_compatible_p(__typeof__(dst), struct TYPE) && \
			       __builtin_types_compatible_p(__typeof__(*(src)), struct TYPE), \
			       "OPTS_LOAD: not a struct " #TYPE);                     \
		opts_load(&(dst), sizeof(struct TYPE), (src), "struct " #TYPE);      \
	})

/*
 * A struct the library fills (lib/opts.c): OUT_CHECK first, before any
 * work, gives -EINVAL naming the struct when ret is NULL or its sz
 * cannot hold the mandatory prefix (sz itself); OUT_STORE then copies the
 * library's src into it, the bytes that fit in ret->sz, and sets ret->sz
 * to the number written.  Any prefix of the struct is served: a caller
 * built against an older header gets the fields it knows, one built
 * against a newer header learns from sz which fields were filled.
 */
int out_check(const void *ret, const char *type);
void out_store(void *ret, size_t sz, const void *src, size_t size);
#define OUT_CHECK(TYPE, ret)                                                          \
	({                                                                            \
		_Static_assert(__builtin_types_compatible_p(__typeof__(*(ret)), struct TYPE), \
			       "OUT_CHECK: not a struct " #TYPE);                     \
		out_check((ret), "struct " #TYPE);                                    \
	})
#define OUT_STORE(ret, src)                                                           \
	({                                                                            \
		_Static_assert(__builtin_types_compatible_p(__typeof__(*(ret)), __typeof__(src)), \
			       "OUT_STORE: src and ret differ");                      \
		out_store((ret), (ret)->sz, &(src), sizeof(src));                     \
	})

struct shmbus {
	char root[PATH_MAX];
	int rootfd;
	int topicsfd;
	int groupsfd;
	struct bus_dir dir;
	struct cds_lfht *maps;      /* {topic id, partition} -> struct pmap */
	pthread_mutex_t admin;      /* serialises this process's admin calls; the
				     * flock serialises processes */
	pthread_mutex_t sweep_lock;
	uint64_t swept_gen;         /* directory generation the cache matches */
	int usagefd;                /* <root>/usage: who maps what (format.md §11) */
	/* the connection to shmbusd (daemon.c, docs/protocol.md) */
	pthread_mutex_t link_lock;  /* one request at a time; guards what follows */
	int linkfd;                 /* -1: not connected */
	pid_t link_pid;             /* the process that connected (a forked child
				     * must not use its parent's connection) */
	uint32_t link_daemon;       /* the daemon's pid */
	uint32_t link_seq;
	bool no_daemon;             /* never use shmbusd (opts, or shmbusd itself) */
};

/*
 * A mapped partition, shared by every producer and consumer of the
 * process.  Found in bus->maps under rcu_read_lock; held with a
 * reference.  The cache holds one reference while the entry is in the
 * table; the mapping is released by call_rcu once the last is dropped.
 */
struct pmap {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	struct urcu_ref ref;
	uint64_t topic_id;
	uint32_t partition;
	struct part part;
	int usagefd;                /* holds the usage lock, or -1 */
};

/* cache_get, cache_put, pmap_part and pmap_recover: shmbus_private.h */

/* Make poll sleep on `word` too and return 0 once check(arg) is true
 * (a group member's rebalance: member.c). */
void consumer_wake_on(shmbus_consumer *c, uint32_t *word, bool (*check)(void *arg), void *arg);

/* Drop cached partitions of topics no longer in the directory. */
void cache_sweep(shmbus *bus);
int cache_init(shmbus *bus);
void cache_destroy(shmbus *bus);

/* mkdir name in parentfd: mode 0770 whatever the umask, setgid if the
 * parent is; 0 or -errno. */
int make_shared_dir(int parentfd, const char *name);

/* The root's admin lock: a mutex for this process's threads, flock on the
 * bus file for other processes (topics.c). */
int admin_lock(shmbus *bus);
/* The same without waiting: -EWOULDBLOCK if another thread or process
 * holds it. */
int admin_trylock(shmbus *bus);
void admin_unlock(shmbus *bus);

/* admin_topic_create/delete, admin_sweep, topic_status_repair and
 * status_repair_text: shmbus_private.h */

/* Look a topic up, with an error message naming it and the fix. */
int topic_lookup(shmbus *bus, const char *name, struct bus_topic *ret);

/* The partition index of `partition` in a topic of `n`, with a message. */
int check_partition(const char *topic, uint32_t n, int32_t partition);

/* Kafka's murmur2 partitioner (the Java client's). */
uint32_t murmur2(const void *key, size_t len);
uint32_t murmur2_partition(const void *key, size_t len, uint32_t partitions);

/*
 * shmbusd, when one serves the root (daemon.c).  daemon_link_open tries
 * to connect and register at shmbus_open (no error if it cannot).  The
 * admin calls return DAEMON_NONE when no daemon serves the root, or when
 * it vanished mid-call: the caller then does the work itself (embedded
 * mode).  Anything else is the daemon's answer, with its message.
 */
#define DAEMON_NONE 1
void daemon_link_open(shmbus *bus);
void daemon_link_close(shmbus *bus);
int daemon_topic_create(shmbus *bus, const char *name, const struct shmbus_topic_opts *o);
int daemon_topic_delete(shmbus *bus, const char *name);
int daemon_topic_grow(shmbus *bus, const char *name, uint32_t count, bool validate_only);
/* Any request (groups: member.c, groupadm.c): 0, -errno with the daemon's
 * message, or DAEMON_NONE.  read_reply runs on success with the RESULT. */
struct ctl_out;
struct ctl_msg;
int daemon_call(shmbus *bus, uint16_t type, void (*build)(struct ctl_out *o, const void *arg),
		const void *arg, void (*read_reply)(const struct ctl_msg *rep, void *out), void *out,
		int timeout_ms);

/* A producer's acks=mirrors (producer_acks.c, protocol.md §M11). */
struct producer_acks {
	int timeout_ms;
	uint32_t min_mirrors;       /* the daemon's, for messages */
	char listen[128];           /* its [mirror-listen] address, for messages */
};

/* Does shmbusd serve the root with a [mirror-listen] (else nothing would
 * ever acknowledge)?  0 with *ret filled (but timeout_ms), or -ENOTCONN
 * with why and the fix. */
int producer_acks_check(shmbus *bus, const char *topic, struct producer_acks *ret);

/* Wait until offset `off` of partition p (`part` of topic) is mirrored,
 * up to deadline_ns (CLOCK_MONOTONIC): 0, or -ETIMEDOUT with a message
 * naming the mirrors that lag, or -EIDRM. */
int producer_acks_wait(shmbus *bus, const struct producer_acks *a, struct part *p,
		       const char *topic, uint32_t part, uint64_t off, int64_t deadline_ns);

/*
 * A producer's linger (producer_linger.c, docs/design-notes.md "Linger").
 * linger_check validates the options (also when linger is off);
 * linger_new starts the linger thread.  linger_send stages one converted
 * record (its bytes are copied) or publishes it alone: 0 with *ret_off
 * SHMBUS_OFFSET_PENDING or its offset, or -errno for this record.
 * linger_flush publishes everything and waits for acks (producer_await).
 * The rest of the producer's calls hold linger_lock while they use the
 * writers, and publish a partition's staged run (part >= 0) or every
 * run (-1) before appending past it (linger_publish_locked).  A NULL
 * linger makes lock, unlock and publish_locked no-ops.
 */
struct linger;
int linger_check(const struct shmbus_producer_opts *o);
int linger_new(shmbus_producer *p, const char *topic, uint32_t nparts,
	       const struct shmbus_producer_opts *o, struct linger **ret);
void linger_free(struct linger *l);
struct part_rec;
int linger_send(struct linger *l, uint32_t part, const struct part_rec *r, uint64_t *ret_off);
int linger_flush(struct linger *l);
void linger_lock(struct linger *l);
void linger_unlock(struct linger *l);
int linger_publish_locked(struct linger *l, int32_t part);
/* The producer's topic grew to nparts partitions (under linger_lock). */
int linger_grow(struct linger *l, uint32_t nparts);

/* producer.c, for linger: append n converted records to part (how many,
 * with the offset of the first in *ret_first, or -errno; a short count's
 * reason is producer_stopped() and shmbus_errmsg()); and wait for
 * acks=mirrors of what was appended since the last wait (0 without). */
int producer_publish(shmbus_producer *p, uint32_t part, const struct part_rec *recs, size_t n,
		     uint64_t *ret_first);
int producer_stopped(const shmbus_producer *p, uint32_t part);
int producer_await(shmbus_producer *p);

/* Record an error message and return err. */
#define lib_err(err, ...) shm_err((err), __VA_ARGS__)

#endif
